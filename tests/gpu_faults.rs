//! Device faults: a lost device turns every later call into `Error::DeviceLost`, and a wait
//! longer than the timeout into `Error::Timeout`.

mod common;

use common::gpu_backends;
use std::time::Duration;

use wgcnn::gpu::{BackendChoice, GpuBackend, GpuOptions};
use wgcnn::{Activation, Backend, Conv2dParams, Error};

/// Runs a ReLU and reads its output, destroying the device at `stage` (0: before the op,
/// 1: between the op and the read).
fn relu_with_lost_device(gpu: &GpuBackend, stage: usize) -> wgcnn::Result<Vec<f32>> {
    let x = gpu.full("x", &[3, 5], 1.0)?;
    let mut y = gpu.full("y", &[3, 5], f32::NAN)?;
    if stage == 0 {
        gpu.context().device.destroy();
    }
    gpu.activation_forward(Activation::Relu, &x, &mut y)?;
    if stage == 1 {
        gpu.context().device.destroy();
    }
    Ok(gpu.read(&y)?.into_raw_vec_and_offset().0)
}

#[test]
fn lost_device_is_an_error() {
    for stage in [0, 1] {
        // A fresh device each time, since a destroyed one stays lost.
        for gpu in gpu_backends() {
            let error = relu_with_lost_device(&gpu, stage).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, Error::DeviceLost(_)),
                "stage {stage}: {message}"
            );
            assert!(message.contains("--resume"), "{message}");
            // Every later call fails the same way instead of panicking.
            let error = gpu
                .full("z", &[2], 0.0)
                .and_then(|z| gpu.read(&z))
                .unwrap_err();
            assert!(matches!(error, Error::DeviceLost(_)), "{error}");
        }
    }
}

#[test]
fn slow_gpu_work_times_out() {
    for gpu in gpu_backends() {
        let info = &gpu.context().info;
        let backend = match info.backend {
            wgpu::Backend::Vulkan => BackendChoice::Vulkan,
            wgpu::Backend::Metal => BackendChoice::Metal,
            wgpu::Backend::Dx12 => BackendChoice::Dx12,
            // llvmpipe's GL runs a dispatch inside the submit call, so the work is done before
            // any wait starts and no wait can time out there.
            _ => continue,
        };
        let mut options = GpuOptions::default().with_backend(backend);
        options.adapter_name = Some(info.name.clone());
        // A nanosecond is shorter than any GPU needs for 10 GFLOP of convolution.
        options.timeout = Duration::from_nanos(1);
        let slow = GpuBackend::new(&options).unwrap();
        let x = slow.full("x", &[64, 64, 28, 28], 1.0).unwrap();
        let weight = slow.full("weight", &[64, 64, 5, 5], 1.0).unwrap();
        let mut y = slow.full("y", &[64, 64, 28, 28], f32::NAN).unwrap();
        let params = Conv2dParams {
            padding: [2, 2],
            ..Conv2dParams::default()
        };
        let error = slow
            .conv2d_forward(&x, &weight, None, &params, &mut y)
            .and_then(|()| slow.read(&y))
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Timeout { .. }), "{message}");
        assert!(message.contains("WGCNN_GPU_TIMEOUT"), "{message}");
    }
}
