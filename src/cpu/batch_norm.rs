//! Batch normalization over `[n, c, h, w]`, per channel, as `torch.nn.BatchNorm2d`.
//!
//! Sums over a channel accumulate in `f64`, so this path is a precise reference for the
//! `f32` GPU kernels.

use ndarray::{ArrayD, ArrayViewD, Axis, Zip};

use crate::error::{Error, Result};
use crate::params::{expect_shape, nchw};

/// Checks that every per-channel tensor has shape `[channels]`.
fn check_channel_shapes(
    op: &'static str,
    channels: usize,
    tensors: &[(&str, &ArrayD<f32>)],
) -> Result<()> {
    for (what, tensor) in tensors {
        expect_shape(op, what, tensor.shape(), &[channels])?;
    }
    Ok(())
}

/// Returns `n * h * w`, the number of values each channel is normalized over, or fails when
/// it is below two, because the running variance is unbiased and divides by `n * h * w - 1`.
pub(crate) fn training_count(op: &'static str, shape: &[usize]) -> Result<usize> {
    let [n, _, h, w] = nchw(op, "x", shape)?;
    let count = n * h * w;
    if count < 2 {
        return Err(Error::shape(
            op,
            format!(
                "expected more than 1 value per channel when training, got x of shape \
                 {shape:?}; use a batch size above 1 or an image larger than 1x1"
            ),
        ));
    }
    Ok(count)
}

/// Computes the mean and the sum of squared deviations of one channel. The second pass
/// subtracts the mean first, so a large mean does not cancel the variance.
fn mean_and_squared_deviations(plane: ArrayViewD<'_, f32>) -> (f64, f64) {
    let count = plane.len() as f64;
    let mean = plane.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
    let squared_deviations = plane
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>();
    (mean, squared_deviations)
}

/// Normalizes each channel with its batch mean and biased variance, then scales by `gamma` and
/// shifts by `beta`. Updates the running statistics with `momentum` and the unbiased
/// variance, and stores the batch mean and `1 / sqrt(var + eps)`.
///
/// # Shapes
/// `x`, `y`: `[n, c, h, w]`; every other tensor: `[c]`.
///
/// # Errors
/// [`Error::Shape`] on a shape mismatch, or when a channel has a single value (`n * h * w == 1`).
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    x: &ArrayD<f32>,
    gamma: &ArrayD<f32>,
    beta: &ArrayD<f32>,
    running_mean: &mut ArrayD<f32>,
    running_var: &mut ArrayD<f32>,
    momentum: f32,
    eps: f32,
    y: &mut ArrayD<f32>,
    saved_mean: &mut ArrayD<f32>,
    saved_inv_std: &mut ArrayD<f32>,
) -> Result<()> {
    let op = "batch_norm2d";
    let [_, channels, _, _] = nchw(op, "x", x.shape())?;
    check_channel_shapes(
        op,
        channels,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
            ("saved_mean", saved_mean),
            ("saved_inv_std", saved_inv_std),
        ],
    )?;
    expect_shape(op, "y", y.shape(), x.shape())?;
    let count = training_count(op, x.shape())? as f64;

    for c in 0..channels {
        let plane = x.index_axis(Axis(1), c);
        let (mean, squared_deviations) = mean_and_squared_deviations(plane.view());
        let biased_var = squared_deviations / count;
        let unbiased_var = squared_deviations / (count - 1.0);
        let inv_std = 1.0 / (biased_var + f64::from(eps)).sqrt();

        saved_mean[c] = mean as f32;
        saved_inv_std[c] = inv_std as f32;
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean as f32;
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased_var as f32;

        let (g, b) = (f64::from(gamma[c]), f64::from(beta[c]));
        Zip::from(y.index_axis_mut(Axis(1), c))
            .and(plane)
            .for_each(|y, &v| {
                let x_hat = (f64::from(v) - mean) * inv_std;
                *y = (g * x_hat + b) as f32;
            });
    }
    Ok(())
}

/// Normalizes each channel with the running statistics.
///
/// # Shapes
/// `x`, `y`: `[n, c, h, w]`; `gamma`, `beta`, `running_mean`, `running_var`: `[c]`.
///
/// # Errors
/// [`Error::Shape`] on a shape mismatch.
pub fn forward_eval(
    x: &ArrayD<f32>,
    gamma: &ArrayD<f32>,
    beta: &ArrayD<f32>,
    running_mean: &ArrayD<f32>,
    running_var: &ArrayD<f32>,
    eps: f32,
    y: &mut ArrayD<f32>,
) -> Result<()> {
    let op = "batch_norm2d eval";
    let [_, channels, _, _] = nchw(op, "x", x.shape())?;
    check_channel_shapes(
        op,
        channels,
        &[
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    )?;
    expect_shape(op, "y", y.shape(), x.shape())?;

    for c in 0..channels {
        let mean = running_mean[c];
        let inv_std = 1.0 / (running_var[c] + eps).sqrt();
        let (g, b) = (gamma[c], beta[c]);
        Zip::from(y.index_axis_mut(Axis(1), c))
            .and(x.index_axis(Axis(1), c))
            .for_each(|y, &v| *y = g * ((v - mean) * inv_std) + b);
    }
    Ok(())
}

/// Gradients of [`forward_train`] with respect to `x`, `gamma` and `beta`:
/// `dbeta = sum(dy)`, `dgamma = sum(dy * x_hat)` and
/// `dx = gamma * inv_std / N * (N * dy - dbeta - x_hat * dgamma)`, where `N = n * h * w` and
/// `x_hat = (x - saved_mean) * saved_inv_std`.
///
/// # Shapes
/// `x`, `dy`, `dx`: `[n, c, h, w]`; `gamma`, `saved_mean`, `saved_inv_std`, `dgamma`,
/// `dbeta`: `[c]`.
///
/// # Errors
/// [`Error::Shape`] on a shape mismatch, or when a channel has a single value.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    gamma: &ArrayD<f32>,
    saved_mean: &ArrayD<f32>,
    saved_inv_std: &ArrayD<f32>,
    dx: &mut ArrayD<f32>,
    dgamma: &mut ArrayD<f32>,
    dbeta: &mut ArrayD<f32>,
) -> Result<()> {
    let op = "batch_norm2d backward";
    let [_, channels, _, _] = nchw(op, "x", x.shape())?;
    check_channel_shapes(
        op,
        channels,
        &[
            ("gamma", gamma),
            ("saved_mean", saved_mean),
            ("saved_inv_std", saved_inv_std),
            ("dgamma", dgamma),
            ("dbeta", dbeta),
        ],
    )?;
    expect_shape(op, "dy", dy.shape(), x.shape())?;
    expect_shape(op, "dx", dx.shape(), x.shape())?;
    let count = training_count(op, x.shape())? as f64;

    for c in 0..channels {
        let x_plane = x.index_axis(Axis(1), c);
        let dy_plane = dy.index_axis(Axis(1), c);
        let mean = f64::from(saved_mean[c]);
        let inv_std = f64::from(saved_inv_std[c]);
        let x_hat = |v: f32| (f64::from(v) - mean) * inv_std;

        let mut sum_dy = 0.0;
        let mut sum_dy_x_hat = 0.0;
        Zip::from(&x_plane).and(&dy_plane).for_each(|&v, &g| {
            sum_dy += f64::from(g);
            sum_dy_x_hat += f64::from(g) * x_hat(v);
        });
        dbeta[c] = sum_dy as f32;
        dgamma[c] = sum_dy_x_hat as f32;

        let scale = f64::from(gamma[c]) * inv_std / count;
        Zip::from(dx.index_axis_mut(Axis(1), c))
            .and(&x_plane)
            .and(&dy_plane)
            .for_each(|dx, &v, &g| {
                let centered = count * f64::from(g) - sum_dy - x_hat(v) * sum_dy_x_hat;
                *dx = (scale * centered) as f32;
            });
    }
    Ok(())
}
