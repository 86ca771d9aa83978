use bytemuck::{Pod, Zeroable};

use crate::cpu::bias::check_backward;
use crate::error::Result;
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};

const BACKWARD: Kernel = Kernel::new(Shader::BiasBackward, "backward");

/// Mirrors `Params` in `shaders/bias_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch_size: u32,
    channels: u32,
    spatial: u32,
    _padding: u32,
}

pub(crate) fn backward(gpu: &GpuBackend, dy: &GpuTensor, dbias: &mut GpuTensor) -> Result<()> {
    let shape = check_backward(&dy.shape, &dbias.shape)?;
    to_u32("bias backward", dy.len())?;
    let params = Params {
        batch_size: to_u32("bias backward", shape.batch_size)?,
        channels: to_u32("bias backward", shape.channels)?,
        spatial: to_u32("bias backward", shape.spatial)?,
        _padding: 0,
    };
    gpu.dispatch_1d(
        BACKWARD,
        &params,
        &[dy.at(1), dbias.at(2)],
        shape.channels as u64,
    )
}
