use crate::error::Result;
use crate::gpu::{GpuBackend, GpuTensor};

#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_train(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _gamma: &GpuTensor,
    _beta: &GpuTensor,
    _running_mean: &mut GpuTensor,
    _running_var: &mut GpuTensor,
    _momentum: f32,
    _eps: f32,
    _y: &mut GpuTensor,
    _saved_mean: &mut GpuTensor,
    _saved_inv_std: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
pub(crate) fn forward_eval(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _gamma: &GpuTensor,
    _beta: &GpuTensor,
    _running_mean: &GpuTensor,
    _running_var: &GpuTensor,
    _eps: f32,
    _y: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _dy: &GpuTensor,
    _gamma: &GpuTensor,
    _saved_mean: &GpuTensor,
    _saved_inv_std: &GpuTensor,
    _dx: &mut GpuTensor,
    _dgamma: &mut GpuTensor,
    _dbeta: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
