//! Inputs that made the loaders panic or abort, found by the fuzz targets under `fuzz/`
//! (see FUZZING.md), each now rejected with an error.
//!
//! The checkpoint files under `tests/data/fuzz/` are the exact bytes the `checkpoint_model`
//! target fed to `checkpoint::from_bytes`. Before the fixes, `build_model` panicked on some of
//! them and tried to allocate gigabytes to petabytes for the others.

use std::path::{Path, PathBuf};

use wgcnn::checkpoint::{self, Checkpoint};
use wgcnn::nn::spec::MAX_TENSOR_ELEMENTS;
use wgcnn::nn::{LayerSpec, Model};
use wgcnn::{Conv2dParams, CpuBackend, Error, Pool2dParams};

fn fuzz_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name)
}

/// Parses a fuzz-found checkpoint, which is well-formed.
fn load(name: &str) -> Checkpoint {
    let path = fuzz_file(name);
    let bytes = std::fs::read(&path).unwrap();
    checkpoint::from_bytes(&path, &bytes)
        .unwrap_or_else(|error| panic!("{name} should parse: {error}"))
}

/// Asserts that building the checkpoint's model fails with an error that calls the file
/// corrupt and contains `parts`. An invalid architecture gives a corrupt-file error naming
/// the file. A stored tensor that does not fit the architecture gives a shape error naming
/// the tensor.
fn assert_build_rejected(name: &str, parts: &[&str]) {
    let checkpoint = load(name);
    let error = checkpoint
        .build_model(&CpuBackend)
        .expect_err("the model should be rejected");
    let message = error.to_string();
    match error {
        Error::File { .. } => assert!(message.contains(name), "{name}: {message}"),
        Error::Shape { .. } => assert!(message.contains("tensor"), "{name}: {message}"),
        error => panic!("{name}: expected a corrupt-file or shape error, got {error:?}"),
    }
    assert!(message.contains("corrupt"), "{name}: {message}");
    for part in parts {
        assert!(
            message.contains(part),
            "{name}: message lacks `{part}`: {message}"
        );
    }
}

/// Input shape `[0]` with a stored `linear` 0 -> 1: the bias initializer drew from
/// `[-inf, inf)` because the fan-in was 0, and the random number generator panicked.
#[test]
fn checkpoint_zero_input_rejected() {
    assert_build_rejected(
        "checkpoint-zero-input-linear.safetensors",
        &["input shape [0]", "no zero sizes"],
    );
}

/// Input shape `[2, 12015760771846766646]` before a `flatten`: the element count overflowed
/// `usize`, a panic with overflow checks and a wrong shape without them.
#[test]
fn checkpoint_overflowing_input_rejected() {
    assert_build_rejected(
        "checkpoint-flatten-overflow.safetensors",
        &["input shape [2, 12015760771846766646]", "elements"],
    );
}

/// A `linear` layer with 13961897047494127215 inputs: allocating its weight panicked with
/// "capacity overflow".
#[test]
fn checkpoint_huge_linear_input_rejected() {
    assert_build_rejected(
        "checkpoint-linear-capacity-overflow.safetensors",
        &["input shape [13961897047494127215]"],
    );
}

/// A `linear` layer 1 -> 1055236098313 without stored tensors: building it requested a
/// 4 TB weight before the checkpoint's tensors were compared.
#[test]
fn checkpoint_1e12_outputs_rejected() {
    assert_build_rejected(
        "checkpoint-linear-1e12-outputs.safetensors",
        &["model.0.weight", "[1055236098313, 1]"],
    );
}

/// A `conv2d` layer with 3590848719 input channels without stored tensors: building it
/// allocated a 14 GB weight.
#[test]
fn checkpoint_huge_conv_rejected() {
    assert_build_rejected(
        "checkpoint-conv-huge-channels.safetensors",
        &["model.0.weight", "[1, 3590848719, 1, 1]"],
    );
}

/// A `linear` layer 2123923096 -> 4 whose bias and Adam state are stored but whose weight is
/// not: building it allocated a 34 GB weight.
#[test]
fn checkpoint_missing_huge_weight_rejected() {
    assert_build_rejected(
        "checkpoint-linear-huge-weight-missing.safetensors",
        &["model.0.weight", "[4, 2123923096]"],
    );
}

/// Each fuzz-found file still parses and only `build_model` rejects it, so the tests above
/// exercise the architecture checks and not the parser.
#[test]
fn fuzz_checkpoints_parse() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut count = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("checkpoint-") {
            load(&name);
            count += 1;
        }
    }
    assert_eq!(count, 6, "one file per test above");
}

// The checks below cover the same arithmetic on the public API, with sizes the fuzz
// targets reached only through the files above or not at all.

#[test]
fn flatten_overflow_is_error() {
    let huge = 1usize << 62;
    let message = LayerSpec::Flatten.output_shape(&[4, huge]).unwrap_err();
    assert!(message.contains("cannot flatten"), "{message}");
    assert!(
        message.contains(&MAX_TENSOR_ELEMENTS.to_string()),
        "{message}"
    );
}

#[test]
fn conv_padding_overflow_is_error() {
    let params = Conv2dParams {
        padding: [usize::MAX, 0],
        ..Conv2dParams::default()
    };
    let error = params.shape(&[1, 1, 4, 4], &[1, 1, 3, 3]).unwrap_err();
    assert!(matches!(error, Error::Shape { .. }), "{error:?}");
}

#[test]
fn pool_padding_overflow_is_error() {
    let params = Pool2dParams {
        kernel: [usize::MAX, 2],
        stride: [1, 1],
        padding: [usize::MAX / 2 + 1, 0],
    };
    let error = params
        .output_shape("max_pool2d", &[1, 1, 4, 4])
        .unwrap_err();
    assert!(error.to_string().contains("half the kernel"), "{error}");
}

#[test]
fn conv_weight_overflow_is_error() {
    let conv = LayerSpec::Conv2d {
        in_channels: 1,
        out_channels: usize::MAX,
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        bias: false,
    };
    // Per-sample output [usize::MAX, 2, 2] and the weight [usize::MAX, 1, 1, 1] both exceed
    // the limit; the weight is named first.
    let message = conv.output_shape(&[1, 2, 2]).unwrap_err();
    assert!(message.contains("weight"), "{message}");
}

#[test]
fn linear_zero_outputs_is_error() {
    let error = Model::new(&CpuBackend, &[3], &[LayerSpec::linear(3, 0)], 0).unwrap_err();
    assert!(error.to_string().contains("out_features"), "{error}");
}

#[test]
fn batch_norm_nan_eps_is_error() {
    let layer = LayerSpec::BatchNorm2d {
        channels: 2,
        momentum: 0.1,
        eps: f32::NAN,
    };
    let error = Model::new(&CpuBackend, &[2, 3, 3], &[layer], 0).unwrap_err();
    assert!(error.to_string().contains("eps NaN"), "{error}");
}
