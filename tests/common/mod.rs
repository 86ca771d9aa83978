//! Helpers shared by the integration tests: adapters, random data, relative-error checks.
#![allow(dead_code)]

pub mod cases;
pub mod small;

use ndarray::{ArrayD, Dimension, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgcnn::{BackendChoice, GpuBackend, GpuOptions};

/// Environment variable listing the GPU backends the tests run on, comma-separated.
/// Default `vulkan,gl`: on the CI machine both run on Mesa's llvmpipe.
pub const TEST_BACKENDS_ENV: &str = "WGCNN_TEST_BACKENDS";

/// Environment variable that fixes the random seed of a test run, to replay a failure.
pub const TEST_SEED_ENV: &str = "WGCNN_TEST_SEED";

/// Float32 kernels that sum up to a few thousand products in another order than the CPU
/// reference differ by a few units in the last place per term; 1e-5 relative error over the
/// whole tensor allows that and still catches a wrong index or a missing term.
pub const SUM_TOLERANCE: f32 = 1e-5;

/// Element-wise kernels evaluate the same formula; `exp` and `tanh` of WGSL may differ from
/// Rust's by a few ulp.
pub const ELEMENTWISE_TOLERANCE: f32 = 1e-6;

/// One GPU backend per entry of `WGCNN_TEST_BACKENDS`. Panics when an adapter is missing,
/// so that a machine without a driver fails the GPU tests instead of skipping them.
pub fn gpu_backends() -> Vec<GpuBackend> {
    let list = std::env::var(TEST_BACKENDS_ENV).unwrap_or_else(|_| "vulkan,gl".to_string());
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let backend: BackendChoice = name
                .parse()
                .unwrap_or_else(|error| panic!("{TEST_BACKENDS_ENV}: {error}"));
            let options = GpuOptions::from_env()
                .expect("invalid GPU options in the environment")
                .with_backend(backend);
            let gpu = GpuBackend::new(&options)
                .unwrap_or_else(|error| panic!("GPU tests need a `{name}` adapter: {error}"));
            eprintln!("testing on {}", wgcnn::Backend::device_name(&gpu));
            gpu
        })
        .collect()
}

/// A random generator seeded from `WGCNN_TEST_SEED` or fresh entropy; the seed is printed
/// so that a failure can be replayed.
pub fn rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var(TEST_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: {TEST_SEED_ENV}={seed}");
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in [-1, 1).
pub fn random(rng: &mut impl Rng, shape: &[usize]) -> ArrayD<f32> {
    let len = shape.iter().product();
    let values = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}

/// Relative error `|actual - expected|₂ / |expected|₂` over the whole tensor, or infinity
/// when the shapes differ or `actual` contains a NaN (an element the kernel never wrote).
pub fn relative_error(actual: &ArrayD<f32>, expected: &ArrayD<f32>) -> f32 {
    if actual.shape() != expected.shape() {
        return f32::INFINITY;
    }
    let mut diff = 0.0f64;
    let mut norm = 0.0f64;
    for (&a, &e) in actual.iter().zip(expected.iter()) {
        if a.is_nan() != e.is_nan() {
            return f32::INFINITY;
        }
        diff += (f64::from(a) - f64::from(e)).powi(2);
        norm += f64::from(e).powi(2);
    }
    (diff.sqrt() / norm.sqrt().max(1e-30)) as f32
}

/// Asserts a relative error of at most `tolerance`; the message shows the first differing
/// elements with both values.
pub fn assert_close(what: &str, actual: &ArrayD<f32>, expected: &ArrayD<f32>, tolerance: f32) {
    let error = relative_error(actual, expected);
    if error <= tolerance {
        return;
    }
    let mut lines = Vec::new();
    if actual.shape() != expected.shape() {
        lines.push(format!(
            "shape {:?} != expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    } else {
        for ((index, &a), &e) in actual.indexed_iter().zip(expected.iter()) {
            let scale = e.abs().max(1e-3);
            if a.is_nan() || (a - e).abs() > tolerance * scale * 10.0 {
                lines.push(format!("  at {:?}: got {a}, expected {e}", index.slice()));
                if lines.len() == 8 {
                    break;
                }
            }
        }
    }
    panic!(
        "{what}: relative error {error:e} exceeds {tolerance:e}\n{}",
        lines.join("\n")
    );
}
