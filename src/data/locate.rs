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

    /// Lists the files of both splits that `dir` lacks, as names for a message. The list is
    /// empty when the data set is complete there.
    fn missing_files(self, dir: &Path) -> Vec<String> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => [Split::Train, Split::Test]
                .into_iter()
                .flat_map(idx_file_names)
                .filter(|name| find_idx_file(dir, name).is_none())
                .map(|name| format!("{name}[.gz]"))
                .collect(),
            DatasetKind::Cifar10 => {
                let batch_dir = cifar10_batch_dir(dir);
                [Split::Train, Split::Test]
                    .into_iter()
                    .flat_map(cifar10_file_names)
                    .filter(|name| !batch_dir.join(name).is_file())
                    .map(|name| name.to_string())
                    .collect()
            }
        }
    }

    /// Describes why `dir` does not contain the data set, or returns `None` when it does.
    fn problem_with(self, dir: &Path) -> Option<String> {
        if !dir.is_dir() {
            return Some("folder not found".to_string());
        }
        let missing = self.missing_files(dir);
        if missing.is_empty() {
            None
        } else {
            Some(format!("missing {}", missing.join(", ")))
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
            Some(problem) => Err(file_error(
                dir,
                format!(
                    "does not contain {}: {problem}. {}",
                    kind.display_name(),
                    kind.download_hint()
                ),
            )),
        };
    }

    let mut searched = Vec::new();
    for dir in kind.default_dirs() {
        match kind.problem_with(&dir) {
            None => {
                log::info!("using {} from {}", kind.display_name(), dir.display());
                return Ok(dir);
            }
            Some(problem) => searched.push(format!("{} ({problem})", dir.display())),
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
