//! Optimizer steps with PyTorch's semantics (`torch.optim.SGD`, `Adam`, `AdamW`).

use ndarray::{ArrayD, Zip};

use crate::error::{Error, Result};
use crate::params::{AdamConfig, SgdConfig, expect_shape};

/// Fails on step 0: both optimizers count steps from 1.
pub(crate) fn check_step(step: u64) -> Result<()> {
    if step == 0 {
        return Err(Error::invalid(
            "step",
            "must be at least 1 because optimizer steps count from 1; got 0",
        ));
    }
    Ok(())
}

/// One SGD step on `param` in place.
pub fn sgd(
    param: &mut ArrayD<f32>,
    grad: &ArrayD<f32>,
    velocity: &mut ArrayD<f32>,
    config: &SgdConfig,
    lr: f32,
    step: u64,
) -> Result<()> {
    const OP: &str = "sgd_step";
    expect_shape(OP, "grad", grad.shape(), param.shape())?;
    expect_shape(OP, "velocity", velocity.shape(), param.shape())?;
    check_step(step)?;
    let SgdConfig {
        momentum,
        dampening,
        weight_decay,
        nesterov,
    } = *config;

    Zip::from(param)
        .and(grad)
        .and(velocity)
        .for_each(|p, &g, v| {
            let mut update = g + weight_decay * *p;
            if momentum != 0.0 {
                *v = if step == 1 {
                    update
                } else {
                    momentum * *v + (1.0 - dampening) * update
                };
                update = if nesterov { update + momentum * *v } else { *v };
            }
            *p -= lr * update;
        });
    Ok(())
}

/// The step size `lr / (1 - beta1^step)` and `sqrt(1 - beta2^step)` of Adam's bias
/// correction, computed in `f64` as PyTorch computes them in Python floats.
pub(crate) fn adam_bias_correction(config: &AdamConfig, lr: f32, step: u64) -> (f32, f32) {
    let step = step as f64;
    let correction1 = 1.0 - f64::from(config.beta1).powf(step);
    let correction2 = 1.0 - f64::from(config.beta2).powf(step);
    let step_size = f64::from(lr) / correction1;
    (step_size as f32, correction2.sqrt() as f32)
}

/// One Adam or AdamW step on `param` in place.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    param: &mut ArrayD<f32>,
    grad: &ArrayD<f32>,
    m: &mut ArrayD<f32>,
    v: &mut ArrayD<f32>,
    config: &AdamConfig,
    lr: f32,
    step: u64,
) -> Result<()> {
    const OP: &str = "adam_step";
    expect_shape(OP, "grad", grad.shape(), param.shape())?;
    expect_shape(OP, "m", m.shape(), param.shape())?;
    expect_shape(OP, "v", v.shape(), param.shape())?;
    check_step(step)?;
    let AdamConfig {
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled,
    } = *config;
    let (step_size, correction2_sqrt) = adam_bias_correction(config, lr, step);

    Zip::from(param)
        .and(grad)
        .and(m)
        .and(v)
        .for_each(|p, &g, m, v| {
            let g = if decoupled {
                *p *= 1.0 - lr * weight_decay;
                g
            } else {
                g + weight_decay * *p
            };
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            let denom = v.sqrt() / correction2_sqrt + eps;
            *p -= step_size * *m / denom;
        });
    Ok(())
}
