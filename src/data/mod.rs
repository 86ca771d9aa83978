//! Data sets for training and evaluation: readers for IDX files (MNIST, Fashion-MNIST) and
//! CIFAR-10 binary batches, per-channel normalization, and shuffled batches.
//!
//! Every reader validates its input before it allocates from a size in a file header, and
//! returns [`Error::File`] naming the file and the expected and actual values on malformed
//! input; no input bytes make it panic.

mod batch;
mod cifar;
mod dataset;
mod idx;
mod locate;
mod normalize;

use std::path::Path;

pub use batch::{Batch, BatchIter};
pub use cifar::{
    CIFAR10_CLASSES, CIFAR10_RECORD_BYTES, CIFAR10_SUBDIR, decode_cifar_batch, load_cifar10,
};
pub use dataset::Dataset;
pub use idx::{
    IDX_CLASSES, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MAX_IDX_DATA_BYTES, decode_idx_images,
    decode_idx_labels, load_fashion_mnist, load_idx_pair, load_mnist,
};
pub use locate::{DatasetKind, find_dataset_dir, load_dataset};
pub use normalize::Normalization;

use crate::error::Error;

/// The part of a data set to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training images (60,000 for MNIST and Fashion-MNIST, 50,000 for CIFAR-10).
    Train,
    /// The test images (10,000 for each of the three data sets).
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Builds an [`Error::File`] for `path`.
fn file_error(path: &Path, message: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a whole file, mapping a failure to [`Error::Io`] with the path.
fn read_file(path: &Path) -> crate::error::Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
