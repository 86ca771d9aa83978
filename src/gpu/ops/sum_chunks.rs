//! Launcher of `shaders/sum_chunks.wgsl`, the second half of every split reduction.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};

const SUM_CHUNKS: Kernel = Kernel::new(Shader::SumChunks, "sum_chunks");

/// Loop iterations that one invocation of a reduction may run. Mesa's gallivm (llvmpipe and
/// lavapipe) stops an invocation's loops after 65,535 iterations in total, counted across all
/// its loops, and reports nothing; a longer reduction is split into chunks of this many
/// iterations whose sums [`sum_chunks`] adds up.
pub(crate) const LOOP_BUDGET: usize = 8192;

/// Invocations that a split reduction aims for. A reduction with few outputs, such as a
/// matrix product with a small output and a long k, is split into more chunks than the
/// loop budget needs. Its dispatch then has several workgroups for a CPU adapter's threads.
pub(crate) const MIN_SPLIT_INVOCATIONS: usize = 512;

/// Mirrors `Params` in `shaders/sum_chunks.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    chunks: u32,
    _padding0: u32,
    _padding1: u32,
}

/// Records `out[i] = Σ partial[chunk · len + i]` over `chunks` chunks, in chunk order, where
/// `len` is the length of `out`.
pub(crate) fn sum_chunks(
    gpu: &GpuBackend,
    op: &'static str,
    partial: &GpuTensor,
    chunks: usize,
    out: &mut GpuTensor,
) -> Result<()> {
    let len = out.len();
    if partial.len() < chunks * len || chunks > LOOP_BUDGET {
        return Err(Error::Gpu(format!(
            "{op}: {chunks} partial sums of {len} elements do not fit a scratch buffer of {} \
             elements or the loop budget of {LOOP_BUDGET}",
            partial.len()
        )));
    }
    let params = Params {
        len: to_u32(op, len)?,
        chunks: to_u32(op, chunks)?,
        ..Params::zeroed()
    };
    gpu.dispatch_1d(SUM_CHUNKS, &params, &[partial.at(1), out.at(2)], len as u64)
}
