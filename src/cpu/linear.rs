//! Fully connected layer: `y = x weightᵀ + bias` and its gradients.
//!
//! NOTE: these matrix products run on one thread, because matrixmultiply's threading is
//! off. Splitting them by rows across rayon tasks packs the other operand once per block,
//! which measured slower at LeNet's sizes on 2 cores.

use ndarray::{ArrayD, ArrayView2, Ix1, Ix2};

use crate::error::{Error, Result};
use crate::params::expect_shape;

/// Views `tensor` as a matrix, or fails naming `what` and its shape.
fn matrix<'a>(
    op: &'static str,
    what: &str,
    tensor: &'a ArrayD<f32>,
) -> Result<ArrayView2<'a, f32>> {
    tensor.view().into_dimensionality::<Ix2>().map_err(|_| {
        Error::shape(
            op,
            format!("{what} must be 2-D, got shape {:?}", tensor.shape()),
        )
    })
}

/// Fails unless `a` has `len` along `axis`, naming both shapes.
fn expect_axis(
    op: &'static str,
    (a_name, a): (&str, &[usize]),
    axis: usize,
    (b_name, b): (&str, &[usize]),
    len: usize,
) -> Result<()> {
    if a[axis] == len {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{a_name} {a:?} must have {len} along axis {axis} to match {b_name} {b:?}"),
        ))
    }
}

/// `y = x weightᵀ + bias`.
pub fn forward(
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
    y: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "linear";
    let [batch_size, out_features] =
        check_forward(OP, x.shape(), weight.shape(), bias.map(ArrayD::shape))?;
    expect_shape(OP, "y", y.shape(), &[batch_size, out_features])?;
    let x = matrix(OP, "x", x)?;
    let weight = matrix(OP, "weight", weight)?;

    let mut product = x.dot(&weight.t());
    if let Some(bias) = bias {
        let bias = bias
            .view()
            .into_dimensionality::<Ix1>()
            .map_err(|_| Error::shape(OP, format!("bias must be 1-D, got {:?}", bias.shape())))?;
        product += &bias;
    }
    y.assign(&product.into_dyn());
    Ok(())
}

/// Checks the shapes of a linear layer's forward pass and returns the output shape.
pub(crate) fn check_forward(
    op: &'static str,
    x: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
) -> Result<[usize; 2]> {
    let (&[batch_size, in_features], &[out_features, weight_in]) = (x, weight) else {
        return Err(Error::shape(
            op,
            format!(
                "x [n, in_features] and weight [out_features, in_features] must be 2-D, got x {x:?} and weight {weight:?}"
            ),
        ));
    };
    if weight_in != in_features {
        return Err(Error::shape(
            op,
            format!(
                "weight {weight:?} expects {weight_in} input features, but x {x:?} has {in_features}"
            ),
        ));
    }
    if let Some(bias) = bias {
        expect_shape(op, "bias", bias, &[out_features])?;
    }
    Ok([batch_size, out_features])
}

/// `dx = dy weight`.
pub fn backward_input(dy: &ArrayD<f32>, weight: &ArrayD<f32>, dx: &mut ArrayD<f32>) -> Result<()> {
    const OP: &str = "linear backward_input";
    let dy = matrix(OP, "dy", dy)?;
    let weight = matrix(OP, "weight", weight)?;
    expect_axis(
        OP,
        ("dy", dy.shape()),
        1,
        ("weight", weight.shape()),
        weight.nrows(),
    )?;
    expect_shape(OP, "dx", dx.shape(), &[dy.nrows(), weight.ncols()])?;

    dx.assign(&dy.dot(&weight).into_dyn());
    Ok(())
}

/// `dweight = dyᵀ x`, summed over the batch.
pub fn backward_weight(x: &ArrayD<f32>, dy: &ArrayD<f32>, dweight: &mut ArrayD<f32>) -> Result<()> {
    const OP: &str = "linear backward_weight";
    let x = matrix(OP, "x", x)?;
    let dy = matrix(OP, "dy", dy)?;
    expect_axis(OP, ("dy", dy.shape()), 0, ("x", x.shape()), x.nrows())?;
    expect_shape(OP, "dweight", dweight.shape(), &[dy.ncols(), x.ncols()])?;

    dweight.assign(&dy.t().dot(&x).into_dyn());
    Ok(())
}
