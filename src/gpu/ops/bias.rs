use bytemuck::{Pod, Zeroable};

use crate::cpu::bias::check_backward;
use crate::error::Result;
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::ops::sum_chunks::{LOOP_BUDGET, sum_chunks};
use crate::gpu::{GpuBackend, GpuTensor};

const BACKWARD: Kernel = Kernel::new(Shader::BiasBackward, "backward");

/// Mirrors `Params` in `shaders/bias_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch_size: u32,
    channels: u32,
    spatial: u32,
    chunk_len: u32,
}

pub(crate) fn backward(gpu: &GpuBackend, dy: &GpuTensor, dbias: &mut GpuTensor) -> Result<()> {
    const OP: &str = "bias backward";
    let shape = check_backward(&dy.shape, &dbias.shape)?;
    to_u32(OP, dy.len())?;
    let positions = shape.batch_size * shape.spatial;
    let chunks = positions.div_ceil(LOOP_BUDGET);
    let params = Params {
        batch_size: to_u32(OP, shape.batch_size)?,
        channels: to_u32(OP, shape.channels)?,
        spatial: to_u32(OP, shape.spatial)?,
        chunk_len: to_u32(OP, LOOP_BUDGET)?,
    };
    let invocations = (chunks * shape.channels) as u64;
    if chunks == 1 {
        return gpu.dispatch_1d(BACKWARD, &params, &[dy.at(1), dbias.at(2)], invocations);
    }
    let partial = gpu.scratch(
        "bias backward partial sums",
        dbias.id,
        chunks * shape.channels,
    )?;
    gpu.dispatch_1d(BACKWARD, &params, &[dy.at(1), partial.at(2)], invocations)?;
    sum_chunks(gpu, OP, &partial, chunks, dbias)
}
