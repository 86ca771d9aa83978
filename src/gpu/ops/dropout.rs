use bytemuck::{Pod, Zeroable};

use crate::cpu::dropout::{check_len, keep_scale};
use crate::error::Result;
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::expect_shape;

const APPLY_MASK: Kernel = Kernel::new(Shader::Dropout, "apply_mask");

/// Mirrors `Params` in `shaders/dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    seed: u32,
    p: f32,
    scale: f32,
}

/// Records `output = input * keep / (1 - p)`.
fn apply_mask(
    gpu: &GpuBackend,
    op: &'static str,
    input: &GpuTensor,
    p: f32,
    seed: u32,
    output: &mut GpuTensor,
) -> Result<()> {
    expect_shape(op, "output", &output.shape, &input.shape)?;
    let params = Params {
        len: check_len(op, input.len())?,
        seed,
        p,
        scale: keep_scale(p)?,
    };
    gpu.dispatch_1d(
        APPLY_MASK,
        &params,
        &[input.at(1), output.at(2)],
        input.len() as u64,
    )
}

pub(crate) fn forward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    p: f32,
    seed: u32,
    y: &mut GpuTensor,
) -> Result<()> {
    apply_mask(gpu, "dropout", x, p, seed, y)
}

pub(crate) fn backward(
    gpu: &GpuBackend,
    dy: &GpuTensor,
    p: f32,
    seed: u32,
    dx: &mut GpuTensor,
) -> Result<()> {
    apply_mask(gpu, "dropout backward", dy, p, seed, dx)
}
