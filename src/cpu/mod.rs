//! The CPU reference path on `ndarray`, written to read like the math.
//!
//! Every op is a free function in the module for its kind (`conv2d`, `pool`, ...), with the
//! same arguments as the [`Backend`] method it implements; [`CpuBackend`] only forwards to them.

pub mod activation;
pub mod batch_norm;
pub mod bias;
pub mod conv2d;
pub mod dropout;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod pool;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::labels::check_labels;
use crate::params::{Activation, AdamConfig, Conv2dParams, Pool2dParams, SgdConfig};

/// Runs `compute` on the values of `output` as one row-major slice, through a copy when
/// `output` is laid out otherwise.
pub(crate) fn write_row_major(output: &mut ArrayD<f32>, compute: impl FnOnce(&mut [f32])) {
    if let Some(values) = output.as_slice_mut() {
        compute(values);
    } else {
        let mut standard = ArrayD::zeros(output.raw_dim());
        compute(
            standard
                .as_slice_mut()
                .expect("a new array is in standard layout"),
        );
        output.assign(&standard);
    }
}

/// The CPU implementation of [`Backend`]: tensors are `ArrayD<f32>`, labels `Vec<u32>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    /// Creates the CPU backend.
    pub fn new() -> Self {
        CpuBackend
    }
}

impl Backend for CpuBackend {
    type Tensor = ArrayD<f32>;
    type Labels = Vec<u32>;

    fn device_name(&self) -> String {
        "cpu".to_string()
    }

    fn shape<'a>(&self, tensor: &'a ArrayD<f32>) -> &'a [usize] {
        tensor.shape()
    }

    fn full(&self, label: &str, shape: &[usize], value: f32) -> Result<ArrayD<f32>> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::shape(
                "tensor",
                format!("tensor `{label}` must have at least one element, got shape {shape:?}"),
            ));
        }
        // Fallible allocation, so that a shape too large for memory (say, from a crafted
        // checkpoint) becomes an error instead of aborting the process.
        let out_of_memory = || Error::OutOfMemory {
            name: label.to_string(),
            bytes: shape.iter().map(|&d| d as u128).product::<u128>() * 4,
        };
        let len = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(out_of_memory)?;
        let mut data = Vec::new();
        data.try_reserve_exact(len).map_err(|_| out_of_memory())?;
        data.resize(len, value);
        Ok(ArrayD::from_shape_vec(IxDyn(shape), data).expect("the length is the shape's product"))
    }

    fn tensor(&self, label: &str, data: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
        if data.is_empty() || data.ndim() == 0 {
            return Err(Error::shape(
                "tensor",
                format!(
                    "tensor `{label}` must have at least one element, got shape {:?}",
                    data.shape()
                ),
            ));
        }
        Ok(data.as_standard_layout().into_owned())
    }

    fn write(&self, tensor: &mut ArrayD<f32>, data: ArrayViewD<'_, f32>) -> Result<()> {
        if tensor.shape() != data.shape() {
            return Err(Error::shape(
                "write",
                format!(
                    "data of shape {:?} cannot overwrite a tensor of shape {:?}",
                    data.shape(),
                    tensor.shape()
                ),
            ));
        }
        tensor.assign(&data);
        Ok(())
    }

    fn read(&self, tensor: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(tensor.clone())
    }

    fn reshape(&self, tensor: &ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>> {
        tensor
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(shape))
            .map_err(|_| {
                Error::shape(
                    "reshape",
                    format!(
                        "cannot view {} elements of shape {:?} as shape {shape:?}",
                        tensor.len(),
                        tensor.shape()
                    ),
                )
            })
    }

    fn labels(&self, label: &str, labels: &[u32], classes: usize) -> Result<Vec<u32>> {
        if labels.is_empty() {
            return Err(Error::shape(
                "labels",
                format!("label vector `{label}` must not be empty"),
            ));
        }
        check_labels(labels, classes)?;
        Ok(labels.to_vec())
    }

    fn write_labels(&self, target: &mut Vec<u32>, labels: &[u32], classes: usize) -> Result<()> {
        if labels.len() != target.len() {
            return Err(Error::shape(
                "write_labels",
                format!(
                    "{} labels cannot overwrite a label vector of length {}",
                    labels.len(),
                    target.len()
                ),
            ));
        }
        check_labels(labels, classes)?;
        target.copy_from_slice(labels);
        Ok(())
    }

    fn submit(&self) -> Result<()> {
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn conv2d_forward(
        &self,
        x: &ArrayD<f32>,
        weight: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
        params: &Conv2dParams,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        conv2d::forward(x, weight, bias, params, y)
    }

    fn conv2d_backward_input(
        &self,
        dy: &ArrayD<f32>,
        weight: &ArrayD<f32>,
        params: &Conv2dParams,
        dx: &mut ArrayD<f32>,
    ) -> Result<()> {
        conv2d::backward_input(dy, weight, params, dx)
    }

    fn conv2d_backward_weight(
        &self,
        x: &ArrayD<f32>,
        dy: &ArrayD<f32>,
        params: &Conv2dParams,
        dweight: &mut ArrayD<f32>,
    ) -> Result<()> {
        conv2d::backward_weight(x, dy, params, dweight)
    }

    fn bias_backward(&self, dy: &ArrayD<f32>, dbias: &mut ArrayD<f32>) -> Result<()> {
        bias::backward(dy, dbias)
    }

    fn max_pool2d_forward(
        &self,
        x: &ArrayD<f32>,
        params: &Pool2dParams,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        pool::max_forward(x, params, y)
    }

    fn max_pool2d_backward(
        &self,
        x: &ArrayD<f32>,
        dy: &ArrayD<f32>,
        params: &Pool2dParams,
        dx: &mut ArrayD<f32>,
    ) -> Result<()> {
        pool::max_backward(x, dy, params, dx)
    }

    fn avg_pool2d_forward(
        &self,
        x: &ArrayD<f32>,
        params: &Pool2dParams,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        pool::avg_forward(x, params, y)
    }

    fn avg_pool2d_backward(
        &self,
        dy: &ArrayD<f32>,
        params: &Pool2dParams,
        dx: &mut ArrayD<f32>,
    ) -> Result<()> {
        pool::avg_backward(dy, params, dx)
    }

    fn activation_forward(
        &self,
        activation: Activation,
        x: &ArrayD<f32>,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        activation::forward(activation, x, y)
    }

    fn activation_backward(
        &self,
        activation: Activation,
        x: &ArrayD<f32>,
        y: &ArrayD<f32>,
        dy: &ArrayD<f32>,
        dx: &mut ArrayD<f32>,
    ) -> Result<()> {
        activation::backward(activation, x, y, dy, dx)
    }

    fn linear_forward(
        &self,
        x: &ArrayD<f32>,
        weight: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        linear::forward(x, weight, bias, y)
    }

    fn linear_backward_input(
        &self,
        dy: &ArrayD<f32>,
        weight: &ArrayD<f32>,
        dx: &mut ArrayD<f32>,
    ) -> Result<()> {
        linear::backward_input(dy, weight, dx)
    }

    fn linear_backward_weight(
        &self,
        x: &ArrayD<f32>,
        dy: &ArrayD<f32>,
        dweight: &mut ArrayD<f32>,
    ) -> Result<()> {
        linear::backward_weight(x, dy, dweight)
    }

    fn softmax_cross_entropy(
        &self,
        logits: &ArrayD<f32>,
        labels: &Vec<u32>,
        loss: &mut ArrayD<f32>,
        dlogits: &mut ArrayD<f32>,
    ) -> Result<()> {
        loss::softmax_cross_entropy(logits, labels, loss, dlogits)
    }

    fn count_correct(
        &self,
        logits: &ArrayD<f32>,
        labels: &Vec<u32>,
        correct: &mut ArrayD<f32>,
    ) -> Result<()> {
        loss::count_correct(logits, labels, correct)
    }

    fn mse_loss(
        &self,
        pred: &ArrayD<f32>,
        target: &ArrayD<f32>,
        loss: &mut ArrayD<f32>,
        dpred: &mut ArrayD<f32>,
    ) -> Result<()> {
        loss::mse(pred, target, loss, dpred)
    }

    fn batch_norm2d_forward_train(
        &self,
        x: &ArrayD<f32>,
        gamma: &ArrayD<f32>,
        beta: &ArrayD<f32>,
        running_mean: &mut ArrayD<f32>,
        running_var: &mut ArrayD<f32>,
        momentum: f32,
        eps: f32,
        y: &mut ArrayD<f32>,
        saved_mean: &mut ArrayD<f32>,
        saved_inv_std: &mut ArrayD<f32>,
    ) -> Result<()> {
        batch_norm::forward_train(
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            momentum,
            eps,
            y,
            saved_mean,
            saved_inv_std,
        )
    }

    fn batch_norm2d_forward_eval(
        &self,
        x: &ArrayD<f32>,
        gamma: &ArrayD<f32>,
        beta: &ArrayD<f32>,
        running_mean: &ArrayD<f32>,
        running_var: &ArrayD<f32>,
        eps: f32,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        batch_norm::forward_eval(x, gamma, beta, running_mean, running_var, eps, y)
    }

    fn batch_norm2d_backward(
        &self,
        x: &ArrayD<f32>,
        dy: &ArrayD<f32>,
        gamma: &ArrayD<f32>,
        saved_mean: &ArrayD<f32>,
        saved_inv_std: &ArrayD<f32>,
        dx: &mut ArrayD<f32>,
        dgamma: &mut ArrayD<f32>,
        dbeta: &mut ArrayD<f32>,
    ) -> Result<()> {
        batch_norm::backward(x, dy, gamma, saved_mean, saved_inv_std, dx, dgamma, dbeta)
    }

    fn dropout_forward(
        &self,
        x: &ArrayD<f32>,
        p: f32,
        seed: u32,
        y: &mut ArrayD<f32>,
    ) -> Result<()> {
        dropout::forward(x, p, seed, y)
    }

    fn dropout_backward(
        &self,
        dy: &ArrayD<f32>,
        p: f32,
        seed: u32,
        dx: &mut ArrayD<f32>,
    ) -> Result<()> {
        dropout::backward(dy, p, seed, dx)
    }

    fn sgd_step(
        &self,
        param: &mut ArrayD<f32>,
        grad: &ArrayD<f32>,
        velocity: &mut ArrayD<f32>,
        config: &SgdConfig,
        lr: f32,
        step: u64,
    ) -> Result<()> {
        optim::sgd(param, grad, velocity, config, lr, step)
    }

    fn adam_step(
        &self,
        param: &mut ArrayD<f32>,
        grad: &ArrayD<f32>,
        m: &mut ArrayD<f32>,
        v: &mut ArrayD<f32>,
        config: &AdamConfig,
        lr: f32,
        step: u64,
    ) -> Result<()> {
        optim::adam(param, grad, m, v, config, lr, step)
    }
}
