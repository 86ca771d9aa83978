use crate::error::Result;
use crate::params::Pool2dParams;
use ndarray::ArrayD;

pub fn max_forward(_x: &ArrayD<f32>, _params: &Pool2dParams, _y: &mut ArrayD<f32>) -> Result<()> {
    todo!()
}
pub fn max_backward(
    _x: &ArrayD<f32>,
    _dy: &ArrayD<f32>,
    _params: &Pool2dParams,
    _dx: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
pub fn avg_forward(_x: &ArrayD<f32>, _params: &Pool2dParams, _y: &mut ArrayD<f32>) -> Result<()> {
    todo!()
}
pub fn avg_backward(
    _dy: &ArrayD<f32>,
    _params: &Pool2dParams,
    _dx: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
