use crate::error::Result;
use crate::params::{AdamConfig, SgdConfig};
use ndarray::ArrayD;

pub fn sgd(
    _param: &mut ArrayD<f32>,
    _grad: &ArrayD<f32>,
    _velocity: &mut ArrayD<f32>,
    _config: &SgdConfig,
    _lr: f32,
    _step: u64,
) -> Result<()> {
    todo!()
}
#[allow(clippy::too_many_arguments)]
pub fn adam(
    _param: &mut ArrayD<f32>,
    _grad: &ArrayD<f32>,
    _m: &mut ArrayD<f32>,
    _v: &mut ArrayD<f32>,
    _config: &AdamConfig,
    _lr: f32,
    _step: u64,
) -> Result<()> {
    todo!()
}
