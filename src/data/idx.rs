//! Readers for IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An IDX file is a big-endian `u32` magic number `0x0000_08dd` (`08` = unsigned bytes,
//! `dd` = number of dimensions), one big-endian `u32` per dimension, then the bytes in
//! row-major order. Images files have 3 dimensions `[count, rows, columns]`, labels files 1.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::Array4;

use super::{Dataset, Split, file_error, read_file};
use crate::error::Result;

/// Magic number of an IDX images file: unsigned bytes, 3 dimensions.
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX labels file: unsigned bytes, 1 dimension.
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Number of classes in MNIST and in Fashion-MNIST.
pub const IDX_CLASSES: usize = 10;

/// The first two bytes of every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The maximum number of data bytes one IDX file may declare: 1 GiB, over 20 times the Fashion-MNIST
/// training images. A gzip stream expands up to about 1000 to 1, so without a cap a small
/// crafted file could make the reader store gigabytes, and four times that as `f32` pixels.
pub const MAX_IDX_DATA_BYTES: usize = 1 << 30;

/// The IDX type code of unsigned bytes, the third byte of the magic number.
const IDX_UNSIGNED_BYTE: u8 = 0x08;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdxKind {
    Images,
    Labels,
}

impl IdxKind {
    fn magic(self) -> u32 {
        match self {
            IdxKind::Images => IDX_IMAGES_MAGIC,
            IdxKind::Labels => IDX_LABELS_MAGIC,
        }
    }

    fn dimensions(self) -> usize {
        (self.magic() & 0xff) as usize
    }

    fn name(self) -> &'static str {
        match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        }
    }

    fn layout(self) -> &'static str {
        match self {
            IdxKind::Images => "[count, rows, columns]",
            IdxKind::Labels => "[count]",
        }
    }

    fn other(self) -> IdxKind {
        match self {
            IdxKind::Images => IdxKind::Labels,
            IdxKind::Labels => IdxKind::Images,
        }
    }
}

/// A decoded IDX file: its dimensions and its data bytes.
struct IdxArray {
    dimensions: Vec<usize>,
    data: Vec<u8>,
}

/// Loads the IDX files for `split` from `dir`, with the MNIST file names
/// (`train-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, ...), each raw or with `.gz`.
///
/// # Errors
///
/// As for [`load_idx_pair`], and [`crate::Error::File`] when neither name of a file exists.
pub fn load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let (images, labels) = idx_paths(dir, split)?;
    load_idx_pair(&images, &labels)
}

/// Loads Fashion-MNIST; it uses the file names and format of MNIST, see [`load_mnist`].
///
/// # Errors
///
/// As for [`load_mnist`].
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    load_mnist(dir, split)
}

/// Returns the base names of the images and labels files of `split`, without `.gz`.
pub(super) fn idx_file_names(split: Split) -> [&'static str; 2] {
    match split {
        Split::Train => ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
        Split::Test => ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
    }
}

/// Finds the file in `dir` named `name` or `name.gz`, preferring the uncompressed one.
pub(super) fn find_idx_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|path| path.is_file())
}

fn idx_paths(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let [images, labels] = idx_file_names(split).map(|name| {
        find_idx_file(dir, name).ok_or_else(|| {
            file_error(
                &dir.join(name),
                format!("not found (looked for {name} and {name}.gz)"),
            )
        })
    });
    Ok((images?, labels?))
}

/// Loads an IDX images file and its IDX labels file; pixels are scaled from `0..=255` to
/// `[0, 1]` and the images get one channel. Each file may be raw or gzip-compressed, detected
/// from the gzip magic bytes `1f 8b`, not from the extension.
///
/// # Shapes
///
/// The result's images are `[count, 1, rows, columns]`, with [`IDX_CLASSES`] classes.
///
/// # Errors
///
/// [`crate::Error::Io`] when a file cannot be read, and [`crate::Error::File`] naming the
/// file with the expected and actual values for a wrong magic number or dimension count, a
/// truncated or overlong file, a corrupt gzip stream, a label not below [`IDX_CLASSES`], or
/// image and label counts that differ.
pub fn load_idx_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset> {
    let images = decode_idx_images(&read_file(images_path)?, images_path)?;
    let labels = decode_idx_labels(&read_file(labels_path)?, labels_path, IDX_CLASSES)?;

    let image_count = images.dim().0;
    if labels.len() != image_count {
        return Err(file_error(
            labels_path,
            format!(
                "has {} labels, but {} has {image_count} images; expected the same count \
                 (are both files from the same split?)",
                labels.len(),
                images_path.display()
            ),
        ));
    }

    log::info!(
        "loaded {image_count} images of {:?} from {}",
        &images.shape()[1..],
        images_path.display()
    );
    Dataset::new(images, labels, IDX_CLASSES)
}

/// Decodes the bytes of an IDX images file (raw or gzip) into `[count, 1, rows, columns]`
/// pixels in `[0, 1]`. `path` only names the file in errors.
///
/// # Errors
///
/// As for [`load_idx_pair`], for this file alone.
pub fn decode_idx_images(bytes: &[u8], path: &Path) -> Result<Array4<f32>> {
    let idx = decode_idx(bytes, path, IdxKind::Images)?;
    let [count, rows, columns] = [idx.dimensions[0], idx.dimensions[1], idx.dimensions[2]];
    if rows == 0 || columns == 0 {
        return Err(file_error(
            path,
            format!("has an empty image size {rows}x{columns}; expected at least 1x1"),
        ));
    }

    let pixels = idx.data.iter().map(|&p| f32::from(p) / 255.0).collect();
    Array4::from_shape_vec((count, 1, rows, columns), pixels).map_err(|error| {
        file_error(
            path,
            format!("cannot shape the pixels as [{count}, 1, {rows}, {columns}]: {error}"),
        )
    })
}

/// Decodes the bytes of an IDX labels file (raw or gzip) and checks each label is below
/// `classes`. `path` only names the file in errors.
///
/// # Errors
///
/// As for [`load_idx_pair`], for this file alone.
pub fn decode_idx_labels(bytes: &[u8], path: &Path, classes: usize) -> Result<Vec<u32>> {
    let idx = decode_idx(bytes, path, IdxKind::Labels)?;
    if let Some(index) = idx.data.iter().position(|&l| usize::from(l) >= classes) {
        return Err(file_error(
            path,
            format!(
                "label {} at index {index} is out of range; expected labels 0..={} for \
                 {classes} classes",
                idx.data[index],
                classes.saturating_sub(1)
            ),
        ));
    }
    Ok(idx.data.into_iter().map(u32::from).collect())
}

fn decode_idx(bytes: &[u8], path: &Path, kind: IdxKind) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        parse_idx(MultiGzDecoder::new(bytes), true, path, kind)
    } else {
        parse_idx(bytes, false, path, kind)
    }
}

/// Parses an IDX stream, `compressed` when it comes from the gzip decoder. Memory use is
/// bounded by the size the header declares and by the data actually present, whichever is
/// smaller; a longer stream is decoded to its end without being stored.
fn parse_idx(
    mut reader: impl Read,
    compressed: bool,
    path: &Path,
    kind: IdxKind,
) -> Result<IdxArray> {
    let source = if compressed {
        "the decompressed data"
    } else {
        "the file"
    };
    let magic_bytes = read_up_to(&mut reader, 4, path)?;
    let [b0, b1, b2, b3] = magic_bytes[..] else {
        return Err(file_error(
            path,
            format!(
                "truncated IDX header: {source} has {} bytes, expected at least 4 for the \
                 magic number",
                magic_bytes.len()
            ),
        ));
    };
    check_magic(u32::from_be_bytes([b0, b1, b2, b3]), path, kind)?;

    let rank = kind.dimensions();
    let header_len = 4 + 4 * rank;
    let dimension_bytes = read_up_to(&mut reader, 4 * rank, path)?;
    if dimension_bytes.len() < 4 * rank {
        return Err(file_error(
            path,
            format!(
                "truncated IDX header: {source} has {} bytes, expected {header_len} for the \
                 magic number and {rank} dimensions",
                4 + dimension_bytes.len()
            ),
        ));
    }
    let dimensions: Vec<usize> = dimension_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();

    let Some(data_len) = dimensions.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        return Err(file_error(
            path,
            format!(
                "IDX dimensions {dimensions:?} describe more than {} bytes; the header is \
                 invalid",
                usize::MAX
            ),
        ));
    };
    if data_len > MAX_IDX_DATA_BYTES {
        return Err(file_error(
            path,
            format!(
                "the IDX header declares dimensions {dimensions:?}, {data_len} bytes of data, \
                 more than the {MAX_IDX_DATA_BYTES} bytes wgcnn reads from one file; split the \
                 data set into smaller files"
            ),
        ));
    }
    // The expected total may exceed usize on a 32-bit target, so it is computed in u128.
    let expected_len = header_len as u128 + data_len as u128;

    // The buffer grows with the bytes actually read, never to a size taken from the header.
    let mut data = Vec::new();
    (&mut reader)
        .take((data_len as u64).saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|error| read_error(error, path))?;

    if data.len() < data_len {
        return Err(file_error(
            path,
            format!(
                "truncated IDX {} file: the header declares dimensions {dimensions:?} ({}), so \
                 {source} should have {expected_len} bytes, but it has {}",
                kind.name(),
                kind.layout(),
                header_len + data.len()
            ),
        ));
    }
    if data.len() > data_len {
        // Decoding the rest without storing it gives the exact length, and for gzip it also
        // reaches the checksum, so a corrupt stream is reported as such.
        let rest = std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(|error| read_error(error, path))?;
        let actual_len = header_len as u128 + data.len() as u128 + u128::from(rest);
        return Err(file_error(
            path,
            format!(
                "IDX {} file is longer than its header declares: dimensions {dimensions:?} ({}) \
                 need {expected_len} bytes, but {source} has {actual_len}",
                kind.name(),
                kind.layout(),
            ),
        ));
    }
    Ok(IdxArray { dimensions, data })
}

fn check_magic(magic: u32, path: &Path, kind: IdxKind) -> Result<()> {
    if magic == kind.magic() {
        return Ok(());
    }
    let [b0, b1, type_code, rank] = magic.to_be_bytes();
    let message = if magic == kind.other().magic() {
        format!(
            "IDX magic number 0x{magic:08x} is that of an IDX {} file, expected 0x{:08x} for \
             {}; are the images and labels paths swapped?",
            kind.other().name(),
            kind.magic(),
            kind.name()
        )
    } else if b0 == 0 && b1 == 0 && type_code == IDX_UNSIGNED_BYTE {
        format!(
            "IDX {} file has {rank} dimensions (magic number 0x{magic:08x}), expected {} \
             {} (magic number 0x{:08x})",
            kind.name(),
            kind.dimensions(),
            kind.layout(),
            kind.magic()
        )
    } else {
        format!(
            "wrong IDX magic number 0x{magic:08x}, expected 0x{:08x} for an IDX {} file; is \
             this an MNIST-format file?",
            kind.magic(),
            kind.name()
        )
    };
    Err(file_error(path, message))
}

/// Reads up to `len` bytes; fewer only at the end of the stream.
fn read_up_to(reader: &mut impl Read, len: usize, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len);
    reader
        .take(len as u64)
        .read_to_end(&mut bytes)
        .map_err(|error| read_error(error, path))?;
    Ok(bytes)
}

/// Reading from a byte slice cannot fail, so every read error comes from the gzip decoder.
fn read_error(error: std::io::Error, path: &Path) -> crate::Error {
    // Some decoder messages already start with "corrupt gzip stream", so the prefix is not
    // repeated for them.
    let detail = error.to_string();
    let detail = detail
        .strip_prefix("corrupt gzip stream ")
        .unwrap_or(&detail);
    file_error(
        path,
        format!("corrupt gzip stream ({detail}); the file is damaged, download it again"),
    )
}
