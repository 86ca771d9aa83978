//! Dropout: the GPU mask against the CPU mask bit for bit, the kept fraction, the gradient,
//! and invalid probabilities.

mod common;

use common::{assert_close, gpu_backends, random, rng};
use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use wgcnn::params::dropout_keeps;
use wgcnn::{Backend, CpuBackend, Error};

/// Asserts that two tensors hold the same bits; the message shows the first difference.
fn assert_same_bits(what: &str, actual: &ArrayD<f32>, expected: &ArrayD<f32>) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes differ");
    let first_difference = actual
        .iter()
        .zip(expected.iter())
        .position(|(a, e)| a.to_bits() != e.to_bits());
    if let Some(index) = first_difference {
        panic!(
            "{what}: element {index} is {}, expected {}",
            actual.iter().nth(index).unwrap(),
            expected.iter().nth(index).unwrap()
        );
    }
}

/// Dropout forward and backward of `x` and `dy` on `backend`, into NaN-poisoned outputs.
fn run<B: Backend>(
    backend: &B,
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    p: f32,
    seed: u32,
) -> (ArrayD<f32>, ArrayD<f32>) {
    let x_tensor = backend.tensor("x", x.view()).unwrap();
    let dy_tensor = backend.tensor("dy", dy.view()).unwrap();
    let mut y = backend.full("y", x.shape(), f32::NAN).unwrap();
    let mut dx = backend.full("dx", dy.shape(), f32::NAN).unwrap();
    backend.dropout_forward(&x_tensor, p, seed, &mut y).unwrap();
    backend
        .dropout_backward(&dy_tensor, p, seed, &mut dx)
        .unwrap();
    (backend.read(&y).unwrap(), backend.read(&dx).unwrap())
}

#[test]
fn dropout_gpu_matches_cpu_bits() {
    let mut rng = rng("dropout_gpu_matches_cpu_bits");
    let cpu = CpuBackend::new();
    // 105 and 4097 elements: not multiples of the workgroup size.
    let shapes = [vec![1, 3, 7, 5], vec![2, 5, 1], vec![17, 241]];
    for gpu in gpu_backends() {
        for shape in &shapes {
            for p in [0.0, 0.1, 0.5, 0.93] {
                let seed = rng.random::<u32>();
                let x = random(&mut rng, shape);
                let dy = random(&mut rng, shape);
                let (y_cpu, dx_cpu) = run(&cpu, &x, &dy, p, seed);
                let (y_gpu, dx_gpu) = run(&gpu, &x, &dy, p, seed);
                let what = format!("{shape:?} p {p} seed {seed} on {}", gpu.device_name());
                assert_same_bits(&format!("{what} y"), &y_gpu, &y_cpu);
                assert_same_bits(&format!("{what} dx"), &dx_gpu, &dx_cpu);
            }
        }
    }
}

#[test]
fn dropout_cpu_follows_mask() {
    let mut rng = rng("dropout_cpu_follows_mask");
    let p = 0.4;
    let seed = rng.random::<u32>();
    let x = random(&mut rng, &[3, 4, 5, 6]);
    let dy = random(&mut rng, &[3, 4, 5, 6]);
    let (y, dx) = run(&CpuBackend::new(), &x, &dy, p, seed);
    let scale = 1.0 / (1.0 - p);
    for (index, (((&y, &dx), &x), &dy)) in y.iter().zip(&dx).zip(&x).zip(&dy).enumerate() {
        let keep = dropout_keeps(seed, index as u32, p);
        let (expected_y, expected_dx) = if keep {
            (x * scale, dy * scale)
        } else {
            (0.0, 0.0)
        };
        assert_eq!(y, expected_y, "y at {index}");
        assert_eq!(dx, expected_dx, "dx at {index}");
    }
}

#[test]
fn dropout_kept_fraction_near_one_minus_p() {
    let mut rng = rng("dropout_kept_fraction_near_one_minus_p");
    let len = 1 << 20;
    let x = ArrayD::from_elem(IxDyn(&[len]), 1.0f32);
    let gpus = gpu_backends();
    for p in [0.1f32, 0.5, 0.9] {
        let seed = rng.random::<u32>();
        // For an unbiased mask the kept count is Binomial(len, 1 - p). A fixed seed either
        // passes or fails forever, so the bound is 6 standard deviations: a correct hash
        // fails it with probability about 2e-9 per seed.
        let expected = f64::from(1.0 - p) * len as f64;
        let bound = 6.0 * (len as f64 * f64::from(p) * f64::from(1.0 - p)).sqrt();

        let (y_cpu, _) = run(&CpuBackend::new(), &x, &x, p, seed);
        let kept = y_cpu.iter().filter(|&&v| v != 0.0).count() as f64;
        assert!(
            (kept - expected).abs() <= bound,
            "p {p} seed {seed}: kept {kept} of {len}, expected {expected} ± {bound}"
        );

        for gpu in &gpus {
            let (y_gpu, _) = run(gpu, &x, &x, p, seed);
            let kept_gpu = y_gpu.iter().filter(|&&v| v != 0.0).count() as f64;
            assert_eq!(
                kept_gpu,
                kept,
                "p {p} seed {seed}: kept count on {} differs from the CPU",
                gpu.device_name()
            );
        }
    }
}

#[test]
fn dropout_seeds_draw_different_masks() {
    let x = ArrayD::from_elem(IxDyn(&[4096]), 1.0f32);
    let cpu = CpuBackend::new();
    let (first, _) = run(&cpu, &x, &x, 0.5, 1);
    let (second, _) = run(&cpu, &x, &x, 0.5, 2);
    let differing = first.iter().zip(&second).filter(|(a, b)| a != b).count();
    // Independent masks with p = 0.5 differ at half of the elements: 2048 ± 32 (one standard
    // deviation), so 1500 is far below any plausible count.
    assert!(
        differing > 1500,
        "seeds 1 and 2 differ at only {differing} of 4096 elements"
    );
}

#[test]
fn dropout_zero_probability_copies() {
    let mut rng = rng("dropout_zero_probability_copies");
    let x = random(&mut rng, &[5, 7, 3]);
    let dy = random(&mut rng, &[5, 7, 3]);
    let seed = rng.random::<u32>();
    let (y, dx) = run(&CpuBackend::new(), &x, &dy, 0.0, seed);
    assert_same_bits("y on cpu", &y, &x);
    assert_same_bits("dx on cpu", &dx, &dy);
    for gpu in gpu_backends() {
        let (y, dx) = run(&gpu, &x, &dy, 0.0, seed);
        assert_same_bits(&format!("y on {}", gpu.device_name()), &y, &x);
        assert_same_bits(&format!("dx on {}", gpu.device_name()), &dx, &dy);
    }
}

fn check_invalid_probabilities<B: Backend>(backend: &B) {
    let x = backend.zeros("x", &[2, 3]).unwrap();
    let mut y = backend.zeros("y", &[2, 3]).unwrap();
    for p in [1.0, 1.5, -0.1, f32::NAN] {
        let forward = backend.dropout_forward(&x, p, 7, &mut y);
        assert!(
            matches!(forward, Err(Error::InvalidArgument { .. })),
            "forward with p {p} on {}: expected an invalid-argument error, got {forward:?}",
            backend.device_name()
        );
        let backward = backend.dropout_backward(&x, p, 7, &mut y);
        assert!(
            matches!(backward, Err(Error::InvalidArgument { .. })),
            "backward with p {p} on {}: expected an invalid-argument error, got {backward:?}",
            backend.device_name()
        );
    }
}

fn check_shape_mismatch<B: Backend>(backend: &B) {
    let x = backend.zeros("x", &[2, 3]).unwrap();
    let mut y = backend.zeros("y", &[3, 2]).unwrap();
    match backend.dropout_forward(&x, 0.5, 7, &mut y) {
        Err(Error::Shape { message, .. }) => assert!(
            message.contains("[2, 3]") && message.contains("[3, 2]"),
            "message on {} must name both shapes: {message}",
            backend.device_name()
        ),
        other => panic!(
            "expected a shape error on {}, got {other:?}",
            backend.device_name()
        ),
    }
}

#[test]
fn dropout_invalid_probability_fails() {
    check_invalid_probabilities(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_invalid_probabilities(&gpu);
    }
}

#[test]
fn dropout_shape_mismatch_fails() {
    check_shape_mismatch(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_shape_mismatch(&gpu);
    }
}

/// Dropout is linear in its input, so central differences of `sum(y * r)` in `f64` are exact
/// up to the float32 rounding of `y`, about 6e-8 relative.
const FINITE_DIFFERENCE_TOLERANCE: f32 = 1e-4;

#[test]
fn dropout_cpu_gradient_matches_finite_differences() {
    let mut rng = rng("dropout_cpu_gradient_matches_finite_differences");
    let cpu = CpuBackend::new();
    let shape = [2, 3, 4];
    let p = 0.3;
    let seed = rng.random::<u32>();
    let x = random(&mut rng, &shape);
    let weights = random(&mut rng, &shape);
    let loss = |x: &ArrayD<f32>| -> f64 {
        let mut y = cpu.zeros("y", &shape).unwrap();
        cpu.dropout_forward(x, p, seed, &mut y).unwrap();
        y.iter()
            .zip(&weights)
            .map(|(&y, &r)| f64::from(y) * f64::from(r))
            .sum()
    };

    let step = 1e-2f32;
    let mut numeric = ArrayD::zeros(IxDyn(&shape));
    for (index, gradient) in numeric.iter_mut().enumerate() {
        let value = x.as_slice().unwrap()[index];
        let mut plus = x.clone();
        let mut minus = x.clone();
        plus.as_slice_mut().unwrap()[index] = value + step;
        minus.as_slice_mut().unwrap()[index] = value - step;
        let actual_step = f64::from(value + step) - f64::from(value - step);
        *gradient = ((loss(&plus) - loss(&minus)) / actual_step) as f32;
    }

    let mut dx = cpu.zeros("dx", &shape).unwrap();
    cpu.dropout_backward(&weights, p, seed, &mut dx).unwrap();
    assert_close("dropout dx", &dx, &numeric, FINITE_DIFFERENCE_TOLERANCE);
}
