//! Reader for the binary version of CIFAR-10 (`cifar-10-binary.tar.gz`).
//!
//! Each batch file is a sequence of 3073-byte records: one label byte, then a 32x32 image as
//! 1024 red, 1024 green and 1024 blue bytes, each plane row-major (so CHW order). The
//! distributed files hold 10,000 records each.

use std::path::{Path, PathBuf};

use ndarray::Array4;

use super::{Dataset, Split, file_error, read_file};
use crate::error::Result;

/// Number of classes in CIFAR-10.
pub const CIFAR10_CLASSES: usize = 10;

/// Bytes per CIFAR-10 record: 1 label byte and 3 x 32 x 32 pixel bytes.
pub const CIFAR10_RECORD_BYTES: usize = 1 + CHANNELS * SIDE * SIDE;

/// The folder that `cifar-10-binary.tar.gz` extracts to.
pub const CIFAR10_SUBDIR: &str = "cifar-10-batches-bin";

const CHANNELS: usize = 3;
const SIDE: usize = 32;
const RECORDS_PER_FILE: usize = 10_000;

pub(super) const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub(super) const TEST_FILES: [&str; 1] = ["test_batch.bin"];

/// Returns the batch file names of `split`.
pub(super) fn cifar10_file_names(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => &TRAIN_FILES,
        Split::Test => &TEST_FILES,
    }
}

/// Returns `dir` itself when it contains batch files, else `dir/cifar-10-batches-bin` when
/// that exists, else `dir`.
pub(super) fn cifar10_batch_dir(dir: &Path) -> PathBuf {
    let has_batches = |d: &Path| {
        TRAIN_FILES
            .iter()
            .chain(&TEST_FILES)
            .any(|name| d.join(name).is_file())
    };
    let nested = dir.join(CIFAR10_SUBDIR);
    if !has_batches(dir) && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Loads the CIFAR-10 batch files of `split` (`data_batch_1.bin` to `data_batch_5.bin`, or
/// `test_batch.bin`) from `dir` or from `dir/cifar-10-batches-bin`; pixels are scaled from
/// `0..=255` to `[0, 1]`.
///
/// # Shapes
///
/// The result's images are `[count, 3, 32, 32]` (RGB), with [`CIFAR10_CLASSES`] classes.
///
/// # Errors
///
/// [`crate::Error::File`] when a batch file is missing, empty, not a multiple of
/// [`CIFAR10_RECORD_BYTES`] long, or contains a label not below 10; [`crate::Error::Io`] when a
/// file cannot be read.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<Dataset> {
    let batch_dir = cifar10_batch_dir(dir);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for name in cifar10_file_names(split) {
        let path = batch_dir.join(name);
        if !path.is_file() {
            return Err(file_error(
                &path,
                format!(
                    "not found; CIFAR-10 needs {} and {} in {} or in its subfolder {CIFAR10_SUBDIR}",
                    TRAIN_FILES.join(", "),
                    TEST_FILES[0],
                    dir.display()
                ),
            ));
        }
        append_records(&read_file(&path)?, &path, &mut pixels, &mut labels)?;
    }

    let count = labels.len();
    log::info!(
        "loaded {count} CIFAR-10 {split} images from {}",
        batch_dir.display()
    );
    to_dataset(pixels, labels, &batch_dir)
}

/// Decodes the bytes of one CIFAR-10 batch file. `path` only names the file in errors.
///
/// # Errors
///
/// As for [`load_cifar10`], for this file alone.
pub fn decode_cifar_batch(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    append_records(bytes, path, &mut pixels, &mut labels)?;
    to_dataset(pixels, labels, path)
}

fn append_records(
    bytes: &[u8],
    path: &Path,
    pixels: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR10_RECORD_BYTES) {
        return Err(file_error(
            path,
            format!(
                "size {} bytes is not a positive multiple of the {CIFAR10_RECORD_BYTES}-byte \
                 CIFAR-10 record (1 label byte + 3072 pixel bytes); the file is truncated or \
                 not a CIFAR-10 binary batch (expected {} bytes for {RECORDS_PER_FILE} records)",
                bytes.len(),
                RECORDS_PER_FILE * CIFAR10_RECORD_BYTES
            ),
        ));
    }
    let count = bytes.len() / CIFAR10_RECORD_BYTES;
    if count != RECORDS_PER_FILE {
        log::warn!(
            "{}: {count} records, the distributed CIFAR-10 batches have {RECORDS_PER_FILE}",
            path.display()
        );
    }

    // The reservation is sized by the bytes actually read, not by a header.
    pixels.reserve(count * (CIFAR10_RECORD_BYTES - 1));
    labels.reserve(count);
    for (index, record) in bytes.chunks_exact(CIFAR10_RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= CIFAR10_CLASSES {
            return Err(file_error(
                path,
                format!(
                    "label {label} of record {index} (byte offset {}) is out of range; \
                     expected labels 0..={} for {CIFAR10_CLASSES} classes",
                    index * CIFAR10_RECORD_BYTES,
                    CIFAR10_CLASSES - 1
                ),
            ));
        }
        labels.push(u32::from(label));
        pixels.extend(record[1..].iter().map(|&p| f32::from(p) / 255.0));
    }
    Ok(())
}

fn to_dataset(pixels: Vec<f32>, labels: Vec<u32>, path: &Path) -> Result<Dataset> {
    let shape = (labels.len(), CHANNELS, SIDE, SIDE);
    let images = Array4::from_shape_vec(shape, pixels).map_err(|error| {
        file_error(
            path,
            format!("cannot shape the pixels as {shape:?}: {error}"),
        )
    })?;
    Dataset::new(images, labels, CIFAR10_CLASSES)
}
