//! Launchers of `shaders/sgd.wgsl` and `shaders/adam.wgsl`. The learning rate and step
//! change every call; `dispatch` rewrites the uniform buffer when they do.

use bytemuck::{Pod, Zeroable};

use crate::cpu::optim::{adam_bias_correction, check_step};
use crate::error::Result;
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::{AdamConfig, SgdConfig, expect_shape};

const SGD_STEP: Kernel = Kernel::new(Shader::Sgd, "sgd_step");
const ADAM_STEP: Kernel = Kernel::new(Shader::Adam, "adam_step");

/// Mirrors `Params` in `shaders/sgd.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdParams {
    len: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    first_step: u32,
    nesterov: u32,
    _padding: u32,
}

/// Mirrors `Params` in `shaders/adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    len: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    correction2_sqrt: f32,
    decoupled: u32,
    _padding: [u32; 3],
}

pub(crate) fn sgd(
    gpu: &GpuBackend,
    param: &mut GpuTensor,
    grad: &GpuTensor,
    velocity: &mut GpuTensor,
    config: &SgdConfig,
    lr: f32,
    step: u64,
) -> Result<()> {
    const OP: &str = "sgd_step";
    expect_shape(OP, "grad", &grad.shape, &param.shape)?;
    expect_shape(OP, "velocity", &velocity.shape, &param.shape)?;
    check_step(step)?;
    let params = SgdParams {
        len: to_u32(OP, param.len())?,
        lr,
        momentum: config.momentum,
        dampening: config.dampening,
        weight_decay: config.weight_decay,
        first_step: u32::from(step == 1),
        nesterov: u32::from(config.nesterov),
        _padding: 0,
    };
    gpu.dispatch_1d(
        SGD_STEP,
        &params,
        &[grad.at(1), velocity.at(2), param.at(3)],
        param.len() as u64,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn adam(
    gpu: &GpuBackend,
    param: &mut GpuTensor,
    grad: &GpuTensor,
    m: &mut GpuTensor,
    v: &mut GpuTensor,
    config: &AdamConfig,
    lr: f32,
    step: u64,
) -> Result<()> {
    const OP: &str = "adam_step";
    expect_shape(OP, "grad", &grad.shape, &param.shape)?;
    expect_shape(OP, "m", &m.shape, &param.shape)?;
    expect_shape(OP, "v", &v.shape, &param.shape)?;
    check_step(step)?;
    let (step_size, correction2_sqrt) = adam_bias_correction(config, lr, step);
    let params = AdamParams {
        len: to_u32(OP, param.len())?,
        lr,
        beta1: config.beta1,
        beta2: config.beta2,
        eps: config.eps,
        weight_decay: config.weight_decay,
        step_size,
        correction2_sqrt,
        decoupled: u32::from(config.decoupled),
        _padding: [0; 3],
    };
    gpu.dispatch_1d(
        ADAM_STEP,
        &params,
        &[grad.at(1), m.at(2), v.at(3), param.at(4)],
        param.len() as u64,
    )
}
