//! 2-D convolution (cross-correlation, as in PyTorch) and its gradients.
//!
//! [`forward`], [`backward_input`] and [`backward_weight`] lower the convolution to matrix
//! products: im2col unfolds every receptive field of one image into a column, and ndarray's
//! `dot` (matrixmultiply) multiplies. The `*_reference` functions are the plain loops over the
//! definition, summed in `f64`, that the tests hold the fast ones to.

use ndarray::linalg::general_mat_mul;
use ndarray::{
    Array2, Array4, ArrayD, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4,
    CowArray, Ix2, Ix4, Zip, indices,
};

use crate::error::{Error, Result};
use crate::params::{Conv2dParams, Conv2dShape, expect_shape};

const FORWARD: &str = "conv2d";
const BACKWARD_INPUT: &str = "conv2d backward input";
const BACKWARD_WEIGHT: &str = "conv2d backward weight";

/// Checks the shapes of a forward convolution and returns its sizes. Both backends call it.
pub(crate) fn check_forward(
    x: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    params: &Conv2dParams,
    y: &[usize],
) -> Result<Conv2dShape> {
    let shape = params.shape(x, weight)?;
    if let Some(bias) = bias {
        expect_shape(FORWARD, "bias", bias, &[shape.out_channels])?;
    }
    expect_shape(FORWARD, "y", y, &shape.output())?;
    Ok(shape)
}

/// Checks the shapes of the input gradient and returns the convolution's sizes. The input
/// size comes from `dx`, because with a stride above 1 several input sizes give the same
/// output size.
pub(crate) fn check_backward_input(
    dy: &[usize],
    weight: &[usize],
    params: &Conv2dParams,
    dx: &[usize],
) -> Result<Conv2dShape> {
    let shape = params.shape(dx, weight)?;
    expect_shape(BACKWARD_INPUT, "dy", dy, &shape.output())?;
    Ok(shape)
}

/// Checks the shapes of the weight gradient and returns the convolution's sizes.
pub(crate) fn check_backward_weight(
    x: &[usize],
    dy: &[usize],
    params: &Conv2dParams,
    dweight: &[usize],
) -> Result<Conv2dShape> {
    let shape = params.shape(x, dweight)?;
    expect_shape(BACKWARD_WEIGHT, "dy", dy, &shape.output())?;
    Ok(shape)
}

/// Views a tensor whose shape was checked to be 4-D as an `ArrayView4`.
fn view4<'a>(op: &'static str, array: &'a ArrayD<f32>) -> Result<ArrayView4<'a, f32>> {
    array
        .view()
        .into_dimensionality::<Ix4>()
        .map_err(|error| Error::shape(op, format!("expected a 4-D tensor: {error}")))
}

fn view4_mut<'a>(op: &'static str, array: &'a mut ArrayD<f32>) -> Result<ArrayViewMut4<'a, f32>> {
    array
        .view_mut()
        .into_dimensionality::<Ix4>()
        .map_err(|error| Error::shape(op, format!("expected a 4-D tensor: {error}")))
}

/// The sizes and parameters of one convolution, which locate the input that each kernel
/// tap reads.
struct Geometry {
    shape: Conv2dShape,
    params: Conv2dParams,
}

impl Geometry {
    /// Returns the input row that output row `oh` reads through kernel row `kh`, or `None`
    /// when the tap falls in the zero padding.
    fn input_row(&self, oh: usize, kh: usize) -> Option<usize> {
        let [stride, _] = self.params.stride;
        let [padding, _] = self.params.padding;
        let [dilation, _] = self.params.dilation;
        (oh * stride + kh * dilation)
            .checked_sub(padding)
            .filter(|&ih| ih < self.shape.in_height)
    }

    /// Returns the input column that output column `ow` reads through kernel column `kw`, or
    /// `None` in the zero padding.
    fn input_col(&self, ow: usize, kw: usize) -> Option<usize> {
        let [_, stride] = self.params.stride;
        let [_, padding] = self.params.padding;
        let [_, dilation] = self.params.dilation;
        (ow * stride + kw * dilation)
            .checked_sub(padding)
            .filter(|&iw| iw < self.shape.in_width)
    }

    /// Counts the rows of the unfolded image: one per `(in_channel, kh, kw)`.
    fn patch_len(&self) -> usize {
        self.shape.in_channels * self.shape.kernel_height * self.shape.kernel_width
    }

    /// Counts the columns of the unfolded image: one per output pixel.
    fn out_pixels(&self) -> usize {
        self.shape.out_height * self.shape.out_width
    }

    /// Unfolds one image `[in_channels, h, w]` into `[in_channels * kh * kw, out_h * out_w]`:
    /// column `p` contains the receptive field of output pixel `p`, zero in the padding.
    fn im2col(&self, image: ArrayView3<'_, f32>) -> Array2<f32> {
        let s = &self.shape;
        let mut columns = Array2::zeros((self.patch_len(), self.out_pixels()));
        let taps = indices((s.in_channels, s.kernel_height, s.kernel_width));
        for ((ic, kh, kw), mut row) in taps.into_iter().zip(columns.outer_iter_mut()) {
            for oh in 0..s.out_height {
                let Some(ih) = self.input_row(oh, kh) else {
                    continue;
                };
                for ow in 0..s.out_width {
                    if let Some(iw) = self.input_col(ow, kw) {
                        row[oh * s.out_width + ow] = image[[ic, ih, iw]];
                    }
                }
            }
        }
        columns
    }

    /// Adds every column entry back onto the input pixel it was read from, the transpose of
    /// [`Self::im2col`].
    fn col2im_add(&self, columns: ArrayView2<'_, f32>, mut image: ArrayViewMut3<'_, f32>) {
        let s = &self.shape;
        let taps = indices((s.in_channels, s.kernel_height, s.kernel_width));
        for ((ic, kh, kw), row) in taps.into_iter().zip(columns.outer_iter()) {
            for oh in 0..s.out_height {
                let Some(ih) = self.input_row(oh, kh) else {
                    continue;
                };
                for ow in 0..s.out_width {
                    if let Some(iw) = self.input_col(ow, kw) {
                        image[[ic, ih, iw]] += row[oh * s.out_width + ow];
                    }
                }
            }
        }
    }
}

/// Views `array` as a `[rows, cols]` matrix, copying it only when it is not in standard
/// layout.
fn to_matrix<'a, D: ndarray::Dimension>(
    op: &'static str,
    array: &'a ndarray::ArrayBase<impl ndarray::Data<Elem = f32>, D>,
    rows: usize,
    cols: usize,
) -> Result<CowArray<'a, f32, Ix2>> {
    array
        .to_shape((rows, cols))
        .map_err(|error| Error::shape(op, format!("cannot view as {rows}x{cols}: {error}")))
}

/// Computes `y = conv2d(x, weight) + bias` through im2col and one matrix product per image.
///
/// # Shapes
/// `x`: `[n, in_channels, h, w]`; `weight`: `[out_channels, in_channels, kh, kw]`;
/// `bias`: `[out_channels]`; `y`: `[n, out_channels, out_h, out_w]`.
///
/// # Errors
/// [`Error::Shape`] when the shapes do not fit each other or `params` (see
/// [`Conv2dParams::shape`]).
pub fn forward(
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
    params: &Conv2dParams,
    y: &mut ArrayD<f32>,
) -> Result<()> {
    let shape = check_forward(
        x.shape(),
        weight.shape(),
        bias.map(|b| b.shape()),
        params,
        y.shape(),
    )?;
    let geometry = Geometry {
        shape,
        params: *params,
    };
    let weight_matrix = to_matrix(FORWARD, weight, shape.out_channels, geometry.patch_len())?;
    let x = view4(FORWARD, x)?;
    let mut y = view4_mut(FORWARD, y)?;

    for (image, mut out) in x.outer_iter().zip(y.outer_iter_mut()) {
        let columns = geometry.im2col(image);
        let product = weight_matrix.dot(&columns);
        let product = product
            .into_shape_with_order((shape.out_channels, shape.out_height, shape.out_width))
            .map_err(|error| Error::shape(FORWARD, error.to_string()))?;
        out.assign(&product);
        if let Some(bias) = bias {
            for (mut plane, &b) in out.outer_iter_mut().zip(bias.iter()) {
                plane += b;
            }
        }
    }
    Ok(())
}

/// Computes `dx` from `dy` and `weight` through one matrix product per image and col2im.
///
/// # Shapes
/// `dy`: `[n, out_channels, out_h, out_w]`; `weight`: `[out_channels, in_channels, kh, kw]`;
/// `dx`: `[n, in_channels, h, w]` (its shape fixes `h` and `w`).
///
/// # Errors
/// [`Error::Shape`] when the shapes do not fit each other or `params`.
pub fn backward_input(
    dy: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    params: &Conv2dParams,
    dx: &mut ArrayD<f32>,
) -> Result<()> {
    let shape = check_backward_input(dy.shape(), weight.shape(), params, dx.shape())?;
    let geometry = Geometry {
        shape,
        params: *params,
    };
    let weight_matrix = to_matrix(
        BACKWARD_INPUT,
        weight,
        shape.out_channels,
        geometry.patch_len(),
    )?;
    let dy = view4(BACKWARD_INPUT, dy)?;
    let mut dx = view4_mut(BACKWARD_INPUT, dx)?;
    dx.fill(0.0);

    for (grad_out, grad_in) in dy.outer_iter().zip(dx.outer_iter_mut()) {
        let grad_out = to_matrix(
            BACKWARD_INPUT,
            &grad_out,
            shape.out_channels,
            geometry.out_pixels(),
        )?;
        let columns = weight_matrix.t().dot(&grad_out);
        geometry.col2im_add(columns.view(), grad_in);
    }
    Ok(())
}

/// Computes `dweight` from `x` and `dy`, summed over the batch, through im2col and one
/// matrix product per image.
///
/// # Shapes
/// `x`: `[n, in_channels, h, w]`; `dy`: `[n, out_channels, out_h, out_w]`;
/// `dweight`: `[out_channels, in_channels, kh, kw]`.
///
/// # Errors
/// [`Error::Shape`] when the shapes do not fit each other or `params`.
pub fn backward_weight(
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Conv2dParams,
    dweight: &mut ArrayD<f32>,
) -> Result<()> {
    let shape = check_backward_weight(x.shape(), dy.shape(), params, dweight.shape())?;
    let geometry = Geometry {
        shape,
        params: *params,
    };
    let x = view4(BACKWARD_WEIGHT, x)?;
    let dy = view4(BACKWARD_WEIGHT, dy)?;

    let mut sum = Array2::zeros((shape.out_channels, geometry.patch_len()));
    for (image, grad_out) in x.outer_iter().zip(dy.outer_iter()) {
        let columns = geometry.im2col(image);
        let grad_out = to_matrix(
            BACKWARD_WEIGHT,
            &grad_out,
            shape.out_channels,
            geometry.out_pixels(),
        )?;
        general_mat_mul(1.0, &grad_out, &columns.t(), 1.0, &mut sum);
    }
    let sum = sum
        .into_shape_with_order(shape.weight())
        .map_err(|error| Error::shape(BACKWARD_WEIGHT, error.to_string()))?;
    dweight.assign(&sum);
    Ok(())
}

/// Computes [`forward`] with loops over the definition:
/// `y[b, oc, oh, ow] = bias[oc] + Σ x[b, ic, ih, iw] · weight[oc, ic, kh, kw]`
/// with `ih = oh · stride_h − padding_h + kh · dilation_h`, likewise `iw`, and `x` zero
/// outside the input.
///
/// # Errors
/// [`Error::Shape`] as [`forward`].
pub fn forward_reference(
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
    params: &Conv2dParams,
    y: &mut ArrayD<f32>,
) -> Result<()> {
    let shape = check_forward(
        x.shape(),
        weight.shape(),
        bias.map(|b| b.shape()),
        params,
        y.shape(),
    )?;
    let geometry = Geometry {
        shape,
        params: *params,
    };
    let x = view4(FORWARD, x)?;
    let weight = view4(FORWARD, weight)?;
    let taps = (shape.in_channels, shape.kernel_height, shape.kernel_width);

    Zip::indexed(view4_mut(FORWARD, y)?).for_each(|(b, oc, oh, ow), y| {
        let mut sum = bias.map_or(0.0, |bias| f64::from(bias[[oc]]));
        for (ic, kh, kw) in indices(taps) {
            if let (Some(ih), Some(iw)) = (geometry.input_row(oh, kh), geometry.input_col(ow, kw)) {
                sum += f64::from(x[[b, ic, ih, iw]]) * f64::from(weight[[oc, ic, kh, kw]]);
            }
        }
        *y = sum as f32;
    });
    Ok(())
}

/// Computes [`backward_input`] with loops over the definition: every product of the forward
/// pass sends `dy[b, oc, oh, ow] · weight[oc, ic, kh, kw]` back to the input pixel it read.
///
/// # Errors
/// [`Error::Shape`] as [`backward_input`].
pub fn backward_input_reference(
    dy: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    params: &Conv2dParams,
    dx: &mut ArrayD<f32>,
) -> Result<()> {
    let shape = check_backward_input(dy.shape(), weight.shape(), params, dx.shape())?;
    let geometry = Geometry {
        shape,
        params: *params,
    };
    let dy = view4(BACKWARD_INPUT, dy)?;
    let weight = view4(BACKWARD_INPUT, weight)?;
    let taps = (shape.in_channels, shape.kernel_height, shape.kernel_width);

    let mut sum = Array4::<f64>::zeros(shape.input());
    for ((b, oc, oh, ow), &grad) in dy.indexed_iter() {
        for (ic, kh, kw) in indices(taps) {
            if let (Some(ih), Some(iw)) = (geometry.input_row(oh, kh), geometry.input_col(ow, kw)) {
                sum[[b, ic, ih, iw]] += f64::from(grad) * f64::from(weight[[oc, ic, kh, kw]]);
            }
        }
    }
    Zip::from(view4_mut(BACKWARD_INPUT, dx)?)
        .and(&sum)
        .for_each(|dx, &s| *dx = s as f32);
    Ok(())
}

/// Computes [`backward_weight`] with loops over the definition:
/// `dweight[oc, ic, kh, kw] = Σ_{b, oh, ow} dy[b, oc, oh, ow] · x[b, ic, ih, iw]`.
///
/// # Errors
/// [`Error::Shape`] as [`backward_weight`].
pub fn backward_weight_reference(
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Conv2dParams,
    dweight: &mut ArrayD<f32>,
) -> Result<()> {
    let shape = check_backward_weight(x.shape(), dy.shape(), params, dweight.shape())?;
    let geometry = Geometry {
        shape,
        params: *params,
    };
    let x = view4(BACKWARD_WEIGHT, x)?;
    let dy = view4(BACKWARD_WEIGHT, dy)?;
    let positions = (shape.batch_size, shape.out_height, shape.out_width);

    Zip::indexed(view4_mut(BACKWARD_WEIGHT, dweight)?).for_each(|(oc, ic, kh, kw), dweight| {
        let mut sum = 0.0f64;
        for (b, oh, ow) in indices(positions) {
            if let (Some(ih), Some(iw)) = (geometry.input_row(oh, kh), geometry.input_col(ow, kw)) {
                sum += f64::from(dy[[b, oc, oh, ow]]) * f64::from(x[[b, ic, ih, iw]]);
            }
        }
        *dweight = sum as f32;
    });
    Ok(())
}
