//! Batch normalization: GPU kernels against the CPU reference, the CPU gradient against finite
//! differences, and both paths against PyTorch.

mod common;

use common::{
    ELEMENTWISE_TOLERANCE, SUM_TOLERANCE, assert_close, cases, gpu_backends, random, rng,
};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::Rng;
use wgcnn::{Backend, CpuBackend, Error};

/// PyTorch computed the reference values in float64. Float32 sums over the 100 values of a
/// channel land within a few units in the last place of them.
const PYTORCH_TOLERANCE: f32 = 1e-5;

/// The inputs of one training step, its backward pass and an evaluation pass.
struct Inputs {
    x: ArrayD<f32>,
    gamma: ArrayD<f32>,
    beta: ArrayD<f32>,
    running_mean: ArrayD<f32>,
    running_var: ArrayD<f32>,
    dy: ArrayD<f32>,
    x_eval: ArrayD<f32>,
    momentum: f32,
    eps: f32,
}

/// Every output of the three ops, read back to the host.
struct Outputs {
    y: ArrayD<f32>,
    running_mean: ArrayD<f32>,
    running_var: ArrayD<f32>,
    saved_mean: ArrayD<f32>,
    saved_inv_std: ArrayD<f32>,
    dx: ArrayD<f32>,
    dgamma: ArrayD<f32>,
    dbeta: ArrayD<f32>,
    y_eval: ArrayD<f32>,
}

/// Random data whose channels have different means and spreads, as activations do. The mean
/// stays within 7 standard deviations of zero, so rounding the mean to float32 costs
/// `x - mean` about 7 ulp of relative error, which keeps the GPU within [`SUM_TOLERANCE`].
fn random_images(rng: &mut impl Rng, shape: &[usize]) -> ArrayD<f32> {
    let mut images = random(rng, shape);
    for mut channel in images.axis_iter_mut(Axis(1)) {
        let offset = rng.random_range(-2.0..2.0f32);
        let spread = rng.random_range(0.5..2.0f32);
        channel.mapv_inplace(|v| v * spread + offset);
    }
    images
}

/// Random inputs. Per channel, `dy` has a shift and a component along `x`, as the gradient of
/// a real loss does, so `dbeta = sum(dy)` and `dgamma = sum(dy * x_hat)` are far from zero:
/// their relative error then measures the kernel, not the cancellation of random signs.
fn random_inputs(rng: &mut impl Rng, shape: &[usize], momentum: f32, eps: f32) -> Inputs {
    let channels = [shape[1]];
    let x = random_images(rng, shape);
    let mut dy = random(rng, shape);
    for (mut dy, x) in dy.axis_iter_mut(Axis(1)).zip(x.axis_iter(Axis(1))) {
        let mean = x.mean().unwrap();
        let sign = if rng.random() { 1.0 } else { -1.0 };
        let weight = sign * rng.random_range(0.5..1.0f32);
        let shift = sign * rng.random_range(0.2..0.5f32);
        dy.zip_mut_with(&x, |dy, &x| *dy += weight * (x - mean) + shift);
    }
    Inputs {
        x,
        gamma: random(rng, &channels).mapv(|v| 1.0 + 0.5 * v),
        beta: random(rng, &channels),
        running_mean: random(rng, &channels),
        running_var: random(rng, &channels).mapv(|v| 1.0 + 0.5 * v),
        dy,
        x_eval: random_images(rng, shape),
        momentum,
        eps,
    }
}

/// Runs a training step, its backward pass, and an evaluation pass with the updated running
/// statistics. Every output starts as NaN, so an element an op never writes fails the checks.
fn run<B: Backend>(backend: &B, inputs: &Inputs) -> Outputs {
    let shape = inputs.x.shape();
    let channels = [shape[1]];
    let x = backend.tensor("x", inputs.x.view()).unwrap();
    let gamma = backend.tensor("gamma", inputs.gamma.view()).unwrap();
    let beta = backend.tensor("beta", inputs.beta.view()).unwrap();
    let mut running_mean = backend
        .tensor("running_mean", inputs.running_mean.view())
        .unwrap();
    let mut running_var = backend
        .tensor("running_var", inputs.running_var.view())
        .unwrap();
    let dy = backend.tensor("dy", inputs.dy.view()).unwrap();
    let x_eval = backend.tensor("x_eval", inputs.x_eval.view()).unwrap();

    let mut y = backend.full("y", shape, f32::NAN).unwrap();
    let mut saved_mean = backend.full("saved_mean", &channels, f32::NAN).unwrap();
    let mut saved_inv_std = backend.full("saved_inv_std", &channels, f32::NAN).unwrap();
    backend
        .batch_norm2d_forward_train(
            &x,
            &gamma,
            &beta,
            &mut running_mean,
            &mut running_var,
            inputs.momentum,
            inputs.eps,
            &mut y,
            &mut saved_mean,
            &mut saved_inv_std,
        )
        .unwrap();

    let mut dx = backend.full("dx", shape, f32::NAN).unwrap();
    let mut dgamma = backend.full("dgamma", &channels, f32::NAN).unwrap();
    let mut dbeta = backend.full("dbeta", &channels, f32::NAN).unwrap();
    backend
        .batch_norm2d_backward(
            &x,
            &dy,
            &gamma,
            &saved_mean,
            &saved_inv_std,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        )
        .unwrap();

    let mut y_eval = backend.full("y_eval", shape, f32::NAN).unwrap();
    backend
        .batch_norm2d_forward_eval(
            &x_eval,
            &gamma,
            &beta,
            &running_mean,
            &running_var,
            inputs.eps,
            &mut y_eval,
        )
        .unwrap();

    Outputs {
        y: backend.read(&y).unwrap(),
        running_mean: backend.read(&running_mean).unwrap(),
        running_var: backend.read(&running_var).unwrap(),
        saved_mean: backend.read(&saved_mean).unwrap(),
        saved_inv_std: backend.read(&saved_inv_std).unwrap(),
        dx: backend.read(&dx).unwrap(),
        dgamma: backend.read(&dgamma).unwrap(),
        dbeta: backend.read(&dbeta).unwrap(),
        y_eval: backend.read(&y_eval).unwrap(),
    }
}

fn assert_outputs_close(what: &str, actual: &Outputs, expected: &Outputs, tolerance: f32) {
    let pairs = [
        ("y", &actual.y, &expected.y),
        ("running_mean", &actual.running_mean, &expected.running_mean),
        ("running_var", &actual.running_var, &expected.running_var),
        ("saved_mean", &actual.saved_mean, &expected.saved_mean),
        (
            "saved_inv_std",
            &actual.saved_inv_std,
            &expected.saved_inv_std,
        ),
        ("dx", &actual.dx, &expected.dx),
        ("dgamma", &actual.dgamma, &expected.dgamma),
        ("dbeta", &actual.dbeta, &expected.dbeta),
        ("y_eval", &actual.y_eval, &expected.y_eval),
    ];
    for (name, actual, expected) in pairs {
        assert_close(&format!("{what} {name}"), actual, expected, tolerance);
    }
}

/// Asserts that two tensors hold the same bits; the message shows the first difference.
fn assert_same_bits(what: &str, actual: &ArrayD<f32>, expected: &ArrayD<f32>) {
    let first_difference = actual
        .iter()
        .zip(expected.iter())
        .position(|(a, e)| a.to_bits() != e.to_bits());
    if let Some(index) = first_difference {
        panic!(
            "{what}: element {index} is {} but was {} before",
            actual.iter().nth(index).unwrap(),
            expected.iter().nth(index).unwrap()
        );
    }
}

#[test]
fn batch_norm_matches_cpu() {
    let mut rng = rng("batch_norm_matches_cpu");
    let cpu = CpuBackend::new();
    // The shapes cover channel counts 1, 3, 5 and 16, and batch 1 with several pixels. With
    // 1x1 and 1x5 images, the workgroup's step crosses whole images. Planes of 35, 99 and 1023
    // pixels are not multiples of the workgroup size. The last shape has 102,400 values per
    // channel, more than lavapipe runs in the loops of a single invocation.
    //
    // Channels of fewer than 9 values are left out. dx removes the components of dy along 1
    // and x_hat, and with 2 or 3 values little is left, so the float32 rounding of the
    // subtracted terms dominates its relative error.
    let shapes = [
        [2, 3, 7, 5],
        [1, 5, 9, 11],
        [3, 1, 13, 3],
        [9, 3, 1, 1],
        [2, 3, 1, 5],
        [8, 16, 33, 31],
        [5, 5, 64, 1],
        [25, 2, 64, 64],
    ];
    let settings = [(0.1, 1e-5), (0.3, 1e-3)];
    for gpu in gpu_backends() {
        for shape in shapes {
            for (momentum, eps) in settings {
                let inputs = random_inputs(&mut rng, &shape, momentum, eps);
                let expected = run(&cpu, &inputs);
                let actual = run(&gpu, &inputs);
                let what = format!(
                    "{shape:?} momentum {momentum} eps {eps} on {}",
                    gpu.device_name()
                );
                assert_outputs_close(&what, &actual, &expected, SUM_TOLERANCE);
            }
        }
    }
}

#[test]
fn batch_norm_matches_pytorch() {
    let case = &cases::of_op("batch_norm2d")[0];
    let inputs = &case["inputs"];
    let params = &case["params"];
    let inputs = Inputs {
        x: cases::tensor(&inputs["x"]),
        gamma: cases::tensor(&inputs["weight"]),
        beta: cases::tensor(&inputs["bias"]),
        running_mean: cases::tensor(&inputs["running_mean"]),
        running_var: cases::tensor(&inputs["running_var"]),
        dy: cases::tensor(&case["grad_output"]),
        x_eval: cases::tensor(&inputs["x_eval"]),
        momentum: params["momentum"].as_f64().unwrap() as f32,
        eps: params["eps"].as_f64().unwrap() as f32,
    };
    let outputs = &case["outputs"];
    let grads = &case["grads"];
    let expected = [
        ("y", cases::tensor(&outputs["y"])),
        ("running_mean", cases::tensor(&outputs["running_mean"])),
        ("running_var", cases::tensor(&outputs["running_var"])),
        ("y_eval", cases::tensor(&outputs["y_eval"])),
        ("dx", cases::tensor(&grads["x"])),
        ("dgamma", cases::tensor(&grads["weight"])),
        ("dbeta", cases::tensor(&grads["bias"])),
    ];

    let check = |device: String, actual: Outputs| {
        for (name, expected) in &expected {
            let actual = match *name {
                "y" => &actual.y,
                "running_mean" => &actual.running_mean,
                "running_var" => &actual.running_var,
                "y_eval" => &actual.y_eval,
                "dx" => &actual.dx,
                "dgamma" => &actual.dgamma,
                _ => &actual.dbeta,
            };
            let what = format!("{} {name} on {device}", case["name"]);
            assert_close(&what, actual, expected, PYTORCH_TOLERANCE);
        }
    };
    let cpu = CpuBackend::new();
    check(cpu.device_name(), run(&cpu, &inputs));
    for gpu in gpu_backends() {
        check(gpu.device_name(), run(&gpu, &inputs));
    }
}

#[test]
fn batch_norm_reruns_give_same_bits() {
    let mut rng = rng("batch_norm_reruns_give_same_bits");
    let inputs = random_inputs(&mut rng, &[8, 16, 17, 19], 0.1, 1e-5);
    for gpu in gpu_backends() {
        let first = run(&gpu, &inputs);
        let second = run(&gpu, &inputs);
        let pairs = [
            ("y", &first.y, &second.y),
            ("saved_mean", &first.saved_mean, &second.saved_mean),
            ("saved_inv_std", &first.saved_inv_std, &second.saved_inv_std),
            ("running_var", &first.running_var, &second.running_var),
            ("dx", &first.dx, &second.dx),
            ("dgamma", &first.dgamma, &second.dgamma),
            ("dbeta", &first.dbeta, &second.dbeta),
        ];
        for (name, first, second) in pairs {
            let what = format!("{name} of the second run on {}", gpu.device_name());
            assert_same_bits(&what, second, first);
        }
    }
}

/// `sum(y * r)` in `f64` after a training step on the CPU.
fn weighted_output_sum(
    x: &ArrayD<f32>,
    gamma: &ArrayD<f32>,
    beta: &ArrayD<f32>,
    weights: &ArrayD<f32>,
) -> f64 {
    let channels = [x.shape()[1]];
    let mut running_mean = ArrayD::zeros(IxDyn(&channels));
    let mut running_var = ArrayD::ones(IxDyn(&channels));
    let mut saved_mean = ArrayD::zeros(IxDyn(&channels));
    let mut saved_inv_std = ArrayD::zeros(IxDyn(&channels));
    let mut y = ArrayD::zeros(x.raw_dim());
    CpuBackend::new()
        .batch_norm2d_forward_train(
            x,
            gamma,
            beta,
            &mut running_mean,
            &mut running_var,
            0.1,
            1e-5,
            &mut y,
            &mut saved_mean,
            &mut saved_inv_std,
        )
        .unwrap();
    y.iter()
        .zip(weights.iter())
        .map(|(&y, &r)| f64::from(y) * f64::from(r))
        .sum()
}

/// Central differences of `loss` with respect to every element of `param`, dividing by the
/// step that float32 rounding actually took.
fn finite_differences(
    param: &ArrayD<f32>,
    step: f32,
    loss: impl Fn(&ArrayD<f32>) -> f64,
) -> ArrayD<f32> {
    let mut gradient = ArrayD::zeros(param.raw_dim());
    for (index, gradient) in gradient.iter_mut().enumerate() {
        let mut plus = param.clone();
        let mut minus = param.clone();
        let value = param.as_slice().unwrap()[index];
        plus.as_slice_mut().unwrap()[index] = value + step;
        minus.as_slice_mut().unwrap()[index] = value - step;
        let actual_step = f64::from(value + step) - f64::from(value - step);
        *gradient = ((loss(&plus) - loss(&minus)) / actual_step) as f32;
    }
    gradient
}

/// Rounding each `y` to float32 (about 6e-8 relative) adds up to about 1e-6 in the 30 to 36
/// terms of `sum(y * r)`. A step of 1e-2 turns that into about 1e-4 error in a gradient of
/// order 1, and the truncation error of central differences is of order step² = 1e-4.
const FINITE_DIFFERENCE_TOLERANCE: f32 = 2e-3;

#[test]
fn batch_norm_cpu_gradient_matches_finite_differences() {
    let mut rng = rng("batch_norm_cpu_gradient_matches_finite_differences");
    let cpu = CpuBackend::new();
    for shape in [[2, 3, 3, 2], [1, 2, 5, 3]] {
        let x = random_images(&mut rng, &shape);
        let gamma = random(&mut rng, &[shape[1]]).mapv(|v| 1.0 + 0.5 * v);
        let beta = random(&mut rng, &[shape[1]]);
        let weights = random(&mut rng, &shape);

        let channels = [shape[1]];
        let mut running_mean = cpu.zeros("running_mean", &channels).unwrap();
        let mut running_var = cpu.full("running_var", &channels, 1.0).unwrap();
        let mut saved_mean = cpu.zeros("saved_mean", &channels).unwrap();
        let mut saved_inv_std = cpu.zeros("saved_inv_std", &channels).unwrap();
        let mut y = cpu.zeros("y", &shape).unwrap();
        cpu.batch_norm2d_forward_train(
            &x,
            &gamma,
            &beta,
            &mut running_mean,
            &mut running_var,
            0.1,
            1e-5,
            &mut y,
            &mut saved_mean,
            &mut saved_inv_std,
        )
        .unwrap();
        let mut dx = cpu.zeros("dx", &shape).unwrap();
        let mut dgamma = cpu.zeros("dgamma", &channels).unwrap();
        let mut dbeta = cpu.zeros("dbeta", &channels).unwrap();
        cpu.batch_norm2d_backward(
            &x,
            &weights,
            &gamma,
            &saved_mean,
            &saved_inv_std,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        )
        .unwrap();

        let step = 1e-2;
        let numeric_dx = finite_differences(&x, step, |x| {
            weighted_output_sum(x, &gamma, &beta, &weights)
        });
        let numeric_dgamma = finite_differences(&gamma, step, |gamma| {
            weighted_output_sum(&x, gamma, &beta, &weights)
        });
        let numeric_dbeta = finite_differences(&beta, step, |beta| {
            weighted_output_sum(&x, &gamma, beta, &weights)
        });
        let what = format!("{shape:?}");
        assert_close(
            &format!("{what} dx"),
            &dx,
            &numeric_dx,
            FINITE_DIFFERENCE_TOLERANCE,
        );
        assert_close(
            &format!("{what} dgamma"),
            &dgamma,
            &numeric_dgamma,
            FINITE_DIFFERENCE_TOLERANCE,
        );
        assert_close(
            &format!("{what} dbeta"),
            &dbeta,
            &numeric_dbeta,
            FINITE_DIFFERENCE_TOLERANCE,
        );
    }
}

/// Runs a training step of `x` with fresh per-channel tensors of `channels` elements.
fn train_step<B: Backend>(backend: &B, x: &ArrayD<f32>, channels: usize) -> wgcnn::Result<()> {
    let shape = x.shape();
    let x = backend.tensor("x", x.view())?;
    let gamma = backend.full("gamma", &[channels], 1.0)?;
    let beta = backend.zeros("beta", &[channels])?;
    let mut running_mean = backend.zeros("running_mean", &[channels])?;
    let mut running_var = backend.full("running_var", &[channels], 1.0)?;
    let mut y = backend.zeros("y", shape)?;
    let mut saved_mean = backend.zeros("saved_mean", &[channels])?;
    let mut saved_inv_std = backend.zeros("saved_inv_std", &[channels])?;
    backend.batch_norm2d_forward_train(
        &x,
        &gamma,
        &beta,
        &mut running_mean,
        &mut running_var,
        0.1,
        1e-5,
        &mut y,
        &mut saved_mean,
        &mut saved_inv_std,
    )
}

fn check_single_value_rejected<B: Backend>(backend: &B) {
    let x = ArrayD::from_elem(IxDyn(&[1, 3, 1, 1]), 0.5);
    match train_step(backend, &x, 3) {
        Err(Error::Shape { message, .. }) => assert!(
            message.contains("more than 1 value per channel"),
            "unexpected message on {}: {message}",
            backend.device_name()
        ),
        other => panic!(
            "expected a shape error on {}, got {other:?}",
            backend.device_name()
        ),
    }
}

fn check_channel_mismatch_rejected<B: Backend>(backend: &B) {
    let x = ArrayD::zeros(IxDyn(&[2, 3, 4, 4]));
    match train_step(backend, &x, 4) {
        Err(Error::Shape { message, .. }) => assert!(
            message.contains("[3]") && message.contains("[4]"),
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
fn batch_norm_single_value_per_channel_fails() {
    check_single_value_rejected(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_single_value_rejected(&gpu);
    }
}

#[test]
fn batch_norm_channel_mismatch_fails() {
    check_channel_mismatch_rejected(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_channel_mismatch_rejected(&gpu);
    }
}

#[test]
fn batch_norm_eval_accepts_single_value() {
    let mut rng = rng("batch_norm_eval_accepts_single_value");
    let cpu = CpuBackend::new();
    let x = random(&mut rng, &[1, 3, 1, 1]);
    let gamma = random(&mut rng, &[3]);
    let beta = random(&mut rng, &[3]);
    let running_mean = random(&mut rng, &[3]);
    let running_var = random(&mut rng, &[3]).mapv(|v| 1.0 + 0.5 * v);
    let mut expected = cpu.full("y", &[1, 3, 1, 1], f32::NAN).unwrap();
    cpu.batch_norm2d_forward_eval(
        &x,
        &gamma,
        &beta,
        &running_mean,
        &running_var,
        1e-5,
        &mut expected,
    )
    .unwrap();
    for c in 0..3 {
        let by_hand = gamma[c] * (x[[0, c, 0, 0]] - running_mean[c])
            / (running_var[c] + 1e-5).sqrt()
            + beta[c];
        assert!(
            (expected[[0, c, 0, 0]] - by_hand).abs() <= 1e-6 * by_hand.abs().max(1.0),
            "channel {c}: {} != {by_hand}",
            expected[[0, c, 0, 0]]
        );
    }

    for gpu in gpu_backends() {
        let upload = |name, array: &ArrayD<f32>| gpu.tensor(name, array.view()).unwrap();
        let mut y = gpu.full("y", &[1, 3, 1, 1], f32::NAN).unwrap();
        gpu.batch_norm2d_forward_eval(
            &upload("x", &x),
            &upload("gamma", &gamma),
            &upload("beta", &beta),
            &upload("running_mean", &running_mean),
            &upload("running_var", &running_var),
            1e-5,
            &mut y,
        )
        .unwrap();
        let what = format!("eval of one pixel on {}", gpu.device_name());
        assert_close(
            &what,
            &gpu.read(&y).unwrap(),
            &expected,
            ELEMENTWISE_TOLERANCE,
        );
    }
}
