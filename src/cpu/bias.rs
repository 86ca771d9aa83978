//! Gradient of a per-channel bias.

use ndarray::{ArrayD, Axis};

use crate::error::{Error, Result};
use crate::params::expect_shape;

const OP: &str = "bias backward";

/// Sizes of a bias gradient: `dy` as `[n, channels, spatial]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BiasShape {
    pub batch_size: usize,
    pub channels: usize,
    /// `h * w` for a 4-D `dy`, 1 for a 2-D one.
    pub spatial: usize,
}

/// Checks that `dy` is `[n, c]` or `[n, c, h, w]` and `dbias` is `[c]`. Both backends call it.
pub(crate) fn check_backward(dy: &[usize], dbias: &[usize]) -> Result<BiasShape> {
    let shape = match *dy {
        [batch_size, channels] => BiasShape {
            batch_size,
            channels,
            spatial: 1,
        },
        [batch_size, channels, h, w] => BiasShape {
            batch_size,
            channels,
            spatial: h * w,
        },
        _ => {
            return Err(Error::shape(
                OP,
                format!("dy must be [n, c] or [n, c, h, w], got {dy:?}"),
            ));
        }
    };
    expect_shape(OP, "dbias", dbias, &[shape.channels])?;
    Ok(shape)
}

/// Computes `dbias[c] = Σ dy[b, c, ...]`, the sum over every axis but 1, accumulated in
/// `f64`.
///
/// # Shapes
/// `dy`: `[n, c]` or `[n, c, h, w]`; `dbias`: `[c]`.
///
/// # Errors
/// [`Error::Shape`] when `dy` has another rank or `dbias` is not `[c]`.
pub fn backward(dy: &ArrayD<f32>, dbias: &mut ArrayD<f32>) -> Result<()> {
    check_backward(dy.shape(), dbias.shape())?;
    for (channel, dbias) in dy.axis_iter(Axis(1)).zip(dbias.iter_mut()) {
        *dbias = channel.iter().map(|&g| f64::from(g)).sum::<f64>() as f32;
    }
    Ok(())
}
