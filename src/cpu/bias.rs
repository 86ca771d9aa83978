//! Gradient of a per-channel bias.

use ndarray::ArrayD;

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
/// `f64` plane by plane in batch order.
///
/// # Shapes
/// `dy`: `[n, c]` or `[n, c, h, w]`; `dbias`: `[c]`.
///
/// # Errors
/// [`Error::Shape`] when `dy` has another rank or `dbias` is not `[c]`.
pub fn backward(dy: &ArrayD<f32>, dbias: &mut ArrayD<f32>) -> Result<()> {
    let shape = check_backward(dy.shape(), dbias.shape())?;
    let dy = dy.as_standard_layout();
    let dy = dy.as_slice().expect("standard layout is contiguous");

    let mut sums = vec![0.0f64; shape.channels];
    for image in dy.chunks_exact(shape.channels * shape.spatial) {
        for (sum, plane) in sums.iter_mut().zip(image.chunks_exact(shape.spatial)) {
            *sum += sum_f64(plane);
        }
    }
    for (dbias, &sum) in dbias.iter_mut().zip(&sums) {
        *dbias = sum as f32;
    }
    Ok(())
}

/// Sums `values` in `f64` over eight interleaved partial sums. The order is fixed, so the
/// result repeats bit for bit, and the compiler can vectorize the eight independent sums.
fn sum_f64(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(lanes.len());
    let rest: f64 = chunks.remainder().iter().map(|&v| f64::from(v)).sum();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(value);
        }
    }
    lanes.iter().sum::<f64>() + rest
}
