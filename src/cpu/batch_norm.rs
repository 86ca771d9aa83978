use crate::error::Result;
use ndarray::ArrayD;

#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    _x: &ArrayD<f32>,
    _gamma: &ArrayD<f32>,
    _beta: &ArrayD<f32>,
    _running_mean: &mut ArrayD<f32>,
    _running_var: &mut ArrayD<f32>,
    _momentum: f32,
    _eps: f32,
    _y: &mut ArrayD<f32>,
    _saved_mean: &mut ArrayD<f32>,
    _saved_inv_std: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
pub fn forward_eval(
    _x: &ArrayD<f32>,
    _gamma: &ArrayD<f32>,
    _beta: &ArrayD<f32>,
    _running_mean: &ArrayD<f32>,
    _running_var: &ArrayD<f32>,
    _eps: f32,
    _y: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
#[allow(clippy::too_many_arguments)]
pub fn backward(
    _x: &ArrayD<f32>,
    _dy: &ArrayD<f32>,
    _gamma: &ArrayD<f32>,
    _saved_mean: &ArrayD<f32>,
    _saved_inv_std: &ArrayD<f32>,
    _dx: &mut ArrayD<f32>,
    _dgamma: &mut ArrayD<f32>,
    _dbeta: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
