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
    // One loop per activation, so that no loop branches on the activation per element.
    match activation {
        // Not `v.max(0.0)`, which returns 0 for NaN: NaN passes on, as in PyTorch, so that a
        // diverging model shows in the loss. The NaN test is explicit because rustc 1.95 at
        // opt-level 2 compiled `if v < 0.0 { 0.0 } else { v }` to a maximum that drops NaN.
        Activation::Relu => map(x, y, |v| if v.is_nan() || v >= 0.0 { v } else { 0.0 }),
        Activation::LeakyRelu { negative_slope } => {
            map(x, y, |v| if v > 0.0 { v } else { negative_slope * v })
        }
        Activation::Sigmoid => map(x, y, logistic),
        Activation::Tanh => map(x, y, f32::tanh),
    }
    Ok(())
}

/// Writes `y = f(x)` element by element.
fn map(x: &ArrayD<f32>, y: &mut ArrayD<f32>, f: impl Fn(f32) -> f32) {
    Zip::from(y).and(x).for_each(|y, &v| *y = f(v));
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
    // One loop per activation keeps the per-element work free of a branch on the activation.
    // Each loop computes `slope * dy` as the GPU kernel does, so `0.0 * g` passes a NaN or
    // infinite gradient on as NaN.
    match activation {
        Activation::Relu => Zip::from(dx).and(x).and(dy).for_each(|dx, &v, &g| {
            *dx = if v > 0.0 { g } else { 0.0 * g };
        }),
        Activation::LeakyRelu { negative_slope } => {
            Zip::from(dx).and(x).and(dy).for_each(|dx, &v, &g| {
                *dx = if v > 0.0 { g } else { negative_slope * g };
            })
        }
        Activation::Sigmoid => Zip::from(dx).and(y).and(dy).for_each(|dx, &out, &g| {
            *dx = out * (1.0 - out) * g;
        }),
        Activation::Tanh => Zip::from(dx).and(y).and(dy).for_each(|dx, &out, &g| {
            *dx = (1.0 - out * out) * g;
        }),
    }
    Ok(())
}
