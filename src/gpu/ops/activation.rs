use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::{Activation, expect_shape};

const FORWARD: Kernel = Kernel::new(Shader::Activation, "forward");
const BACKWARD: Kernel = Kernel::new(Shader::Activation, "backward");
const RELU_FORWARD: Kernel = Kernel::new(Shader::Activation, "relu_forward");
const RELU_BACKWARD: Kernel = Kernel::new(Shader::Activation, "relu_backward");

/// Mirrors `Params` in `shaders/activation.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    kind: u32,
    negative_slope: f32,
    _padding: u32,
}

fn params(activation: Activation, len: usize) -> Result<Params> {
    Ok(Params {
        len: to_u32("activation", len)?,
        kind: activation.code(),
        negative_slope: activation.slope(),
        _padding: 0,
    })
}

pub(crate) fn forward(
    gpu: &GpuBackend,
    activation: Activation,
    x: &GpuTensor,
    y: &mut GpuTensor,
) -> Result<()> {
    expect_shape("activation", "y", &y.shape, &x.shape)?;
    let params = params(activation, x.len())?;
    let kernel = if activation == Activation::Relu {
        RELU_FORWARD
    } else {
        FORWARD
    };
    gpu.dispatch_1d(kernel, &params, &[x.at(1), y.at(5)], x.len() as u64)
}

pub(crate) fn backward(
    gpu: &GpuBackend,
    activation: Activation,
    x: &GpuTensor,
    y: &GpuTensor,
    dy: &GpuTensor,
    dx: &mut GpuTensor,
) -> Result<()> {
    expect_shape("activation backward", "y", &y.shape, &x.shape)?;
    expect_shape("activation backward", "dy", &dy.shape, &x.shape)?;
    expect_shape("activation backward", "dx", &dx.shape, &x.shape)?;
    let params = params(activation, x.len())?;
    if activation == Activation::Relu {
        return gpu.dispatch_1d(
            RELU_BACKWARD,
            &params,
            &[x.at(1), dy.at(3), dx.at(4)],
            x.len() as u64,
        );
    }
    gpu.dispatch_1d(
        BACKWARD,
        &params,
        &[x.at(1), y.at(2), dy.at(3), dx.at(4)],
        x.len() as u64,
    )
}
