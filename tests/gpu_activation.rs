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
