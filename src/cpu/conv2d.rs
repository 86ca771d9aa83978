//! 2-D convolution (cross-correlation, as in PyTorch) and its gradients.
//!
//! [`forward`], [`backward_input`] and [`backward_weight`] lower the convolution to matrix
//! products: im2col unfolds every receptive field of one image into a column, and ndarray's
//! `general_mat_mul` (matrixmultiply) multiplies. Rayon splits the batch into tasks of a few
//! images each. The `*_reference` functions are the plain loops over the definition, summed in
//! `f64`, that the tests hold the fast ones to.

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{
    Array2, Array4, ArrayD, ArrayView2, ArrayView4, ArrayViewMut2, ArrayViewMut4, CowArray, Ix2,
    Ix4, Zip, indices,
};
use rayon::prelude::*;

use super::write_row_major;
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

    /// Counts the values of one input image `[in_channels, h, w]`.
    fn image_len(&self) -> usize {
        self.shape.in_channels * self.shape.in_height * self.shape.in_width
    }

    /// Returns the output rows that kernel row `kh` reads inside the input, and the input
    /// row that the first of them reads.
    fn row_span(&self, kh: usize) -> Span {
        Span::new(
            self.shape.out_height,
            self.shape.in_height,
            self.params.stride[0],
            self.params.padding[0],
            kh * self.params.dilation[0],
        )
    }

    /// Returns the output columns that kernel column `kw` reads inside the input, and the
    /// input column that the first of them reads.
    fn col_span(&self, kw: usize) -> Span {
        Span::new(
            self.shape.out_width,
            self.shape.in_width,
            self.params.stride[1],
            self.params.padding[1],
            kw * self.params.dilation[1],
        )
    }

    /// Unfolds one image `[in_channels, h, w]` into `columns`, a `[in_channels * kh * kw,
    /// out_h * out_w]` matrix in row-major order: column `p` receives the receptive field of
    /// output pixel `p`, zero in the padding. Every value of `columns` is overwritten.
    fn im2col(&self, image: &[f32], columns: &mut [f32]) {
        let s = &self.shape;
        let [_, col_stride] = self.params.stride;
        let channels = image.chunks_exact(s.in_height * s.in_width);
        let mut rows = columns.chunks_exact_mut(self.out_pixels());
        for channel in channels {
            for kh in 0..s.kernel_height {
                let row_span = self.row_span(kh);
                for kw in 0..s.kernel_width {
                    let col_span = self.col_span(kw);
                    let row = rows.next().expect("columns has one row per kernel tap");
                    for (oh, out_row) in row.chunks_exact_mut(s.out_width).enumerate() {
                        let Some(ih) = row_span.input(oh, self.params.stride[0]) else {
                            out_row.fill(0.0);
                            continue;
                        };
                        let in_row = &channel[ih * s.in_width..(ih + 1) * s.in_width];
                        let (before, inside, after) = col_span.split(out_row);
                        before.fill(0.0);
                        after.fill(0.0);
                        let read = &in_row[col_span.first_input..];
                        // A slice copy for stride 1 is several times faster than the
                        // element-wise copy through `step_by`, which does not vectorize.
                        if col_stride == 1 {
                            inside.copy_from_slice(&read[..inside.len()]);
                        } else {
                            let read = read.iter().step_by(col_stride);
                            for (value, &input) in inside.iter_mut().zip(read) {
                                *value = input;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds every entry of `columns` back onto the input pixel it was read from, the
    /// transpose of [`Self::im2col`].
    fn col2im_add(&self, columns: &[f32], image: &mut [f32]) {
        let s = &self.shape;
        let [_, col_stride] = self.params.stride;
        let channels = image.chunks_exact_mut(s.in_height * s.in_width);
        let mut rows = columns.chunks_exact(self.out_pixels());
        for channel in channels {
            for kh in 0..s.kernel_height {
                let row_span = self.row_span(kh);
                for kw in 0..s.kernel_width {
                    let col_span = self.col_span(kw);
                    let row = rows.next().expect("columns has one row per kernel tap");
                    for (oh, out_row) in row.chunks_exact(s.out_width).enumerate() {
                        let Some(ih) = row_span.input(oh, self.params.stride[0]) else {
                            continue;
                        };
                        let in_row = &mut channel[ih * s.in_width..(ih + 1) * s.in_width];
                        let inside = &out_row[col_span.outputs.clone()];
                        let write = &mut in_row[col_span.first_input..];
                        if col_stride == 1 {
                            let write = &mut write[..inside.len()];
                            for (input, &value) in write.iter_mut().zip(inside) {
                                *input += value;
                            }
                        } else {
                            let write = write.iter_mut().step_by(col_stride);
                            for (input, &value) in write.zip(inside) {
                                *input += value;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The outputs along one axis whose tap through one kernel position lands inside the input,
/// as the range `outputs`, and the input index `first_input` that the first of them reads.
/// Outputs before and after the range read the zero padding.
struct Span {
    outputs: Range<usize>,
    first_input: usize,
}

impl Span {
    /// Finds the outputs `o < out_len` with `0 <= o * stride + offset - padding < in_len`,
    /// where `offset` is the kernel position times the dilation.
    fn new(out_len: usize, in_len: usize, stride: usize, padding: usize, offset: usize) -> Span {
        let start = padding.saturating_sub(offset).div_ceil(stride).min(out_len);
        let end = (in_len + padding)
            .checked_sub(offset + 1)
            .map_or(0, |last| (last / stride + 1).min(out_len))
            .max(start);
        // An empty span reads nothing, and its first input would lie past the input's end.
        let first_input = if start < end {
            start * stride + offset - padding
        } else {
            0
        };
        Span {
            outputs: start..end,
            first_input,
        }
    }

    /// Returns the input index that output `o` reads, or `None` in the padding.
    fn input(&self, o: usize, stride: usize) -> Option<usize> {
        self.outputs
            .contains(&o)
            .then(|| self.first_input + (o - self.outputs.start) * stride)
    }

    /// Splits one output row into the parts before, inside and after the span.
    fn split<'a>(&self, row: &'a mut [f32]) -> (&'a mut [f32], &'a mut [f32], &'a mut [f32]) {
        let (before, rest) = row.split_at_mut(self.outputs.start);
        let (inside, after) = rest.split_at_mut(self.outputs.len());
        (before, inside, after)
    }
}

/// Images that one parallel task takes from the batch. The count is fixed, not derived from
/// the number of threads, so that [`backward_weight`] adds its per-task partial sums in the
/// same order on every machine and every run.
const IMAGES_PER_TASK: usize = 4;

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

/// Views `values` as a `[rows, cols]` matrix.
fn matrix(values: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), values).expect("the slice contains rows x cols values")
}

fn matrix_mut(values: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), values).expect("the slice contains rows x cols values")
}

/// Computes `y = conv2d(x, weight) + bias` through im2col and one matrix product per image,
/// with the images split across threads.
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
    let (patch_len, out_pixels) = (geometry.patch_len(), geometry.out_pixels());
    let weight_matrix = to_matrix(FORWARD, weight, shape.out_channels, patch_len)?;
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let out_len = shape.out_channels * out_pixels;

    write_row_major(y, |y| {
        let x_tasks = x.par_chunks(geometry.image_len() * IMAGES_PER_TASK);
        let y_tasks = y.par_chunks_mut(out_len * IMAGES_PER_TASK);
        x_tasks.zip(y_tasks).for_each(|(images, outputs)| {
            let mut columns = vec![0.0; patch_len * out_pixels];
            let images = images.chunks_exact(geometry.image_len());
            for (image, output) in images.zip(outputs.chunks_exact_mut(out_len)) {
                geometry.im2col(image, &mut columns);
                let beta = match bias {
                    Some(bias) => {
                        let planes = output.chunks_exact_mut(out_pixels);
                        for (plane, &b) in planes.zip(bias.iter()) {
                            plane.fill(b);
                        }
                        1.0
                    }
                    None => 0.0,
                };
                general_mat_mul(
                    1.0,
                    &weight_matrix,
                    &matrix(&columns, patch_len, out_pixels),
                    beta,
                    &mut matrix_mut(output, shape.out_channels, out_pixels),
                );
            }
        });
    });
    Ok(())
}

/// Computes `dx` from `dy` and `weight` through one matrix product per image and col2im,
/// with the images split across threads.
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
    let (patch_len, out_pixels) = (geometry.patch_len(), geometry.out_pixels());
    let weight_matrix = to_matrix(BACKWARD_INPUT, weight, shape.out_channels, patch_len)?;
    let dy = dy.as_standard_layout();
    let dy = dy.as_slice().expect("standard layout is contiguous");
    let out_len = shape.out_channels * out_pixels;

    write_row_major(dx, |dx| {
        let dy_tasks = dy.par_chunks(out_len * IMAGES_PER_TASK);
        let dx_tasks = dx.par_chunks_mut(geometry.image_len() * IMAGES_PER_TASK);
        dy_tasks.zip(dx_tasks).for_each(|(grad_outs, grad_ins)| {
            let mut columns = vec![0.0; patch_len * out_pixels];
            let grad_outs = grad_outs.chunks_exact(out_len);
            for (grad_out, grad_in) in
                grad_outs.zip(grad_ins.chunks_exact_mut(geometry.image_len()))
            {
                general_mat_mul(
                    1.0,
                    &weight_matrix.t(),
                    &matrix(grad_out, shape.out_channels, out_pixels),
                    0.0,
                    &mut matrix_mut(&mut columns, patch_len, out_pixels),
                );
                grad_in.fill(0.0);
                geometry.col2im_add(&columns, grad_in);
            }
        });
    });
    Ok(())
}

/// Computes `dweight` from `x` and `dy`, summed over the batch, through im2col and one
/// matrix product per image. Each task of [`IMAGES_PER_TASK`] images sums into its own
/// partial gradient, and the partial gradients are added in batch order, so the result does
/// not depend on the thread schedule.
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
    let (patch_len, out_pixels) = (geometry.patch_len(), geometry.out_pixels());
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let dy = dy.as_standard_layout();
    let dy = dy.as_slice().expect("standard layout is contiguous");
    let out_len = shape.out_channels * out_pixels;

    let x_tasks = x.par_chunks(geometry.image_len() * IMAGES_PER_TASK);
    let dy_tasks = dy.par_chunks(out_len * IMAGES_PER_TASK);
    let partial_sums: Vec<Array2<f32>> = x_tasks
        .zip(dy_tasks)
        .map(|(images, grad_outs)| {
            let mut columns = vec![0.0; patch_len * out_pixels];
            let mut sum = Array2::zeros((shape.out_channels, patch_len));
            let images = images.chunks_exact(geometry.image_len());
            for (image, grad_out) in images.zip(grad_outs.chunks_exact(out_len)) {
                geometry.im2col(image, &mut columns);
                general_mat_mul(
                    1.0,
                    &matrix(grad_out, shape.out_channels, out_pixels),
                    &matrix(&columns, patch_len, out_pixels).t(),
                    1.0,
                    &mut sum,
                );
            }
            sum
        })
        .collect();

    let mut partial_sums = partial_sums.into_iter();
    let mut sum = partial_sums.next().expect("a batch has at least one image");
    for partial in partial_sums {
        sum += &partial;
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
