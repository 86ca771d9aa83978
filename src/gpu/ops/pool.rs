use crate::error::Result;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::Pool2dParams;

pub(crate) fn max_forward(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _params: &Pool2dParams,
    _y: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
pub(crate) fn max_backward(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _dy: &GpuTensor,
    _params: &Pool2dParams,
    _dx: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
pub(crate) fn avg_forward(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _params: &Pool2dParams,
    _y: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
pub(crate) fn avg_backward(
    _gpu: &GpuBackend,
    _dy: &GpuTensor,
    _params: &Pool2dParams,
    _dx: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
