//! Max and average pooling over 2-D windows of NCHW tensors.

use std::ops::Range;

use ndarray::{Array4, ArrayD, ArrayView4, Dimension, Ix4};
use rayon::prelude::*;

use super::write_row_major;
use crate::error::{Error, Result};
use crate::params::{Pool2dParams, expect_shape};

/// Views a 4-D tensor as [`ArrayView4`].
fn view4<'a>(op: &'static str, tensor: &'a ArrayD<f32>) -> Result<ArrayView4<'a, f32>> {
    tensor.view().into_dimensionality::<Ix4>().map_err(|_| {
        Error::shape(
            op,
            format!("expected a 4-D tensor, got {:?}", tensor.shape()),
        )
    })
}

/// The input positions `(ih, iw)` that the window at output `(oh, ow)` covers, in row-major
/// order, leaving out the padding.
fn window(
    params: &Pool2dParams,
    in_height: usize,
    in_width: usize,
    oh: usize,
    ow: usize,
) -> impl Iterator<Item = (usize, usize)> {
    let [kernel_h, kernel_w] = params.kernel;
    let [stride_h, stride_w] = params.stride;
    let [pad_h, pad_w] = params.padding;
    (0..kernel_h)
        .flat_map(move |kh| (0..kernel_w).map(move |kw| (kh, kw)))
        .filter_map(move |(kh, kw)| {
            let ih = (oh * stride_h + kh).checked_sub(pad_h)?;
            let iw = (ow * stride_w + kw).checked_sub(pad_w)?;
            (ih < in_height && iw < in_width).then_some((ih, iw))
        })
}

/// The first maximum of the window at `(oh, ow)` of one channel, in row-major order.
fn window_argmax(
    x: ArrayView4<'_, f32>,
    [b, c]: [usize; 2],
    params: &Pool2dParams,
    oh: usize,
    ow: usize,
) -> (usize, usize) {
    let (_, _, in_height, in_width) = x.dim();
    let mut best: Option<((usize, usize), f32)> = None;
    for (ih, iw) in window(params, in_height, in_width, oh, ow) {
        let value = x[[b, c, ih, iw]];
        if best.is_none_or(|(_, max)| value > max) {
            best = Some(((ih, iw), value));
        }
    }
    // A padding of at most half the window leaves at least one input position in each window.
    best.expect("every window covers an input position").0
}

/// Channel planes that one parallel task takes.
const PLANES_PER_TASK: usize = 8;

/// The windows of a pooling over planes of `in_height x in_width` values in row-major order.
struct PlaneWindows {
    in_height: usize,
    in_width: usize,
    out_height: usize,
    out_width: usize,
    /// The input rows that each output row's windows cover, leaving out the padding.
    row_spans: Vec<Range<usize>>,
    /// The input columns that each output column's windows cover, leaving out the padding.
    col_spans: Vec<Range<usize>>,
}

impl PlaneWindows {
    /// Returns the pooling windows for an `[n, c, h, w]` input and its output shape.
    fn new(params: &Pool2dParams, input: &[usize], output: [usize; 4]) -> PlaneWindows {
        let [in_height, in_width] = [input[2], input[3]];
        let [out_height, out_width] = [output[2], output[3]];
        let [kernel_h, kernel_w] = params.kernel;
        let [stride_h, stride_w] = params.stride;
        let [pad_h, pad_w] = params.padding;
        PlaneWindows {
            in_height,
            in_width,
            out_height,
            out_width,
            row_spans: (0..out_height)
                .map(|oh| Self::span(oh, kernel_h, stride_h, pad_h, in_height))
                .collect(),
            col_spans: (0..out_width)
                .map(|ow| Self::span(ow, kernel_w, stride_w, pad_w, in_width))
                .collect(),
        }
    }

    fn in_plane(&self) -> usize {
        self.in_height * self.in_width
    }

    fn out_plane(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Returns the input indices along one axis that window `o` covers, leaving out the
    /// padding.
    fn span(o: usize, kernel: usize, stride: usize, padding: usize, len: usize) -> Range<usize> {
        let start = (o * stride).saturating_sub(padding);
        let end = (o * stride + kernel).saturating_sub(padding).min(len);
        start..end
    }

    /// Returns the plane index of the first maximum of window `(oh, ow)`, in row-major order.
    fn argmax(&self, plane: &[f32], oh: usize, ow: usize) -> usize {
        let rows = self.row_spans[oh].clone();
        let cols = self.col_spans[ow].clone();
        // A padding of at most half the window leaves at least one input position in each
        // window, so the first position of the spans is inside the plane.
        let mut best = rows.start * self.in_width + cols.start;
        let mut max = plane[best];
        for ih in rows {
            let row_start = ih * self.in_width + cols.start;
            let row = &plane[row_start..row_start + cols.len()];
            for (offset, &value) in row.iter().enumerate() {
                if value > max {
                    max = value;
                    best = row_start + offset;
                }
            }
        }
        best
    }
}

/// Computes `y[b, c, oh, ow]`, the maximum of `x` over the window at `(oh, ow)`, with the
/// channel planes split across threads.
///
/// # Shapes
/// `x`: `[n, c, h, w]`; `y`: `[n, c, out_h, out_w]`.
///
/// # Errors
/// [`Error::Shape`] when `x` is not 4-D, `params` do not fit it (see
/// [`Pool2dParams::output_shape`]) or `y` has another shape.
pub fn max_forward(x: &ArrayD<f32>, params: &Pool2dParams, y: &mut ArrayD<f32>) -> Result<()> {
    const OP: &str = "max_pool2d";
    let out_shape = params.output_shape(OP, x.shape())?;
    expect_shape(OP, "y", y.shape(), &out_shape)?;
    let windows = PlaneWindows::new(params, x.shape(), out_shape);
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");

    write_row_major(y, |y| {
        let x_tasks = x.par_chunks(windows.in_plane() * PLANES_PER_TASK);
        let y_tasks = y.par_chunks_mut(windows.out_plane() * PLANES_PER_TASK);
        x_tasks.zip(y_tasks).for_each(|(x_planes, y_planes)| {
            let x_planes = x_planes.chunks_exact(windows.in_plane());
            for (x_plane, y_plane) in x_planes.zip(y_planes.chunks_exact_mut(windows.out_plane())) {
                for (oh, y_row) in y_plane.chunks_exact_mut(windows.out_width).enumerate() {
                    for (ow, y) in y_row.iter_mut().enumerate() {
                        *y = x_plane[windows.argmax(x_plane, oh, ow)];
                    }
                }
            }
        });
    });
    Ok(())
}

/// Computes `dx`: each window's `dy` goes to the window's first maximum in `x`, and
/// overlapping windows add. The channel planes are split across threads.
///
/// # Shapes
/// `x` and `dx`: `[n, c, h, w]`; `dy`: `[n, c, out_h, out_w]`.
///
/// # Errors
/// [`Error::Shape`] when `x` is not 4-D, `params` do not fit it, or `dy` or `dx` has another
/// shape.
pub fn max_backward(
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Pool2dParams,
    dx: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "max_pool2d backward";
    let out_shape = params.output_shape(OP, x.shape())?;
    expect_shape(OP, "dy", dy.shape(), &out_shape)?;
    expect_shape(OP, "dx", dx.shape(), x.shape())?;
    let windows = PlaneWindows::new(params, x.shape(), out_shape);
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let dy = dy.as_standard_layout();
    let dy = dy.as_slice().expect("standard layout is contiguous");

    write_row_major(dx, |dx| {
        let (in_task, out_task) = (
            windows.in_plane() * PLANES_PER_TASK,
            windows.out_plane() * PLANES_PER_TASK,
        );
        let tasks = x
            .par_chunks(in_task)
            .zip(dy.par_chunks(out_task))
            .zip(dx.par_chunks_mut(in_task));
        tasks.for_each(|((x_planes, dy_planes), dx_planes)| {
            let planes = x_planes
                .chunks_exact(windows.in_plane())
                .zip(dy_planes.chunks_exact(windows.out_plane()))
                .zip(dx_planes.chunks_exact_mut(windows.in_plane()));
            for ((x_plane, dy_plane), dx_plane) in planes {
                dx_plane.fill(0.0);
                for (oh, dy_row) in dy_plane.chunks_exact(windows.out_width).enumerate() {
                    for (ow, &grad) in dy_row.iter().enumerate() {
                        dx_plane[windows.argmax(x_plane, oh, ow)] += grad;
                    }
                }
            }
        });
    });
    Ok(())
}

/// Computes [`max_forward`] with indexing loops over the definition: `y[b, c, oh, ow]` is
/// the maximum of `x` over the window at `(oh, ow)`.
///
/// # Errors
/// [`Error::Shape`] as [`max_forward`].
pub fn max_forward_reference(
    x: &ArrayD<f32>,
    params: &Pool2dParams,
    y: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "max_pool2d";
    let out_shape = params.output_shape(OP, x.shape())?;
    expect_shape(OP, "y", y.shape(), &out_shape)?;
    let x = view4(OP, x)?;

    let pooled = Array4::from_shape_fn(out_shape, |(b, c, oh, ow)| {
        let (ih, iw) = window_argmax(x, [b, c], params, oh, ow);
        x[[b, c, ih, iw]]
    });
    y.assign(&pooled.into_dyn());
    Ok(())
}

/// Computes [`max_backward`] with indexing loops over the definition: `dx` receives each
/// window's `dy` at the window's first maximum, and overlapping windows add.
///
/// # Errors
/// [`Error::Shape`] as [`max_backward`].
pub fn max_backward_reference(
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Pool2dParams,
    dx: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "max_pool2d backward";
    let out_shape = params.output_shape(OP, x.shape())?;
    expect_shape(OP, "dy", dy.shape(), &out_shape)?;
    expect_shape(OP, "dx", dx.shape(), x.shape())?;
    let x = view4(OP, x)?;
    let dy = view4(OP, dy)?;

    let mut grad = Array4::<f32>::zeros(x.raw_dim());
    for ((b, c, oh, ow), &g) in dy.indexed_iter() {
        let (ih, iw) = window_argmax(x, [b, c], params, oh, ow);
        grad[[b, c, ih, iw]] += g;
    }
    dx.assign(&grad.into_dyn());
    Ok(())
}

/// `y[b, c, oh, ow]` is the sum of `x` over the window at `(oh, ow)` divided by the window
/// size `kernel_h * kernel_w`, padding included.
pub fn avg_forward(x: &ArrayD<f32>, params: &Pool2dParams, y: &mut ArrayD<f32>) -> Result<()> {
    const OP: &str = "avg_pool2d";
    let out_shape = params.output_shape(OP, x.shape())?;
    expect_shape(OP, "y", y.shape(), &out_shape)?;
    let x = view4(OP, x)?;
    let (_, _, in_height, in_width) = x.dim();

    let divisor = (params.kernel[0] * params.kernel[1]) as f32;
    let pooled = Array4::from_shape_fn(out_shape, |(b, c, oh, ow)| {
        let sum: f32 = window(params, in_height, in_width, oh, ow)
            .map(|(ih, iw)| x[[b, c, ih, iw]])
            .sum();
        sum / divisor
    });
    y.assign(&pooled.into_dyn());
    Ok(())
}

/// `dx` receives `dy / (kernel_h * kernel_w)` at every input position of each window;
/// overlapping windows add.
pub fn avg_backward(dy: &ArrayD<f32>, params: &Pool2dParams, dx: &mut ArrayD<f32>) -> Result<()> {
    const OP: &str = "avg_pool2d backward";
    let out_shape = params.output_shape(OP, dx.shape())?;
    expect_shape(OP, "dy", dy.shape(), &out_shape)?;
    let dy = view4(OP, dy)?;
    let grad_shape = view4(OP, dx)?.raw_dim();
    let (_, _, in_height, in_width) = grad_shape.into_pattern();

    let divisor = (params.kernel[0] * params.kernel[1]) as f32;
    let mut grad = Array4::<f32>::zeros(grad_shape);
    for ((b, c, oh, ow), &g) in dy.indexed_iter() {
        for (ih, iw) in window(params, in_height, in_width, oh, ow) {
            grad[[b, c, ih, iw]] += g / divisor;
        }
    }
    dx.assign(&grad.into_dyn());
    Ok(())
}
