//! Activation kernels against the CPU reference.

mod common;

use common::{ELEMENTWISE_TOLERANCE, assert_close, gpu_backends, random, rng};
use wgcnn::{Activation, Backend, CpuBackend};

const ACTIVATIONS: [Activation; 4] = [
    Activation::Relu,
    Activation::LeakyRelu {
        negative_slope: 0.1,
    },
    Activation::Sigmoid,
    Activation::Tanh,
];

#[test]
fn activation_forward_backward_match_cpu() {
    let mut rng = rng("activation_forward_backward_match_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for activation in ACTIVATIONS {
            // 1 x 3 x 7 x 5 = 105 elements: not a multiple of the workgroup size.
            for shape in [vec![1, 3, 7, 5], vec![2, 70]] {
                let mut x = random(&mut rng, &shape);
                x.as_slice_mut().unwrap()[0] = 0.0;
                x.as_slice_mut().unwrap()[1] = 40.0;
                x.as_slice_mut().unwrap()[2] = -40.0;
                let dy = random(&mut rng, &shape);
                let what = format!("{activation:?} {shape:?} on {}", gpu.device_name());

                let mut y_cpu = cpu.zeros("y", &shape).unwrap();
                cpu.activation_forward(activation, &x, &mut y_cpu).unwrap();
                let mut dx_cpu = cpu.zeros("dx", &shape).unwrap();
                cpu.activation_backward(activation, &x, &y_cpu, &dy, &mut dx_cpu)
                    .unwrap();

                let x_gpu = gpu.tensor("x", x.view()).unwrap();
                let dy_gpu = gpu.tensor("dy", dy.view()).unwrap();
                let mut y_gpu = gpu.full("y", &shape, f32::NAN).unwrap();
                gpu.activation_forward(activation, &x_gpu, &mut y_gpu)
                    .unwrap();
                let mut dx_gpu = gpu.full("dx", &shape, f32::NAN).unwrap();
                gpu.activation_backward(activation, &x_gpu, &y_gpu, &dy_gpu, &mut dx_gpu)
                    .unwrap();

                let y = gpu.read(&y_gpu).unwrap();
                assert_close(
                    &format!("{what} forward"),
                    &y,
                    &y_cpu,
                    ELEMENTWISE_TOLERANCE,
                );
                let dx = gpu.read(&dx_gpu).unwrap();
                assert_close(
                    &format!("{what} backward"),
                    &dx,
                    &dx_cpu,
                    ELEMENTWISE_TOLERANCE,
                );
            }
        }
    }
}

/// ReLU passes NaN on, as PyTorch does, forward and backward, on the CPU and every GPU
/// adapter: a `max(v, 0)` that returns 0 for NaN hides a diverging model from the loss, and
/// a gradient of `0` in place of `0 · dy` hides a NaN gradient.
#[test]
fn relu_passes_nan_on() {
    // x: NaN, +inf, -inf, -1, 2; dy: 1, 1, 1, NaN, 1.
    let x = ndarray::arr1(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 2.0]).into_dyn();
    let dy = ndarray::arr1(&[1.0, 1.0, 1.0, f32::NAN, 1.0]).into_dyn();
    let check = |what: &str, y: &ndarray::ArrayD<f32>, dx: &ndarray::ArrayD<f32>| {
        assert!(y[0].is_nan(), "{what}: relu(NaN) is {}, not NaN", y[0]);
        assert_eq!(y[1], f32::INFINITY, "{what}: relu(inf)");
        assert_eq!(y[2], 0.0, "{what}: relu(-inf)");
        assert_eq!(y[4], 2.0, "{what}: relu(2)");
        assert!(
            dx[3].is_nan(),
            "{what}: a NaN gradient at x < 0 became {}",
            dx[3]
        );
        assert_eq!(dx[4], 1.0, "{what}: the gradient at x = 2");
    };

    let cpu = CpuBackend::new();
    let mut y = cpu.zeros("y", &[5]).unwrap();
    cpu.activation_forward(Activation::Relu, &x, &mut y)
        .unwrap();
    let mut dx = cpu.zeros("dx", &[5]).unwrap();
    cpu.activation_backward(Activation::Relu, &x, &y, &dy, &mut dx)
        .unwrap();
    check("cpu", &y, &dx);

    for gpu in gpu_backends() {
        let x_gpu = gpu.tensor("x", x.view()).unwrap();
        let dy_gpu = gpu.tensor("dy", dy.view()).unwrap();
        let mut y_gpu = gpu.full("y", &[5], -7.0).unwrap();
        gpu.activation_forward(Activation::Relu, &x_gpu, &mut y_gpu)
            .unwrap();
        let mut dx_gpu = gpu.full("dx", &[5], -7.0).unwrap();
        gpu.activation_backward(Activation::Relu, &x_gpu, &y_gpu, &dy_gpu, &mut dx_gpu)
            .unwrap();
        check(
            &gpu.device_name(),
            &gpu.read(&y_gpu).unwrap(),
            &gpu.read(&dx_gpu).unwrap(),
        );
    }
}
