//! Launchers of `shaders/max_pool2d.wgsl` and `shaders/avg_pool2d.wgsl`.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::{Pool2dParams, expect_shape};

const MAX_FORWARD: Kernel = Kernel::new(Shader::MaxPool2d, "forward");
const MAX_BACKWARD: Kernel = Kernel::new(Shader::MaxPool2d, "backward");
const MAX_BACKWARD_TILED: Kernel = Kernel::new(Shader::MaxPool2d, "backward_tiled");
const MAX_FORWARD_2X2: Kernel = Kernel::new(Shader::MaxPool2d, "forward_2x2");
const MAX_BACKWARD_2X2: Kernel = Kernel::new(Shader::MaxPool2d, "backward_2x2");
const AVG_FORWARD: Kernel = Kernel::new(Shader::AvgPool2d, "forward");
const AVG_BACKWARD: Kernel = Kernel::new(Shader::AvgPool2d, "backward");

/// Mirrors `Params` in `shaders/max_pool2d.wgsl` and `shaders/avg_pool2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    in_height: u32,
    in_width: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    _padding: u32,
}

/// Checks the pooling against the input shape and fills the uniform parameters for `len`
/// invocations. Returns them with the output shape.
fn params(
    op: &'static str,
    input: &[usize],
    pool: &Pool2dParams,
    len: usize,
) -> Result<(Params, [usize; 4])> {
    let out_shape = pool.output_shape(op, input)?;
    let [_, _, out_height, out_width] = out_shape;
    let params = Params {
        len: to_u32(op, len)?,
        in_height: to_u32(op, input[2])?,
        in_width: to_u32(op, input[3])?,
        out_height: to_u32(op, out_height)?,
        out_width: to_u32(op, out_width)?,
        kernel_h: to_u32(op, pool.kernel[0])?,
        kernel_w: to_u32(op, pool.kernel[1])?,
        stride_h: to_u32(op, pool.stride[0])?,
        stride_w: to_u32(op, pool.stride[1])?,
        pad_h: to_u32(op, pool.padding[0])?,
        pad_w: to_u32(op, pool.padding[1])?,
        _padding: 0,
    };
    // The shaders index the input with u32 too.
    to_u32(op, input.iter().product())?;
    Ok((params, out_shape))
}

/// Whether the windows cover every input element exactly once: stride equal to the window,
/// no padding, and the input a whole number of windows.
fn windows_tile_input(pool: &Pool2dParams, input: &[usize], output: &[usize]) -> bool {
    pool.stride == pool.kernel
        && pool.padding == [0, 0]
        && input[2] == output[2] * pool.kernel[0]
        && input[3] == output[3] * pool.kernel[1]
}

/// Checks whether the windows are 2x2 with stride 2 and no padding, which the loop-free
/// `*_2x2` kernels serve.
fn is_2x2(pool: &Pool2dParams) -> bool {
    pool.kernel == [2, 2] && pool.stride == [2, 2] && pool.padding == [0, 0]
}

pub(crate) fn max_forward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    pool: &Pool2dParams,
    y: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "max_pool2d";
    let out_len = pool.output_shape(OP, &x.shape)?.iter().product();
    let (params, out_shape) = params(OP, &x.shape, pool, out_len)?;
    expect_shape(OP, "y", &y.shape, &out_shape)?;
    let kernel = if is_2x2(pool) {
        MAX_FORWARD_2X2
    } else {
        MAX_FORWARD
    };
    gpu.dispatch_1d(kernel, &params, &[x.at(1), y.at(4)], out_len as u64)
}

pub(crate) fn max_backward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    dy: &GpuTensor,
    pool: &Pool2dParams,
    dx: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "max_pool2d backward";
    let (mut params, out_shape) = params(OP, &x.shape, pool, x.len())?;
    expect_shape(OP, "dy", &dy.shape, &out_shape)?;
    expect_shape(OP, "dx", &dx.shape, &x.shape)?;
    if windows_tile_input(pool, &x.shape, &out_shape) {
        params.len = to_u32(OP, dy.len())?;
        let kernel = if is_2x2(pool) {
            MAX_BACKWARD_2X2
        } else {
            MAX_BACKWARD_TILED
        };
        let bindings = [x.at(1), dy.at(2), dx.at(3)];
        return gpu.dispatch_1d(kernel, &params, &bindings, dy.len() as u64);
    }
    gpu.dispatch_1d(
        MAX_BACKWARD,
        &params,
        &[x.at(1), dy.at(2), dx.at(3)],
        x.len() as u64,
    )
}

pub(crate) fn avg_forward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    pool: &Pool2dParams,
    y: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "avg_pool2d";
    let out_len = pool.output_shape(OP, &x.shape)?.iter().product();
    let (params, out_shape) = params(OP, &x.shape, pool, out_len)?;
    expect_shape(OP, "y", &y.shape, &out_shape)?;
    gpu.dispatch_1d(AVG_FORWARD, &params, &[x.at(1), y.at(4)], out_len as u64)
}

pub(crate) fn avg_backward(
    gpu: &GpuBackend,
    dy: &GpuTensor,
    pool: &Pool2dParams,
    dx: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "avg_pool2d backward";
    let (params, out_shape) = params(OP, &dx.shape, pool, dx.len())?;
    expect_shape(OP, "dy", &dy.shape, &out_shape)?;
    gpu.dispatch_1d(
        AVG_BACKWARD,
        &params,
        &[dy.at(2), dx.at(3)],
        dx.len() as u64,
    )
}
