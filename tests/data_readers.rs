//! Data readers (IDX, CIFAR-10), batching and normalization, on the shipped Fashion-MNIST
//! slice and on synthetic files written to a temporary folder.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::rng;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use ndarray::{Array4, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgcnn::data::{
    CIFAR10_RECORD_BYTES, CIFAR10_SUBDIR, Dataset, DatasetKind, Normalization, Split,
    decode_cifar_batch, decode_idx_images, decode_idx_labels, find_dataset_dir, load_cifar10,
    load_fashion_mnist, load_idx_pair,
};

const SLICE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fashion-mnist-slice"
);
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A folder under the system temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("wgcnn-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn slice_path(name: &str) -> PathBuf {
    Path::new(SLICE_DIR).join(format!("{name}.gz"))
}

/// Reads and decompresses a file of the slice.
fn slice_raw(name: &str) -> Vec<u8> {
    let compressed = std::fs::read(slice_path(name)).unwrap();
    let mut raw = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut raw)
        .unwrap();
    raw
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Builds an IDX file from a magic number, dimensions and data.
fn idx_bytes(magic: u32, dimensions: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dimensions {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

/// Asserts that `result` failed and that its message contains each of `parts`.
fn assert_error<T: std::fmt::Debug>(result: wgcnn::Result<T>, parts: &[&str]) {
    let message = result.expect_err("expected an error").to_string();
    for part in parts {
        assert!(
            message.contains(part),
            "error message lacks `{part}`: {message}"
        );
    }
}

#[test]
fn slice_train_split_loads() {
    let data = load_fashion_mnist(Path::new(SLICE_DIR), Split::Train).unwrap();

    assert_eq!(data.len(), 3000);
    assert_eq!(data.images().shape(), &[3000, 1, 28, 28]);
    assert_eq!(data.image_shape(), [1, 28, 28]);
    assert_eq!(data.classes(), 10);
    assert!(data.labels().iter().all(|&l| l < 10));
    // The first training image of Fashion-MNIST is an ankle boot (class 9).
    assert_eq!(data.labels()[0], 9);
    assert_eq!(&data.labels()[..6], &[9, 0, 0, 3, 0, 2]);

    let min = data.images().iter().copied().fold(f32::INFINITY, f32::min);
    let max = data
        .images()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(min, 0.0);
    assert_eq!(max, 1.0);
    // Sum of the raw bytes of the first image, computed with Python from the IDX file.
    let first_sum: f32 = data.images().slice(s![0, .., .., ..]).sum();
    assert!(
        (first_sum - 76247.0 / 255.0).abs() < 1e-2,
        "sum {first_sum}"
    );
}

#[test]
fn slice_test_split_loads() {
    let data = load_fashion_mnist(Path::new(SLICE_DIR), Split::Test).unwrap();

    assert_eq!(data.images().shape(), &[1000, 1, 28, 28]);
    assert_eq!(data.labels().len(), 1000);
    assert_eq!(&data.labels()[..4], &[9, 2, 1, 1]);
    assert!(data.labels().iter().all(|&l| l < 10));
    assert!(data.images().iter().all(|&p| (0.0..=1.0).contains(&p)));
}

#[test]
fn raw_and_gzip_give_same_data() {
    let dir = TempDir::new("raw-and-gzip");
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        dir.write(name, &slice_raw(name));
    }
    // A raw file named `.gz` is still read raw: the format comes from the magic bytes.
    dir.write("misnamed-labels.gz", &slice_raw(TRAIN_LABELS));

    for split in [Split::Train, Split::Test] {
        let raw = load_fashion_mnist(&dir.0, split).unwrap();
        let gzip = load_fashion_mnist(Path::new(SLICE_DIR), split).unwrap();
        assert_eq!(raw.images(), gzip.images(), "{split} images");
        assert_eq!(raw.labels(), gzip.labels(), "{split} labels");
    }

    let misnamed =
        load_idx_pair(&slice_path(TRAIN_IMAGES), &dir.0.join("misnamed-labels.gz")).unwrap();
    assert_eq!(misnamed.labels()[0], 9);
}

#[test]
fn idx_rejects_wrong_magic() {
    let path = Path::new("images.idx");
    let wrong = idx_bytes(0x1234_5678, &[1, 2, 2], &[0; 4]);
    assert_error(
        decode_idx_images(&wrong, path),
        &["images.idx", "0x12345678", "0x00000803"],
    );

    let labels = idx_bytes(0x0000_0801, &[4], &[0; 4]);
    assert_error(
        decode_idx_images(&labels, path),
        &["images.idx", "0x00000801", "0x00000803", "swapped"],
    );
    let images = idx_bytes(0x0000_0803, &[1, 2, 2], &[0; 4]);
    assert_error(
        decode_idx_labels(&images, Path::new("labels.idx"), 10),
        &["labels.idx", "0x00000803", "0x00000801"],
    );

    // The same check applies after decompression.
    assert_error(
        decode_idx_images(&gzip(&wrong), path),
        &["images.idx", "0x12345678", "0x00000803"],
    );
}

#[test]
fn idx_rejects_wrong_dimension_count() {
    let two_dimensions = idx_bytes(0x0000_0802, &[2, 2], &[0; 4]);
    assert_error(
        decode_idx_images(&two_dimensions, Path::new("images.idx")),
        &["images.idx", "2 dimensions", "expected 3", "0x00000803"],
    );
    let three_dimensions = idx_bytes(0x0000_0803, &[1, 1, 1], &[0]);
    assert_error(
        decode_idx_labels(&three_dimensions, Path::new("labels.idx"), 10),
        &["labels.idx", "0x00000803"],
    );
}

#[test]
fn idx_rejects_truncated_file() {
    let raw = slice_raw(TEST_IMAGES);
    let path = Path::new("t10k-images-idx3-ubyte");

    let truncated = &raw[..raw.len() - 100];
    assert_error(
        decode_idx_images(truncated, path),
        &[
            "t10k-images-idx3-ubyte",
            "truncated",
            "[1000, 28, 28]",
            &format!("{} bytes", raw.len()),
            &format!("has {}", raw.len() - 100),
        ],
    );
    // The same data gzip-compressed: the decompressed length is reported.
    assert_error(
        decode_idx_images(&gzip(truncated), path),
        &["truncated", &format!("{} bytes", raw.len())],
    );

    assert_error(
        decode_idx_images(&raw[..10], path),
        &["truncated IDX header", "has 10 bytes", "expected 16"],
    );
    assert_error(
        decode_idx_images(&raw[..2], path),
        &["truncated IDX header", "has 2 bytes"],
    );
    assert_error(decode_idx_images(&[], path), &["has 0 bytes"]);

    let labels = slice_raw(TEST_LABELS);
    assert_error(
        decode_idx_labels(&labels[..labels.len() - 1], Path::new("labels"), 10),
        &["truncated", "1008 bytes", "has 1007"],
    );
}

#[test]
fn idx_rejects_trailing_bytes() {
    let mut raw = slice_raw(TEST_LABELS);
    raw.push(0);
    assert_error(
        decode_idx_labels(&raw, Path::new("labels"), 10),
        &["longer than its header declares", "1008 bytes", "has 1009"],
    );
    assert_error(
        decode_idx_labels(&gzip(&raw), Path::new("labels"), 10),
        &["longer than its header declares", "1008 bytes", "has 1009"],
    );
}

#[test]
fn idx_rejects_oversized_header_without_allocating() {
    // Dimensions whose product overflows usize, ones that describe 4 GB (over the 1 GiB cap,
    // which a gzip bomb could otherwise fill), and ones under the cap with too little data:
    // none may be allocated from the header's numbers.
    let overflow = idx_bytes(0x0000_0803, &[u32::MAX, u32::MAX, u32::MAX], &[0; 8]);
    assert_error(
        decode_idx_images(&overflow, Path::new("huge")),
        &["huge", "invalid"],
    );
    let large = idx_bytes(0x0000_0803, &[65536, 256, 256], &[0; 8]);
    assert_error(
        decode_idx_images(&large, Path::new("large")),
        &[
            "large",
            "[65536, 256, 256]",
            "4294967296 bytes",
            "1073741824",
        ],
    );
    let short = idx_bytes(0x0000_0803, &[16384, 256, 256], &[0; 8]);
    assert_error(
        decode_idx_images(&short, Path::new("short")),
        &[
            "truncated",
            "[16384, 256, 256]",
            "1073741840 bytes",
            "has 24",
        ],
    );
    let empty_image = idx_bytes(0x0000_0803, &[5, 0, 28], &[]);
    assert_error(
        decode_idx_images(&empty_image, Path::new("empty")),
        &["empty image size 0x28"],
    );
}

#[test]
fn idx_rejects_corrupt_gzip() {
    let compressed = std::fs::read(slice_path(TEST_IMAGES)).unwrap();

    let mut corrupt = compressed.clone();
    let middle = corrupt.len() / 2;
    for byte in &mut corrupt[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    assert_error(
        decode_idx_images(&corrupt, Path::new("t10k-images-idx3-ubyte.gz")),
        &["t10k-images-idx3-ubyte.gz", "corrupt gzip stream"],
    );

    // A stream cut short ends without its checksum.
    let cut = &compressed[..compressed.len() - 20];
    assert_error(
        decode_idx_images(cut, Path::new("cut.gz")),
        &["cut.gz", "corrupt gzip stream"],
    );

    // A complete stream whose CRC-32 in the trailer (the 8 bytes before the end) is wrong.
    let mut bad_checksum = compressed.clone();
    let crc = bad_checksum.len() - 8;
    bad_checksum[crc] ^= 0xff;
    let error = decode_idx_images(&bad_checksum, Path::new("crc.gz"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("checksum"), "{error}");
    assert_eq!(
        error.matches("corrupt gzip stream").count(),
        1,
        "the phrase repeats: {error}"
    );

    // Only the gzip magic bytes, no valid header after them.
    assert_error(
        decode_idx_labels(&[0x1f, 0x8b, 0, 0], Path::new("stub.gz"), 10),
        &["stub.gz", "corrupt gzip stream"],
    );
}

#[test]
fn idx_rejects_label_out_of_range() {
    let mut raw = slice_raw(TEST_LABELS);
    raw[8 + 5] = 10;
    assert_error(
        decode_idx_labels(&raw, Path::new("labels"), 10),
        &["labels", "label 10 at index 5", "0..=9", "10 classes"],
    );

    let dir = TempDir::new("label-range");
    let labels = dir.write("labels.gz", &gzip(&raw));
    assert_error(
        load_idx_pair(&slice_path(TEST_IMAGES), &labels),
        &["labels.gz", "label 10 at index 5"],
    );
}

#[test]
fn idx_rejects_count_mismatch() {
    assert_error(
        load_idx_pair(&slice_path(TRAIN_IMAGES), &slice_path(TEST_LABELS)),
        &[
            "t10k-labels-idx1-ubyte.gz",
            "1000 labels",
            "train-images-idx3-ubyte.gz",
            "3000 images",
        ],
    );
}

#[test]
fn idx_missing_file_is_named() {
    let dir = TempDir::new("idx-missing");
    dir.write(TRAIN_IMAGES, &slice_raw(TRAIN_IMAGES));
    assert_error(
        load_fashion_mnist(&dir.0, Split::Train),
        &[
            "train-labels-idx1-ubyte",
            "not found",
            "train-labels-idx1-ubyte.gz",
        ],
    );
}

#[test]
fn idx_mutations_never_panic() {
    let mut rng = rng("idx_mutations_never_panic");
    let valid = idx_bytes(0x0000_0803, &[3, 4, 5], &[7; 60]);
    let valid_gzip = gzip(&valid);
    for _ in 0..2000 {
        let mut bytes = if rng.random_bool(0.5) {
            valid.clone()
        } else {
            valid_gzip.clone()
        };
        for _ in 0..rng.random_range(1..4) {
            let index = rng.random_range(0..bytes.len());
            bytes[index] = rng.random();
        }
        let cut = rng.random_range(0..=bytes.len());
        let _ = decode_idx_images(&bytes[..cut], Path::new("fuzz"));
        let _ = decode_idx_labels(&bytes[..cut], Path::new("fuzz"), 10);
        let _ = decode_cifar_batch(&bytes[..cut], Path::new("fuzz"));
    }
}

/// CIFAR-10 records with label `i % 10` and pixel `(i + channel + offset) % 256`.
fn cifar_records(count: usize, first: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in first..first + count {
        bytes.push((i % 10) as u8);
        for channel in 0..3 {
            bytes.extend((0..1024).map(|offset| ((i + channel * 7 + offset) % 256) as u8));
        }
    }
    bytes
}

#[test]
fn cifar_reads_synthetic_batches() {
    let dir = TempDir::new("cifar-read");
    for batch in 1..=5 {
        let name = format!("{CIFAR10_SUBDIR}/data_batch_{batch}.bin");
        dir.write(&name, &cifar_records(3, (batch - 1) * 3));
    }
    dir.write(
        &format!("{CIFAR10_SUBDIR}/test_batch.bin"),
        &cifar_records(4, 100),
    );

    let train = load_cifar10(&dir.0, Split::Train).unwrap();
    assert_eq!(train.images().shape(), &[15, 3, 32, 32]);
    assert_eq!(train.classes(), 10);
    let expected_labels: Vec<u32> = (0..15).map(|i| i % 10).collect();
    assert_eq!(train.labels(), expected_labels.as_slice());
    // Image 7, green plane, row 2, column 3: offset 2 * 32 + 3 = 67; the byte is 7 + 7 + 67.
    let expected = (7 + 7 + 67) as f32 / 255.0;
    assert_eq!(train.images()[[7, 1, 2, 3]], expected);

    // The batch folder itself works as well as its parent.
    let test = load_cifar10(&dir.0.join(CIFAR10_SUBDIR), Split::Test).unwrap();
    assert_eq!(test.images().shape(), &[4, 3, 32, 32]);
    assert_eq!(test.labels(), &[0, 1, 2, 3]);
    assert_eq!(test.images()[[0, 2, 0, 0]], 114.0 / 255.0);
}

#[test]
fn cifar_rejects_bad_files() {
    let path = Path::new("data_batch_1.bin");
    let records = cifar_records(2, 0);

    assert_error(
        decode_cifar_batch(&records[..records.len() - 1], path),
        &["data_batch_1.bin", "6145 bytes", "3073", "30730000"],
    );
    assert_error(decode_cifar_batch(&[], path), &["size 0 bytes"]);

    let mut bad_label = records.clone();
    bad_label[CIFAR10_RECORD_BYTES] = 12;
    assert_error(
        decode_cifar_batch(&bad_label, path),
        &[
            "data_batch_1.bin",
            "label 12 of record 1",
            "byte offset 3073",
            "0..=9",
        ],
    );

    let dir = TempDir::new("cifar-missing");
    dir.write("data_batch_1.bin", &records);
    assert_error(
        load_cifar10(&dir.0, Split::Train),
        &["data_batch_2.bin", "not found"],
    );
}

#[test]
fn dataset_dir_explicit_and_missing() {
    let slice = Path::new(SLICE_DIR);
    assert_eq!(
        find_dataset_dir(DatasetKind::FashionMnist, Some(slice)).unwrap(),
        slice
    );

    let dir = TempDir::new("dataset-dir");
    dir.write(TRAIN_IMAGES, &[]);
    assert_error(
        find_dataset_dir(DatasetKind::FashionMnist, Some(&dir.0)),
        &[
            "does not contain Fashion-MNIST",
            "train-labels-idx1-ubyte[.gz]",
            "t10k-images-idx3-ubyte[.gz]",
            "apt-get install dataset-fashion-mnist",
        ],
    );
    assert_error(
        find_dataset_dir(DatasetKind::Cifar10, Some(&dir.0.join("absent"))),
        &["absent", "folder not found", "cifar-10-binary.tar.gz"],
    );
    assert_eq!(
        "Fashion-MNIST".parse::<DatasetKind>().unwrap(),
        DatasetKind::FashionMnist
    );
    assert!("imagenet".parse::<DatasetKind>().is_err());
}

#[test]
fn dataset_dir_names_non_regular_files() {
    let dir = TempDir::new("non-regular");
    for name in [TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        dir.write(
            &format!("{name}.gz"),
            &std::fs::read(slice_path(name)).unwrap(),
        );
    }
    let images = dir.0.join(TRAIN_IMAGES);
    let mut cases = vec![("folder", images.clone())];
    #[cfg(unix)]
    cases.push((
        "link to /dev/zero",
        dir.0.join(format!("{TRAIN_IMAGES}.gz")),
    ));

    for (what, path) in cases {
        if what == "folder" {
            std::fs::create_dir(&path).unwrap();
        } else {
            #[cfg(unix)]
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        }
        let message = find_dataset_dir(DatasetKind::FashionMnist, Some(&dir.0))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!(
                "{} exists but is not a regular file",
                path.display()
            )),
            "{what}: {message}"
        );
        assert!(!message.contains("missing"), "{what}: {message}");
        assert!(!message.contains("apt-get"), "{what}: {message}");
        if what == "folder" {
            std::fs::remove_dir(&path).unwrap();
        }
    }
}

#[test]
fn dataset_dir_that_is_a_file() {
    let file = slice_path(TRAIN_LABELS);
    let message = find_dataset_dir(DatasetKind::FashionMnist, Some(&file))
        .unwrap_err()
        .to_string();
    assert!(message.contains("is a file, not a folder"), "{message}");
    assert!(!message.contains("folder not found"), "{message}");
}

/// Builds a small data set whose image `i` is filled with the value `i`, so a batch shows
/// which images it contains.
fn numbered_dataset(count: usize) -> Dataset {
    let images = Array4::from_shape_fn((count, 2, 3, 1), |(i, _, _, _)| i as f32);
    let labels = (0..count as u32).map(|i| i % 7).collect();
    Dataset::new(images, labels, 7).unwrap()
}

/// Collects the image indices of each batch from its pixel values, and checks that each
/// image and label equals the one in `data`.
fn batch_indices(data: &Dataset, batches: wgcnn::data::BatchIter<'_>) -> Vec<Vec<usize>> {
    batches
        .map(|batch| {
            let indices: Vec<usize> = (0..batch.images.dim().0)
                .map(|b| batch.images[[b, 0, 0, 0]] as usize)
                .collect();
            for (b, &index) in indices.iter().enumerate() {
                let image = batch.images.slice(s![b, .., .., ..]);
                assert_eq!(image, data.images().slice(s![index, .., .., ..]));
                assert_eq!(batch.labels[b], data.labels()[index]);
            }
            indices
        })
        .collect()
}

#[test]
fn batches_cover_each_index_once() {
    let data = numbered_dataset(23);
    let mut rng = ChaCha8Rng::seed_from_u64(7);

    let sequential = batch_indices(&data, data.batches(5).unwrap());
    let sizes: Vec<usize> = sequential.iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    assert_eq!(sequential.concat(), (0..23).collect::<Vec<_>>());
    assert_eq!(data.batch_count(5), 5);
    assert_eq!(data.batches(5).unwrap().len(), 5);

    for _ in 0..3 {
        let shuffled = batch_indices(&data, data.shuffled_batches(5, &mut rng).unwrap());
        let sizes: Vec<usize> = shuffled.iter().map(Vec::len).collect();
        assert_eq!(sizes, [5, 5, 5, 5, 3]);
        let mut all = shuffled.concat();
        all.sort_unstable();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
    }

    assert_eq!(data.batches(23).unwrap().count(), 1);
    assert_eq!(data.batches(100).unwrap().next().unwrap().labels.len(), 23);
    assert_error(data.batches(0), &["batch size", "found 0"]);
}

#[test]
fn shuffle_follows_seed() {
    let data = numbered_dataset(50);
    let mut first = ChaCha8Rng::seed_from_u64(42);
    let mut second = ChaCha8Rng::seed_from_u64(42);

    let epoch_1 = data.shuffled_order(&mut first);
    let epoch_2 = data.shuffled_order(&mut first);
    assert_eq!(
        epoch_1,
        data.shuffled_order(&mut second),
        "same seed, epoch 1"
    );
    assert_eq!(
        epoch_2,
        data.shuffled_order(&mut second),
        "same seed, epoch 2"
    );
    assert_ne!(epoch_1, epoch_2, "successive epochs");
    assert_ne!(epoch_1, (0..50).collect::<Vec<_>>(), "shuffled order");

    let iter = data
        .shuffled_batches(8, &mut ChaCha8Rng::seed_from_u64(42))
        .unwrap();
    assert_eq!(iter.order(), epoch_1.as_slice());
}

#[test]
fn fill_batch_reuses_buffers() {
    let data = numbered_dataset(10);
    let mut images = vec![f32::NAN; 3 * data.image_len()];
    let mut labels = vec![99; 8];

    data.fill_batch(&[9, 0, 4], &mut images, &mut labels)
        .unwrap();
    assert_eq!(labels, [9 % 7, 0, 4]);
    let expected: Vec<f32> = [9.0, 0.0, 4.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, 6))
        .collect();
    assert_eq!(images, expected);

    assert_error(
        data.fill_batch(&[1, 10], &mut images[..12], &mut labels),
        &["10 is out of range", "10 images"],
    );
    assert_error(
        data.fill_batch(&[1, 2], &mut images, &mut labels),
        &["images_out has 18 elements", "12 elements"],
    );
}

#[test]
fn subset_and_take_copy_ranges() {
    let data = numbered_dataset(10);

    let middle = data.subset(3..6).unwrap();
    assert_eq!(middle.len(), 3);
    assert_eq!(middle.images()[[0, 1, 2, 0]], 3.0);
    assert_eq!(middle.labels(), &[3, 4, 5]);
    assert_eq!(middle.classes(), 7);
    assert!(data.subset(4..4).unwrap().is_empty());
    assert_error(data.subset(8..11), &["8..11", "0..10"]);

    assert_eq!(data.take(4).labels(), &[0, 1, 2, 3]);
    assert_eq!(data.take(40).len(), 10);
}

#[test]
fn dataset_new_checks_shapes() {
    let images = Array4::<f32>::zeros((3, 1, 2, 2));
    assert!(Dataset::new(images.clone(), vec![0, 1], 2).is_err());
    assert!(Dataset::new(images.clone(), vec![0, 1, 2], 2).is_err());
    assert!(Dataset::new(images, vec![0, 1, 1], 0).is_err());
    assert!(Dataset::new(Array4::zeros((3, 0, 2, 2)), vec![0; 3], 2).is_err());

    // A transposed view is stored in standard layout, so batching still works.
    let transposed = Array4::from_shape_fn((2, 1, 3, 3), |(i, _, y, x)| (i * 9 + y * 3 + x) as f32)
        .permuted_axes([0, 1, 3, 2]);
    let data = Dataset::new(transposed.clone(), vec![0, 1], 2).unwrap();
    let batch = data.batches(2).unwrap().next().unwrap();
    assert_eq!(batch.images, transposed);
}

/// Mean and population standard deviation of each channel, computed in f64 directly.
fn channel_stats(images: &Array4<f32>) -> Vec<(f64, f64)> {
    (0..images.dim().1)
        .map(|c| {
            let values: Vec<f64> = images
                .slice(s![.., c, .., ..])
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let variance =
                values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / values.len() as f64;
            (mean, variance.sqrt())
        })
        .collect()
}

#[test]
fn normalization_gives_zero_mean_unit_std() {
    let mut fashion = load_fashion_mnist(Path::new(SLICE_DIR), Split::Test).unwrap();
    let dir = TempDir::new("normalize");
    dir.write("test_batch.bin", &cifar_records(20, 3));
    let mut cifar = load_cifar10(&dir.0, Split::Test).unwrap();

    for (name, data) in [("fashion", &mut fashion), ("cifar", &mut cifar)] {
        let normalization = data.channel_mean_std().unwrap();
        let expected = channel_stats(data.images());
        assert_eq!(normalization.mean.len(), data.image_shape()[0], "{name}");
        for (c, &(mean, std)) in expected.iter().enumerate() {
            assert!(
                (f64::from(normalization.mean[c]) - mean).abs() < 1e-6,
                "{name} mean {c}"
            );
            assert!(
                (f64::from(normalization.std[c]) - std).abs() < 1e-6,
                "{name} std {c}"
            );
        }

        data.normalize(&normalization).unwrap();
        // f32 rounding of (x - mean) / std leaves errors of a few 1e-7 per value.
        for (c, (mean, std)) in channel_stats(data.images()).into_iter().enumerate() {
            assert!(mean.abs() < 1e-5, "{name} channel {c} mean {mean}");
            assert!((std - 1.0).abs() < 1e-5, "{name} channel {c} std {std}");
        }
    }
}

#[test]
fn normalization_rejects_bad_values() {
    let mut data = numbered_dataset(4);
    let wrong_channels = Normalization {
        mean: vec![0.5],
        std: vec![0.2],
    };
    assert_error(
        data.normalize(&wrong_channels),
        &["1 means", "1 standard deviations", "2 channels"],
    );
    let zero_std = Normalization {
        mean: vec![0.5, 0.5],
        std: vec![0.2, 0.0],
    };
    assert_error(
        data.normalize(&zero_std),
        &["channel 1", "standard deviation 0"],
    );
    assert!(data.take(0).channel_mean_std().is_err());
}

/// Loads the full data set from Debian's `dataset-fashion-mnist` package; run with `--ignored` on a
/// machine that has it.
#[test]
#[ignore = "needs /usr/share/datasets/fashion-mnist"]
fn full_fashion_mnist_loads() {
    let dir = find_dataset_dir(DatasetKind::FashionMnist, None).unwrap();
    let start = std::time::Instant::now();
    let train = load_fashion_mnist(&dir, Split::Train).unwrap();
    let test = load_fashion_mnist(&dir, Split::Test).unwrap();
    eprintln!("loaded both splits in {:?}", start.elapsed());

    assert_eq!(train.images().shape(), &[60000, 1, 28, 28]);
    assert_eq!(test.images().shape(), &[10000, 1, 28, 28]);
    assert_eq!(train.labels()[0], 9);
    let slice = load_fashion_mnist(Path::new(SLICE_DIR), Split::Train).unwrap();
    assert_eq!(train.take(3000).images(), slice.images());
}
