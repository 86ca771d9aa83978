//! Inverted dropout with a mask hashed from the seed and the element index.

use ndarray::ArrayD;

use crate::error::{Error, Result};
use crate::params::{dropout_keeps, expect_shape};

/// Checks `p` and returns the factor `1 / (1 - p)` that kept elements are scaled by. Both
/// backends multiply by this `f32` factor, so their outputs agree bit for bit.
pub(crate) fn keep_scale(p: f32) -> Result<f32> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout probability",
            format!("must be in [0, 1), where 0 disables dropout; got {p}"),
        ));
    }
    Ok(1.0 / (1.0 - p))
}

/// Checks that the mask's `u32` element index reaches every element.
pub(crate) fn check_len(op: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| {
        Error::shape(
            op,
            format!("{len} elements exceed the 32-bit index that the dropout mask hashes"),
        )
    })
}

/// Writes `input * mask / (1 - p)` to `output`, element by element in row-major order.
fn apply_mask(
    op: &'static str,
    input: &ArrayD<f32>,
    p: f32,
    seed: u32,
    output: &mut ArrayD<f32>,
) -> Result<()> {
    expect_shape(op, "output", output.shape(), input.shape())?;
    let scale = keep_scale(p)?;
    check_len(op, input.len())?;

    // `iter` visits elements in row-major order whatever the memory layout, so `index` is
    // the flat index the GPU kernel hashes.
    for (index, (out, &v)) in output.iter_mut().zip(input.iter()).enumerate() {
        *out = if dropout_keeps(seed, index as u32, p) {
            v * scale
        } else {
            0.0
        };
    }
    Ok(())
}

/// `y = x * keep / (1 - p)`, where `keep` is [`dropout_keeps`] of `seed` and the element's
/// row-major index.
///
/// # Shapes
/// `x`, `y`: equal.
///
/// # Errors
/// [`Error::InvalidArgument`] unless `0 <= p < 1`; [`Error::Shape`] when the shapes differ.
pub fn forward(x: &ArrayD<f32>, p: f32, seed: u32, y: &mut ArrayD<f32>) -> Result<()> {
    apply_mask("dropout", x, p, seed, y)
}

/// `dx = dy * keep / (1 - p)`, with the mask of [`forward`] for the same `p` and `seed`.
///
/// # Shapes
/// `dy`, `dx`: equal.
///
/// # Errors
/// As [`forward`].
pub fn backward(dy: &ArrayD<f32>, p: f32, seed: u32, dx: &mut ArrayD<f32>) -> Result<()> {
    apply_mask("dropout backward", dy, p, seed, dx)
}
