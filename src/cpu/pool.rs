//! Max and average pooling over 2-D windows of NCHW tensors.

use ndarray::{Array4, ArrayD, ArrayView4, Dimension, Ix4};

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

/// `y[b, c, oh, ow]` is the maximum of `x` over the window at `(oh, ow)`.
pub fn max_forward(x: &ArrayD<f32>, params: &Pool2dParams, y: &mut ArrayD<f32>) -> Result<()> {
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

/// `dx` receives each window's `dy` at the window's first maximum; overlapping windows add.
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
