use bytemuck::{Pod, Zeroable};

use crate::cpu::batch_norm::training_count;
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::{expect_shape, nchw};

const FORWARD_TRAIN: Kernel = Kernel::new(Shader::BatchNorm2d, "forward_train");
const FORWARD_EVAL: Kernel = Kernel::new(Shader::BatchNorm2d, "forward_eval");
const BACKWARD: Kernel = Kernel::new(Shader::BatchNorm2d, "backward");

/// The elements one invocation of the evaluation kernel normalizes. On lavapipe, runs of 8 to
/// 128 took about the same time, and one element per invocation took twice as long.
const EVAL_RUN: u32 = 32;

/// Mirrors `Params` in `shaders/batch_norm2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    len: u32,
    run: u32,
    momentum: f32,
    eps: f32,
    _padding: u32,
}

/// Checks that `x` is `[n, c, h, w]` and every per-channel tensor is `[c]`, and fills the
/// parameters.
fn params(
    op: &'static str,
    x: &GpuTensor,
    per_channel: &[(&str, &GpuTensor)],
    momentum: f32,
    eps: f32,
) -> Result<Params> {
    let [batch, channels, h, w] = nchw(op, "x", &x.shape)?;
    for (what, tensor) in per_channel {
        expect_shape(op, what, &tensor.shape, &[channels])?;
    }
    Ok(Params {
        batch: to_u32(op, batch)?,
        channels: to_u32(op, channels)?,
        plane: to_u32(op, h * w)?,
        len: to_u32(op, x.len())?,
        run: EVAL_RUN,
        momentum,
        eps,
        _padding: 0,
    })
}

/// Returns the workgroup count of the training kernels, one per channel, or fails when the
/// adapter cannot launch that many.
fn channel_workgroups(gpu: &GpuBackend, op: &'static str, channels: u32) -> Result<[u32; 3]> {
    let max = gpu.context().limits.max_compute_workgroups_per_dimension;
    if channels > max {
        return Err(Error::shape(
            op,
            format!(
                "{channels} channels need one workgroup each, but this adapter launches at most \
                 {max} per dimension; use at most {max} channels"
            ),
        ));
    }
    Ok([channels, 1, 1])
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_train(
    gpu: &GpuBackend,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    running_mean: &mut GpuTensor,
    running_var: &mut GpuTensor,
    momentum: f32,
    eps: f32,
    y: &mut GpuTensor,
    saved_mean: &mut GpuTensor,
    saved_inv_std: &mut GpuTensor,
) -> Result<()> {
    let op = "batch_norm2d";
    let params = params(
        op,
        x,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
            ("saved_mean", saved_mean),
            ("saved_inv_std", saved_inv_std),
        ],
        momentum,
        eps,
    )?;
    expect_shape(op, "y", &y.shape, &x.shape)?;
    training_count(op, &x.shape)?;

    let workgroups = channel_workgroups(gpu, op, params.channels)?;
    gpu.dispatch(
        FORWARD_TRAIN,
        &params,
        &[
            x.at(1),
            gamma.at(2),
            beta.at(3),
            running_mean.at(4),
            running_var.at(5),
            saved_mean.at(6),
            saved_inv_std.at(7),
            y.at(8),
        ],
        workgroups,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_eval(
    gpu: &GpuBackend,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    running_mean: &GpuTensor,
    running_var: &GpuTensor,
    eps: f32,
    y: &mut GpuTensor,
) -> Result<()> {
    let op = "batch_norm2d eval";
    let params = params(
        op,
        x,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
        0.0,
        eps,
    )?;
    expect_shape(op, "y", &y.shape, &x.shape)?;

    gpu.dispatch_1d(
        FORWARD_EVAL,
        &params,
        &[
            x.at(1),
            gamma.at(2),
            beta.at(3),
            running_mean.at(9),
            running_var.at(10),
            y.at(8),
        ],
        u64::from(params.len.div_ceil(EVAL_RUN)),
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    dy: &GpuTensor,
    gamma: &GpuTensor,
    saved_mean: &GpuTensor,
    saved_inv_std: &GpuTensor,
    dx: &mut GpuTensor,
    dgamma: &mut GpuTensor,
    dbeta: &mut GpuTensor,
) -> Result<()> {
    let op = "batch_norm2d backward";
    let params = params(
        op,
        x,
        &[
            ("gamma", gamma),
            ("saved_mean", saved_mean),
            ("saved_inv_std", saved_inv_std),
            ("dgamma", dgamma),
            ("dbeta", dbeta),
        ],
        0.0,
        0.0,
    )?;
    expect_shape(op, "dy", &dy.shape, &x.shape)?;
    expect_shape(op, "dx", &dx.shape, &x.shape)?;
    training_count(op, &x.shape)?;

    let workgroups = channel_workgroups(gpu, op, params.channels)?;
    gpu.dispatch(
        BACKWARD,
        &params,
        &[
            x.at(1),
            dy.at(11),
            gamma.at(2),
            saved_mean.at(12),
            saved_inv_std.at(13),
            dgamma.at(14),
            dbeta.at(15),
            dx.at(16),
        ],
        workgroups,
    )
}
