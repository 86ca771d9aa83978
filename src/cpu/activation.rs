//! Element-wise activations.

use ndarray::{ArrayD, Zip};

use crate::error::Result;
use crate::params::{Activation, expect_shape};

/// The logistic function, evaluated without overflow for any input.
pub fn logistic(v: f32) -> f32 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

/// `y = f(x)`.
pub fn forward(activation: Activation, x: &ArrayD<f32>, y: &mut ArrayD<f32>) -> Result<()> {
    expect_shape("activation", "y", y.shape(), x.shape())?;
    Zip::from(y).and(x).for_each(|y, &v| {
        *y = match activation {
            Activation::Relu => v.max(0.0),
            Activation::LeakyRelu { negative_slope } => {
                if v > 0.0 {
                    v
                } else {
                    negative_slope * v
                }
            }
            Activation::Sigmoid => logistic(v),
            Activation::Tanh => v.tanh(),
        }
    });
    Ok(())
}

/// `dx = f'(x) dy`; sigmoid and tanh take the derivative from the output `y`.
pub fn backward(
    activation: Activation,
    x: &ArrayD<f32>,
    y: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    dx: &mut ArrayD<f32>,
) -> Result<()> {
    let op = "activation backward";
    expect_shape(op, "y", y.shape(), x.shape())?;
    expect_shape(op, "dy", dy.shape(), x.shape())?;
    expect_shape(op, "dx", dx.shape(), x.shape())?;
    Zip::from(dx)
        .and(x)
        .and(y)
        .and(dy)
        .for_each(|dx, &v, &out, &g| {
            let slope = match activation {
                Activation::Relu => {
                    if v > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                Activation::LeakyRelu { negative_slope } => {
                    if v > 0.0 {
                        1.0
                    } else {
                        negative_slope
                    }
                }
                Activation::Sigmoid => out * (1.0 - out),
                Activation::Tanh => 1.0 - out * out,
            };
            *dx = slope * g;
        });
    Ok(())
}
