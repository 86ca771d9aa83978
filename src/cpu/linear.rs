use crate::error::Result;
use ndarray::ArrayD;

pub fn forward(
    _x: &ArrayD<f32>,
    _weight: &ArrayD<f32>,
    _bias: Option<&ArrayD<f32>>,
    _y: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
pub fn backward_input(
    _dy: &ArrayD<f32>,
    _weight: &ArrayD<f32>,
    _dx: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
pub fn backward_weight(
    _x: &ArrayD<f32>,
    _dy: &ArrayD<f32>,
    _dweight: &mut ArrayD<f32>,
) -> Result<()> {
    todo!()
}
