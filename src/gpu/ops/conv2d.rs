use crate::error::Result;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::Conv2dParams;

pub(crate) fn forward(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _weight: &GpuTensor,
    _bias: Option<&GpuTensor>,
    _params: &Conv2dParams,
    _y: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
pub(crate) fn backward_input(
    _gpu: &GpuBackend,
    _dy: &GpuTensor,
    _weight: &GpuTensor,
    _params: &Conv2dParams,
    _dx: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
pub(crate) fn backward_weight(
    _gpu: &GpuBackend,
    _x: &GpuTensor,
    _dy: &GpuTensor,
    _params: &Conv2dParams,
    _dweight: &mut GpuTensor,
) -> Result<()> {
    todo!()
}
