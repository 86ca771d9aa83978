//! Optimizers with PyTorch's semantics and learning-rate schedules. The updates run as
//! backend ops, so on the GPU path they are kernels.

use serde::{Deserialize, Serialize};

use super::model::Model;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{AdamConfig, SgdConfig};

/// Which update rule to apply.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// `torch.optim.Adam`, or `AdamW` when `decoupled` is set.
    Adam(AdamConfig),
}

/// The learning rate as a function of the step (counting from 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// The base rate times `gamma` raised to `step / step_size` (PyTorch's `StepLR`).
    Step { step_size: u64, gamma: f32 },
    /// Cosine annealing from the base rate to `min_lr` over `total_steps`, then `min_lr`
    /// (PyTorch's `CosineAnnealingLR` with `T_max = total_steps`).
    Cosine { total_steps: u64, min_lr: f32 },
}

impl LrSchedule {
    /// The learning rate at `step` for the base rate `base`.
    pub fn lr(&self, base: f32, step: u64) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                let decays = step / step_size.max(1);
                base * gamma.powi(decays.min(i32::MAX as u64) as i32)
            }
            LrSchedule::Cosine {
                total_steps,
                min_lr,
            } => {
                if step >= total_steps {
                    return min_lr;
                }
                let progress = step as f64 / total_steps.max(1) as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                (f64::from(min_lr) + (f64::from(base) - f64::from(min_lr)) * cosine) as f32
            }
        }
    }
}

/// Per-parameter optimizer state: the SGD velocity, or Adam's first and second moments.
#[derive(Debug)]
pub struct ParamState<B: Backend> {
    pub first: B::Tensor,
    pub second: Option<B::Tensor>,
}

/// An optimizer bound to one model's parameters.
#[derive(Debug)]
pub struct Optimizer<B: Backend> {
    pub kind: OptimizerKind,
    pub base_lr: f32,
    pub schedule: LrSchedule,
    /// Per layer, per parameter.
    pub state: Vec<Vec<ParamState<B>>>,
    /// Steps taken so far.
    pub step: u64,
}

/// Checks a learning-rate schedule: a step size and a cosine length of at least one step, a
/// positive finite decay factor and a finite, non-negative final rate.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the value and its valid range.
pub fn check_schedule(schedule: &LrSchedule) -> Result<()> {
    match *schedule {
        LrSchedule::Constant => Ok(()),
        LrSchedule::Step { step_size, gamma } => {
            if step_size == 0 {
                return Err(Error::invalid(
                    "step size",
                    "must be at least 1 step between decays; got 0",
                ));
            }
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(Error::invalid(
                    "gamma",
                    format!("must be a positive finite factor, such as 0.1; got {gamma}"),
                ));
            }
            Ok(())
        }
        LrSchedule::Cosine {
            total_steps,
            min_lr,
        } => {
            if total_steps == 0 {
                return Err(Error::invalid(
                    "cosine schedule length",
                    "must be at least 1 step, usually the steps of the whole run; got 0",
                ));
            }
            if !(min_lr.is_finite() && min_lr >= 0.0) {
                return Err(Error::invalid(
                    "minimum learning rate",
                    format!("must be 0 or a positive finite number; got {min_lr}"),
                ));
            }
            Ok(())
        }
    }
}

/// Checks a learning rate and the optimizer's hyperparameters.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the value and its valid range.
pub fn check_hyperparameters(kind: &OptimizerKind, lr: f32) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::invalid(
            "learning rate (--lr)",
            format!("must be a positive finite number, such as 0.01; got {lr}"),
        ));
    }
    let in_unit = |name: &'static str, value: f32| {
        if (0.0..1.0).contains(&value) {
            Ok(())
        } else {
            Err(Error::invalid(
                name,
                format!("must be in [0, 1); got {value}"),
            ))
        }
    };
    match kind {
        OptimizerKind::Sgd(config) => {
            in_unit("momentum (--momentum)", config.momentum)?;
            in_unit("dampening", config.dampening)?;
            if config.nesterov && (config.momentum == 0.0 || config.dampening != 0.0) {
                return Err(Error::invalid(
                    "Nesterov momentum",
                    "needs a momentum above 0 and zero dampening",
                ));
            }
            if !(config.weight_decay >= 0.0 && config.weight_decay.is_finite()) {
                return Err(Error::invalid(
                    "weight decay (--weight-decay)",
                    format!(
                        "must be 0 or a positive finite number; got {}",
                        config.weight_decay
                    ),
                ));
            }
        }
        OptimizerKind::Adam(config) => {
            in_unit("beta1", config.beta1)?;
            in_unit("beta2", config.beta2)?;
            if config.eps.is_nan() || config.eps <= 0.0 {
                return Err(Error::invalid(
                    "eps",
                    format!("must be positive; got {}", config.eps),
                ));
            }
            if !(config.weight_decay >= 0.0 && config.weight_decay.is_finite()) {
                return Err(Error::invalid(
                    "weight decay (--weight-decay)",
                    format!(
                        "must be 0 or a positive finite number; got {}",
                        config.weight_decay
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl<B: Backend> Optimizer<B> {
    /// Creates zeroed state for every parameter of `model`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a learning rate that is not positive and finite, or a
    /// momentum, dampening or beta outside `[0, 1)`.
    pub fn new(
        backend: &B,
        model: &Model<B>,
        kind: OptimizerKind,
        lr: f32,
        schedule: LrSchedule,
    ) -> Result<Self> {
        check_hyperparameters(&kind, lr)?;
        check_schedule(&schedule)?;
        let mut state = Vec::new();
        for (index, layer) in model.layers.iter().enumerate() {
            let mut layer_state = Vec::new();
            for param in &layer.params {
                let shape = backend.shape(&param.value).to_vec();
                let label = format!("layer {index} {} optimizer state", param.name);
                let first = backend.zeros(&label, &shape)?;
                let second = match kind {
                    OptimizerKind::Adam(_) => Some(backend.zeros(&label, &shape)?),
                    OptimizerKind::Sgd(_) => None,
                };
                layer_state.push(ParamState { first, second });
            }
            state.push(layer_state);
        }
        Ok(Self {
            kind,
            base_lr: lr,
            schedule,
            state,
            step: 0,
        })
    }

    /// The learning rate the next step will use.
    pub fn current_lr(&self) -> f32 {
        self.schedule.lr(self.base_lr, self.step)
    }

    /// Applies one update to every parameter of `model` from its current gradient.
    pub fn step(&mut self, backend: &B, model: &mut Model<B>) -> Result<()> {
        let lr = self.current_lr();
        self.step += 1;
        for (layer, layer_state) in model.layers.iter_mut().zip(&mut self.state) {
            for (param, state) in layer.params.iter_mut().zip(layer_state.iter_mut()) {
                match (&self.kind, &mut state.second) {
                    (OptimizerKind::Sgd(config), _) => backend.sgd_step(
                        &mut param.value,
                        &param.grad,
                        &mut state.first,
                        config,
                        lr,
                        self.step,
                    )?,
                    (OptimizerKind::Adam(config), Some(second)) => backend.adam_step(
                        &mut param.value,
                        &param.grad,
                        &mut state.first,
                        second,
                        config,
                        lr,
                        self.step,
                    )?,
                    (OptimizerKind::Adam(_), None) => {
                        unreachable!("Adam state always holds a second moment")
                    }
                }
            }
        }
        Ok(())
    }
}
