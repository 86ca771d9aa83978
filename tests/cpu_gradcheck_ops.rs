//! Finite-difference gradient checks of the CPU activation, pooling, linear and loss ops: the gradient
//! of a scalar function such as `sum(y * r)` for random `r`, by central differences, against
//! the backward op.

mod common;

use common::{assert_close, random, rng};
use ndarray::ArrayD;
use rand::Rng;
use rand::seq::SliceRandom;
use wgcnn::{Activation, Backend, CpuBackend, Pool2dParams};

/// The ops run in f32, so each difference quotient carries the f32 rounding of the scalar
/// function (about 1e-7 relative) divided by the step; with steps of 1e-3 to 1e-2 that is
/// below 1e-3 relative error over the whole gradient, while a wrong index or factor is off
/// by far more.
const GRADCHECK_TOLERANCE: f32 = 1e-3;

/// Central differences of `f` with respect to every element of `input`.
fn numerical_gradient(
    input: &ArrayD<f32>,
    step: f32,
    f: impl Fn(&ArrayD<f32>) -> f64,
) -> ArrayD<f32> {
    let mut gradient = ArrayD::zeros(input.raw_dim());
    let mut probe = input.clone();
    for (index, &value) in input.indexed_iter() {
        probe[&index] = value + step;
        let plus = f(&probe);
        let upper = probe[&index];
        probe[&index] = value - step;
        let minus = f(&probe);
        let lower = probe[&index];
        probe[&index] = value;
        // The rounded inputs, not 2 * step, are the true distance between the probes.
        gradient[&index] = ((plus - minus) / f64::from(upper - lower)) as f32;
    }
    gradient
}

/// `sum(y * r)` in f64.
fn weighted_sum(y: &ArrayD<f32>, r: &ArrayD<f32>) -> f64 {
    y.iter()
        .zip(r)
        .map(|(&y, &r)| f64::from(y) * f64::from(r))
        .sum()
}

/// Distinct values at least 0.01 apart in random order, so that no probe of a max pool
/// changes which element of a window is largest.
fn distinct_values(rng: &mut impl Rng, shape: &[usize]) -> ArrayD<f32> {
    let len: usize = shape.iter().product();
    let mut values: Vec<f32> = (0..len).map(|i| i as f32 * 0.01 - 1.0).collect();
    values.shuffle(rng);
    ArrayD::from_shape_vec(shape.to_vec(), values).unwrap()
}

fn pool_params() -> Vec<Pool2dParams> {
    vec![
        Pool2dParams::square(2),
        Pool2dParams {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        },
        Pool2dParams {
            kernel: [3, 2],
            stride: [1, 2],
            padding: [1, 0],
        },
    ]
}

#[test]
fn max_pool_gradient() {
    let mut rng = rng("max_pool_gradient");
    let cpu = CpuBackend::new();
    for params in pool_params() {
        let x = distinct_values(&mut rng, &[2, 3, 7, 6]);
        let out_shape = params.output_shape("test", x.shape()).unwrap();
        let r = random(&mut rng, &out_shape);
        let forward = |x: &ArrayD<f32>| {
            let mut y = ArrayD::zeros(out_shape.to_vec());
            cpu.max_pool2d_forward(x, &params, &mut y).unwrap();
            weighted_sum(&y, &r)
        };
        let mut dx = ArrayD::zeros(x.raw_dim());
        cpu.max_pool2d_backward(&x, &r, &params, &mut dx).unwrap();
        let expected = numerical_gradient(&x, 1e-3, forward);
        assert_close(&format!("{params:?}"), &dx, &expected, GRADCHECK_TOLERANCE);
    }
}

#[test]
fn avg_pool_gradient() {
    let mut rng = rng("avg_pool_gradient");
    let cpu = CpuBackend::new();
    for params in pool_params() {
        let x = random(&mut rng, &[2, 3, 7, 6]);
        let out_shape = params.output_shape("test", x.shape()).unwrap();
        let r = random(&mut rng, &out_shape);
        let forward = |x: &ArrayD<f32>| {
            let mut y = ArrayD::zeros(out_shape.to_vec());
            cpu.avg_pool2d_forward(x, &params, &mut y).unwrap();
            weighted_sum(&y, &r)
        };
        let mut dx = ArrayD::zeros(x.raw_dim());
        cpu.avg_pool2d_backward(&r, &params, &mut dx).unwrap();
        let expected = numerical_gradient(&x, 1e-2, forward);
        assert_close(&format!("{params:?}"), &dx, &expected, GRADCHECK_TOLERANCE);
    }
}

#[test]
fn linear_gradients() {
    let mut rng = rng("linear_gradients");
    let cpu = CpuBackend::new();
    for (batch_size, in_features, out_features) in [(3, 7, 5), (1, 1, 1), (4, 13, 9)] {
        let x = random(&mut rng, &[batch_size, in_features]);
        let weight = random(&mut rng, &[out_features, in_features]);
        let bias = random(&mut rng, &[out_features]);
        let r = random(&mut rng, &[batch_size, out_features]);
        let what = format!("{batch_size}x{in_features}->{out_features}");
        let forward = |x: &ArrayD<f32>, weight: &ArrayD<f32>| {
            let mut y = ArrayD::zeros(vec![batch_size, out_features]);
            cpu.linear_forward(x, weight, Some(&bias), &mut y).unwrap();
            weighted_sum(&y, &r)
        };

        let mut dx = ArrayD::zeros(x.raw_dim());
        cpu.linear_backward_input(&r, &weight, &mut dx).unwrap();
        let expected_dx = numerical_gradient(&x, 1e-2, |x| forward(x, &weight));
        assert_close(
            &format!("{what} dx"),
            &dx,
            &expected_dx,
            GRADCHECK_TOLERANCE,
        );

        let mut dweight = ArrayD::zeros(weight.raw_dim());
        cpu.linear_backward_weight(&x, &r, &mut dweight).unwrap();
        let expected_dweight = numerical_gradient(&weight, 1e-2, |weight| forward(&x, weight));
        assert_close(
            &format!("{what} dweight"),
            &dweight,
            &expected_dweight,
            GRADCHECK_TOLERANCE,
        );
    }
}

#[test]
fn cross_entropy_gradient() {
    let mut rng = rng("cross_entropy_gradient");
    let cpu = CpuBackend::new();
    for (rows, classes) in [(2, 5), (1, 3), (3, 1), (4, 10)] {
        let logits = random(&mut rng, &[rows, classes]).mapv(|v| 2.0 * v);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..classes as u32))
            .collect();
        let loss_of = |logits: &ArrayD<f32>| {
            let mut loss = ArrayD::zeros(vec![1]);
            let mut dlogits = ArrayD::zeros(logits.raw_dim());
            cpu.softmax_cross_entropy(logits, &labels, &mut loss, &mut dlogits)
                .unwrap();
            f64::from(loss[[0]])
        };
        let mut loss = ArrayD::zeros(vec![1]);
        let mut dlogits = ArrayD::zeros(logits.raw_dim());
        cpu.softmax_cross_entropy(&logits, &labels, &mut loss, &mut dlogits)
            .unwrap();
        let expected = numerical_gradient(&logits, 1e-2, loss_of);
        if classes == 1 {
            // One class: the loss is 0 for every logit and so is its gradient.
            assert!(dlogits.iter().all(|&g| g == 0.0), "{dlogits:?}");
            assert!(expected.iter().all(|&g| g == 0.0), "{expected:?}");
        } else {
            assert_close(
                &format!("{rows}x{classes}"),
                &dlogits,
                &expected,
                GRADCHECK_TOLERANCE,
            );
        }
    }
}

#[test]
fn mse_gradient() {
    let mut rng = rng("mse_gradient");
    let cpu = CpuBackend::new();
    for shape in [vec![1], vec![3, 4], vec![2, 3, 5]] {
        let pred = random(&mut rng, &shape);
        let target = random(&mut rng, &shape);
        let loss_of = |pred: &ArrayD<f32>| {
            let mut loss = ArrayD::zeros(vec![1]);
            let mut dpred = ArrayD::zeros(pred.raw_dim());
            cpu.mse_loss(pred, &target, &mut loss, &mut dpred).unwrap();
            f64::from(loss[[0]])
        };
        let mut loss = ArrayD::zeros(vec![1]);
        let mut dpred = ArrayD::zeros(pred.raw_dim());
        cpu.mse_loss(&pred, &target, &mut loss, &mut dpred).unwrap();
        let expected = numerical_gradient(&pred, 1e-2, loss_of);
        assert_close(
            &format!("{shape:?}"),
            &dpred,
            &expected,
            GRADCHECK_TOLERANCE,
        );
    }
}

#[test]
fn activation_gradients() {
    let mut rng = rng("activation_gradients");
    let cpu = CpuBackend;
    let activations = [
        Activation::Relu,
        Activation::LeakyRelu {
            negative_slope: 0.1,
        },
        Activation::Sigmoid,
        Activation::Tanh,
    ];
    for activation in activations {
        // Values at least 0.01 from 0, so that no probe of step 1e-3 crosses the kink of
        // ReLU and leaky ReLU.
        let x = random(&mut rng, &[2, 3, 5, 7]).mapv(|v| if v.abs() < 0.01 { v + 0.05 } else { v });
        let r = random(&mut rng, x.shape());
        let forward = |input: &ArrayD<f32>| {
            let mut y = cpu.zeros("y", input.shape()).unwrap();
            cpu.activation_forward(activation, input, &mut y).unwrap();
            weighted_sum(&y, &r)
        };
        let mut y = cpu.zeros("y", x.shape()).unwrap();
        cpu.activation_forward(activation, &x, &mut y).unwrap();
        let mut dx = cpu.full("dx", x.shape(), f32::NAN).unwrap();
        cpu.activation_backward(activation, &x, &y, &r, &mut dx)
            .unwrap();
        let numeric = numerical_gradient(&x, 1e-3, forward);
        assert_close(
            &format!("{activation:?} dx"),
            &dx,
            &numeric,
            GRADCHECK_TOLERANCE,
        );
    }
}
