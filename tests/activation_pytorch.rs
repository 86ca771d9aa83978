//! The activation op against PyTorch's reference cases, on the CPU and on each GPU adapter.

mod common;

use common::{ELEMENTWISE_TOLERANCE, assert_close, cases, gpu_backends};
use wgcnn::{Activation, Backend, CpuBackend};

/// Checks every PyTorch case of the four activations on one backend.
fn check_pytorch_cases<B: Backend>(backend: &B) {
    for op in ["relu", "leaky_relu", "sigmoid", "tanh"] {
        for case in cases::of_op(op) {
            let name = format!("{} on {}", case["name"], backend.device_name());
            let activation = match op {
                "relu" => Activation::Relu,
                "leaky_relu" => Activation::LeakyRelu {
                    negative_slope: case["params"]["negative_slope"].as_f64().unwrap_or(0.01)
                        as f32,
                },
                "sigmoid" => Activation::Sigmoid,
                _ => Activation::Tanh,
            };
            let x = cases::tensor(&case["inputs"]["x"]);
            let dy = cases::tensor(&case["grad_output"]);

            let x_t = backend.tensor("x", x.view()).unwrap();
            let dy_t = backend.tensor("dy", dy.view()).unwrap();
            let mut y = backend.full("y", x.shape(), f32::NAN).unwrap();
            backend
                .activation_forward(activation, &x_t, &mut y)
                .unwrap();
            let mut dx = backend.full("dx", x.shape(), f32::NAN).unwrap();
            backend
                .activation_backward(activation, &x_t, &y, &dy_t, &mut dx)
                .unwrap();

            let expected_y = cases::tensor(&case["outputs"]["y"]);
            let expected_dx = cases::tensor(&case["grads"]["x"]);
            assert_close(
                &format!("{name} y"),
                &backend.read(&y).unwrap(),
                &expected_y,
                ELEMENTWISE_TOLERANCE,
            );
            assert_close(
                &format!("{name} dx"),
                &backend.read(&dx).unwrap(),
                &expected_dx,
                ELEMENTWISE_TOLERANCE,
            );
        }
    }
}

#[test]
fn activations_match_pytorch() {
    check_pytorch_cases(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_pytorch_cases(&gpu);
    }
}
