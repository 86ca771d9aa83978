//! Finding a data set on disk, for the command-line tool.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::cifar::{CIFAR10_SUBDIR, cifar10_batch_dir, cifar10_file_names};
use super::idx::{find_idx_file, idx_file_names};
use super::{Dataset, Split, file_error, load_cifar10, load_mnist};
use crate::error::{Error, Result};

/// Folder into which Debian's `dataset-fashion-mnist` package installs the four gzip IDX files.
const DEBIAN_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The data sets wgcnn can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// Handwritten digits, 28x28 grayscale, IDX files.
    Mnist,
    /// Zalando's clothing images, 28x28 grayscale, IDX files with the names of MNIST.
    FashionMnist,
    /// 32x32 RGB photos, binary batch files.
    Cifar10,
}

impl DatasetKind {
    /// The name used on the command line: `mnist`, `fashion-mnist` or `cifar10`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// The name of each class, indexed by label.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            DatasetKind::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetKind::Cifar10 => [
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
        }
    }

    /// The folders searched, in order, when no folder is given.
    pub fn default_dirs(self) -> Vec<PathBuf> {
        match self {
            DatasetKind::Mnist => vec![PathBuf::from("data/mnist")],
            DatasetKind::FashionMnist => vec![
                PathBuf::from(DEBIAN_FASHION_MNIST_DIR),
                PathBuf::from("data/fashion-mnist"),
            ],
            DatasetKind::Cifar10 => vec![PathBuf::from("data/cifar-10")],
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
            DatasetKind::Cifar10 => "CIFAR-10",
        }
    }

    fn download_hint(self) -> String {
        match self {
            DatasetKind::Mnist => "Download the four IDX files (train-images-idx3-ubyte.gz, \
                 train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) \
                 from a MNIST mirror into ./data/mnist, or pass --data-dir"
                .to_string(),
            DatasetKind::FashionMnist => format!(
                "On Debian or Ubuntu, run `sudo apt-get install dataset-fashion-mnist` (installs \
                 into {DEBIAN_FASHION_MNIST_DIR}); elsewhere, download the four IDX files \
                 (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
                 t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from \
                 https://github.com/zalandoresearch/fashion-mnist (folder data/fashion) into \
                 ./data/fashion-mnist, or pass --data-dir"
            ),
            DatasetKind::Cifar10 => format!(
                "Download the binary version, https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, \
                 and extract it into ./data/cifar-10 (it creates {CIFAR10_SUBDIR}), or pass \
                 --data-dir"
            ),
        }
    }

    /// Lists the files of both splits that `dir` lacks, as names for a message, and the paths
    /// that exist in their place but are not regular files (a folder, a device, a pipe or a
    /// link to one). Both lists are empty when the data set is complete there.
    fn missing_files(self, dir: &Path) -> (Vec<String>, Vec<String>) {
        let mut missing = Vec::new();
        let mut not_regular = Vec::new();
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => {
                for name in [Split::Train, Split::Test]
                    .into_iter()
                    .flat_map(idx_file_names)
                {
                    if find_idx_file(dir, name).is_some() {
                        continue;
                    }
                    let candidates = [dir.join(name), dir.join(format!("{name}.gz"))];
                    match candidates.iter().find(|path| exists_as_any(path)) {
                        Some(path) => not_regular.push(path.display().to_string()),
                        None => missing.push(format!("{name}[.gz]")),
                    }
                }
            }
            DatasetKind::Cifar10 => {
                let batch_dir = cifar10_batch_dir(dir);
                for name in [Split::Train, Split::Test]
                    .into_iter()
                    .flat_map(cifar10_file_names)
                {
                    let path = batch_dir.join(name);
                    if path.is_file() {
                        continue;
                    }
                    if exists_as_any(&path) {
                        not_regular.push(path.display().to_string());
                    } else {
                        missing.push(name.to_string());
                    }
                }
            }
        }
        (missing, not_regular)
    }

    /// Describes why `dir` does not contain the data set, or returns `None` when it does. The
    /// flag is true when downloading the data set is the fix.
    fn problem_with(self, dir: &Path) -> Option<(String, bool)> {
        match std::fs::metadata(dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Some((
                    "it is a file, not a folder; pass the folder that contains the data files"
                        .to_string(),
                    false,
                ));
            }
            Err(_) => return Some(("folder not found".to_string(), true)),
        }
        let (missing, not_regular) = self.missing_files(dir);
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing {}", missing.join(", ")));
        }
        if !not_regular.is_empty() {
            problems.push(format!(
                "{} exists but is not a regular file (a folder, device, pipe or a link to \
                 one); replace it with the data file",
                not_regular.join(" and ")
            ));
        }
        if problems.is_empty() {
            None
        } else {
            Some((problems.join("; "), !missing.is_empty()))
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            _ => Err(Error::invalid(
                "data set",
                format!("`{name}` is unknown; expected mnist, fashion-mnist or cifar10"),
            )),
        }
    }
}

/// Returns whether anything exists at `path`, including a broken symbolic link.
fn exists_as_any(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Returns the folder to load `kind` from: `explicit` when given (the `--data-dir` option),
/// else the first of [`DatasetKind::default_dirs`] that contains the files of both splits.
/// Relative defaults are resolved against the current directory.
///
/// # Errors
///
/// [`Error::File`] when `explicit` lacks a file, listing the missing files, or when no
/// default folder holds the data set, listing each folder searched with what it lacks and how
/// to get the data.
pub fn find_dataset_dir(kind: DatasetKind, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return match kind.problem_with(dir) {
            None => Ok(dir.to_path_buf()),
            Some((problem, download)) => {
                let hint = if download {
                    format!(" {}", kind.download_hint())
                } else {
                    String::new()
                };
                Err(file_error(
                    dir,
                    format!("does not contain {}: {problem}.{hint}", kind.display_name()),
                ))
            }
        };
    }

    let mut searched = Vec::new();
    for dir in kind.default_dirs() {
        match kind.problem_with(&dir) {
            None => {
                log::info!("using {} from {}", kind.display_name(), dir.display());
                return Ok(dir);
            }
            Some((problem, _)) => searched.push(format!("{} ({problem})", dir.display())),
        }
    }
    let suggested = kind.default_dirs().pop().unwrap_or_default();
    Err(file_error(
        &suggested,
        format!(
            "{} not found; searched {}. {}",
            kind.display_name(),
            searched.join("; "),
            kind.download_hint()
        ),
    ))
}

/// Loads `split` of `kind` from `dir` with the matching reader.
///
/// # Errors
///
/// As for [`load_mnist`] or [`load_cifar10`].
pub fn load_dataset(kind: DatasetKind, dir: &Path, split: Split) -> Result<Dataset> {
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => load_mnist(dir, split),
        DatasetKind::Cifar10 => load_cifar10(dir, split),
    }
}
