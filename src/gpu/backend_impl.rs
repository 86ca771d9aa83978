//! [`Backend`] for [`GpuBackend`]: tensor management here, each op in `ops/`.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::tensor::{GpuLabels, GpuTensor, next_id};
use super::{GpuBackend, ops};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::labels::check_labels;
use crate::params::{Activation, AdamConfig, Conv2dParams, Pool2dParams, SgdConfig};

/// Fails on an empty shape or one with a zero-sized axis.
fn check_nonempty(label: &str, shape: &[usize]) -> Result<usize> {
    let len: usize = shape.iter().product();
    if shape.is_empty() || len == 0 {
        return Err(Error::shape(
            "tensor",
            format!("tensor `{label}` must have at least one element, got shape {shape:?}"),
        ));
    }
    Ok(len)
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Labels = GpuLabels;

    fn device_name(&self) -> String {
        format!("{} ({:?})", self.ctx.info.name, self.ctx.info.backend)
    }

    fn shape<'a>(&self, tensor: &'a GpuTensor) -> &'a [usize] {
        &tensor.shape
    }

    fn full(&self, label: &str, shape: &[usize], value: f32) -> Result<GpuTensor> {
        let len = check_nonempty(label, shape)?;
        let bytes = value.to_le_bytes();
        let buffer =
            self.create_storage_buffer_with(label, (len as u64).saturating_mul(4), |mapped| {
                let (mut elements, _) = mapped.into_chunks::<4>();
                elements.fill(bytes);
            })?;
        Ok(GpuTensor {
            buffer,
            shape: shape.to_vec(),
            id: next_id(),
        })
    }

    fn tensor(&self, label: &str, data: ArrayViewD<'_, f32>) -> Result<GpuTensor> {
        let len = check_nonempty(label, data.shape())?;
        let buffer =
            self.create_storage_buffer_with(label, (len as u64).saturating_mul(4), |mapped| {
                let (elements, _) = mapped.into_chunks::<4>();
                elements.write_iter(data.iter().map(|value| value.to_le_bytes()));
            })?;
        Ok(GpuTensor {
            buffer,
            shape: data.shape().to_vec(),
            id: next_id(),
        })
    }

    fn write(&self, tensor: &mut GpuTensor, data: ArrayViewD<'_, f32>) -> Result<()> {
        if data.shape() != tensor.shape.as_slice() {
            return Err(Error::shape(
                "write",
                format!(
                    "data of shape {:?} cannot overwrite a tensor of shape {:?}",
                    data.shape(),
                    tensor.shape
                ),
            ));
        }
        match data.as_slice() {
            Some(slice) => {
                self.write_buffer(tensor.id, &tensor.buffer, bytemuck::cast_slice(slice))
            }
            None => {
                let contiguous: Vec<f32> = data.iter().copied().collect();
                self.write_buffer(tensor.id, &tensor.buffer, bytemuck::cast_slice(&contiguous))
            }
        }
    }

    fn read(&self, tensor: &GpuTensor) -> Result<ArrayD<f32>> {
        let bytes = self.read_buffer(&tensor.buffer)?;
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        ArrayD::from_shape_vec(IxDyn(&tensor.shape), values)
            .map_err(|error| Error::Gpu(format!("readback has the wrong size: {error}")))
    }

    fn read_many(&self, tensors: &[&GpuTensor]) -> Result<Vec<ArrayD<f32>>> {
        let buffers: Vec<&wgpu::Buffer> = tensors.iter().map(|t| t.buffer.as_ref()).collect();
        let parts = self.read_buffers(&buffers)?;
        tensors
            .iter()
            .zip(parts)
            .map(|(tensor, bytes)| {
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
                ArrayD::from_shape_vec(IxDyn(&tensor.shape), values)
                    .map_err(|error| Error::Gpu(format!("readback has the wrong size: {error}")))
            })
            .collect()
    }

    fn reshape(&self, tensor: &GpuTensor, shape: &[usize]) -> Result<GpuTensor> {
        let len: usize = shape.iter().product();
        if len != tensor.len() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot view {} elements of shape {:?} as shape {shape:?}",
                    tensor.len(),
                    tensor.shape
                ),
            ));
        }
        Ok(GpuTensor {
            buffer: Arc::clone(&tensor.buffer),
            shape: shape.to_vec(),
            id: tensor.id,
        })
    }

    fn labels(&self, label: &str, labels: &[u32], classes: usize) -> Result<GpuLabels> {
        check_nonempty(label, &[labels.len()])?;
        check_labels(labels, classes)?;
        let buffer = self.create_storage_buffer(label, bytemuck::cast_slice(labels))?;
        Ok(GpuLabels {
            buffer,
            len: labels.len(),
            id: next_id(),
        })
    }

    fn write_labels(&self, target: &mut GpuLabels, labels: &[u32], classes: usize) -> Result<()> {
        if labels.len() != target.len {
            return Err(Error::shape(
                "write_labels",
                format!(
                    "{} labels cannot overwrite a label vector of length {}",
                    labels.len(),
                    target.len
                ),
            ));
        }
        check_labels(labels, classes)?;
        self.write_buffer(target.id, &target.buffer, bytemuck::cast_slice(labels))
    }

    fn submit(&self) -> Result<()> {
        self.flush()
    }

    fn start_kernel_timing(&self) -> bool {
        GpuBackend::start_kernel_timing(self)
    }

    fn finish_kernel_timing(&self) -> Result<Vec<(String, f64)>> {
        Ok(GpuBackend::finish_kernel_timing(self)?
            .into_iter()
            .map(|time| (time.kernel, time.seconds))
            .collect())
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.ctx.wait("finishing submitted work")
    }

    fn conv2d_forward(
        &self,
        x: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        params: &Conv2dParams,
        y: &mut GpuTensor,
    ) -> Result<()> {
        ops::conv2d::forward(self, x, weight, bias, params, y)
    }

    fn conv2d_backward_input(
        &self,
        dy: &GpuTensor,
        weight: &GpuTensor,
        params: &Conv2dParams,
        dx: &mut GpuTensor,
    ) -> Result<()> {
        ops::conv2d::backward_input(self, dy, weight, params, dx)
    }

    fn conv2d_backward_weight(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        params: &Conv2dParams,
        dweight: &mut GpuTensor,
    ) -> Result<()> {
        ops::conv2d::backward_weight(self, x, dy, params, dweight)
    }

    fn bias_backward(&self, dy: &GpuTensor, dbias: &mut GpuTensor) -> Result<()> {
        ops::bias::backward(self, dy, dbias)
    }

    fn max_pool2d_forward(
        &self,
        x: &GpuTensor,
        params: &Pool2dParams,
        y: &mut GpuTensor,
    ) -> Result<()> {
        ops::pool::max_forward(self, x, params, y)
    }

    fn max_pool2d_backward(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        params: &Pool2dParams,
        dx: &mut GpuTensor,
    ) -> Result<()> {
        ops::pool::max_backward(self, x, dy, params, dx)
    }

    fn avg_pool2d_forward(
        &self,
        x: &GpuTensor,
        params: &Pool2dParams,
        y: &mut GpuTensor,
    ) -> Result<()> {
        ops::pool::avg_forward(self, x, params, y)
    }

    fn avg_pool2d_backward(
        &self,
        dy: &GpuTensor,
        params: &Pool2dParams,
        dx: &mut GpuTensor,
    ) -> Result<()> {
        ops::pool::avg_backward(self, dy, params, dx)
    }

    fn activation_forward(
        &self,
        activation: Activation,
        x: &GpuTensor,
        y: &mut GpuTensor,
    ) -> Result<()> {
        ops::activation::forward(self, activation, x, y)
    }

    fn activation_backward(
        &self,
        activation: Activation,
        x: &GpuTensor,
        y: &GpuTensor,
        dy: &GpuTensor,
        dx: &mut GpuTensor,
    ) -> Result<()> {
        ops::activation::backward(self, activation, x, y, dy, dx)
    }

    fn linear_forward(
        &self,
        x: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        y: &mut GpuTensor,
    ) -> Result<()> {
        ops::linear::forward(self, x, weight, bias, y)
    }

    fn linear_backward_input(
        &self,
        dy: &GpuTensor,
        weight: &GpuTensor,
        dx: &mut GpuTensor,
    ) -> Result<()> {
        ops::linear::backward_input(self, dy, weight, dx)
    }

    fn linear_backward_weight(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        dweight: &mut GpuTensor,
    ) -> Result<()> {
        ops::linear::backward_weight(self, x, dy, dweight)
    }

    fn softmax_cross_entropy(
        &self,
        logits: &GpuTensor,
        labels: &GpuLabels,
        loss: &mut GpuTensor,
        dlogits: &mut GpuTensor,
    ) -> Result<()> {
        ops::loss::softmax_cross_entropy(self, logits, labels, loss, dlogits)
    }

    fn count_correct(
        &self,
        logits: &GpuTensor,
        labels: &GpuLabels,
        correct: &mut GpuTensor,
    ) -> Result<()> {
        ops::loss::count_correct(self, logits, labels, correct)
    }

    fn mse_loss(
        &self,
        pred: &GpuTensor,
        target: &GpuTensor,
        loss: &mut GpuTensor,
        dpred: &mut GpuTensor,
    ) -> Result<()> {
        ops::loss::mse(self, pred, target, loss, dpred)
    }

    fn batch_norm2d_forward_train(
        &self,
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
        ops::batch_norm::forward_train(
            self,
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
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        eps: f32,
        y: &mut GpuTensor,
    ) -> Result<()> {
        ops::batch_norm::forward_eval(self, x, gamma, beta, running_mean, running_var, eps, y)
    }

    fn batch_norm2d_backward(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        saved_mean: &GpuTensor,
        saved_inv_std: &GpuTensor,
        dx: &mut GpuTensor,
        dgamma: &mut GpuTensor,
        dbeta: &mut GpuTensor,
    ) -> Result<()> {
        ops::batch_norm::backward(
            self,
            x,
            dy,
            gamma,
            saved_mean,
            saved_inv_std,
            dx,
            dgamma,
            dbeta,
        )
    }

    fn dropout_forward(&self, x: &GpuTensor, p: f32, seed: u32, y: &mut GpuTensor) -> Result<()> {
        ops::dropout::forward(self, x, p, seed, y)
    }

    fn dropout_backward(
        &self,
        dy: &GpuTensor,
        p: f32,
        seed: u32,
        dx: &mut GpuTensor,
    ) -> Result<()> {
        ops::dropout::backward(self, dy, p, seed, dx)
    }

    fn sgd_step(
        &self,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        velocity: &mut GpuTensor,
        config: &SgdConfig,
        lr: f32,
        step: u64,
    ) -> Result<()> {
        ops::optim::sgd(self, param, grad, velocity, config, lr, step)
    }

    fn adam_step(
        &self,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
        config: &AdamConfig,
        lr: f32,
        step: u64,
    ) -> Result<()> {
        ops::optim::adam(self, param, grad, m, v, config, lr, step)
    }
}
