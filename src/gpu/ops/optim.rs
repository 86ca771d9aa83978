use crate::error::Result;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::{AdamConfig, SgdConfig};

pub(crate) fn sgd(
    _gpu: &GpuBackend,
    _param: &mut GpuTensor,
    _grad: &GpuTensor,
    _velocity: &mut GpuTensor,
    _config: &SgdConfig,
    _lr: f32,
    _step: u64,
) -> Result<()> {
    todo!()
}
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam(
    _gpu: &GpuBackend,
    _param: &mut GpuTensor,
    _grad: &GpuTensor,
    _m: &mut GpuTensor,
    _v: &mut GpuTensor,
    _config: &AdamConfig,
    _lr: f32,
    _step: u64,
) -> Result<()> {
    todo!()
}
