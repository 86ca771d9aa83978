//! Operation parameters and the output-size arithmetic they own.
//!
//! Every image tensor is NCHW `f32`: `[n, c, h, w]`, row-major. A convolution weight is
//! `[out_channels, in_channels, kernel_h, kernel_w]` and a linear weight is
//! `[out_features, in_features]`, as in PyTorch.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Output length of a sliding window along one axis, or `None` when the dilated kernel does
/// not fit in the padded input or a size overflows `usize`.
fn window_output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation
        .checked_mul(kernel.checked_sub(1)?)?
        .checked_add(1)?;
    let padded = input.checked_add(padding.checked_mul(2)?)?;
    let room = padded.checked_sub(span)?;
    Some(room / stride + 1)
}

/// Reads `[n, c, h, w]` from a shape, or fails naming `op`.
pub fn nchw(op: &'static str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        &[n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::shape(
            op,
            format!("{what} must be 4-D [n, c, h, w], got {shape:?}"),
        )),
    }
}

/// Fails unless `actual == expected`, naming the tensor.
pub fn expect_shape(
    op: &'static str,
    what: &str,
    actual: &[usize],
    expected: &[usize],
) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{what} must have shape {expected:?}, got {actual:?}"),
        ))
    }
}

/// Stride, zero padding and dilation of a 2-D convolution, each as `[along h, along w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between windows. Default `[1, 1]`.
    pub stride: [usize; 2],
    /// Zeros added on each side. Default `[0, 0]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps. Default `[1, 1]`.
    pub dilation: [usize; 2],
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }
}

/// The sizes of one convolution, checked against each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch_size: usize,
    pub in_channels: usize,
    pub in_height: usize,
    pub in_width: usize,
    pub out_channels: usize,
    pub kernel_height: usize,
    pub kernel_width: usize,
    pub out_height: usize,
    pub out_width: usize,
}

impl Conv2dShape {
    /// Input shape `[n, in_channels, h, w]`.
    pub fn input(&self) -> [usize; 4] {
        [
            self.batch_size,
            self.in_channels,
            self.in_height,
            self.in_width,
        ]
    }

    /// Weight shape `[out_channels, in_channels, kernel_h, kernel_w]`.
    pub fn weight(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel_height,
            self.kernel_width,
        ]
    }

    /// Output shape `[n, out_channels, out_h, out_w]`.
    pub fn output(&self) -> [usize; 4] {
        [
            self.batch_size,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }
}

impl Conv2dParams {
    /// Checks the parameters and the input and weight shapes, and returns every size of the
    /// convolution.
    ///
    /// # Errors
    /// [`Error::Shape`] when a shape is not 4-D, the channel counts differ, a stride or
    /// dilation is zero, or the dilated kernel is larger than the padded input.
    pub fn shape(&self, input: &[usize], weight: &[usize]) -> Result<Conv2dShape> {
        const OP: &str = "conv2d";
        let [n, in_channels, h, w] = nchw(OP, "input", input)?;
        let [out_channels, weight_in, kh, kw] = nchw(OP, "weight", weight)?;
        if weight_in != in_channels {
            return Err(Error::shape(
                OP,
                format!(
                    "weight {weight:?} expects {weight_in} input channels, but the input {input:?} has {in_channels}"
                ),
            ));
        }
        if self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::shape(
                OP,
                format!(
                    "stride {:?} and dilation {:?} must be at least 1",
                    self.stride, self.dilation
                ),
            ));
        }
        if [n, in_channels, h, w, out_channels, kh, kw].contains(&0) {
            return Err(Error::shape(
                OP,
                format!("sizes must be non-zero, got input {input:?} and weight {weight:?}"),
            ));
        }
        let out_h = window_output_len(h, kh, self.stride[0], self.padding[0], self.dilation[0]);
        let out_w = window_output_len(w, kw, self.stride[1], self.padding[1], self.dilation[1]);
        let (Some(out_height), Some(out_width)) = (out_h, out_w) else {
            return Err(Error::shape(
                OP,
                format!(
                    "kernel {kh}x{kw} with dilation {:?} is larger than the input {h}x{w} with padding {:?}",
                    self.dilation, self.padding
                ),
            ));
        };
        Ok(Conv2dShape {
            batch_size: n,
            in_channels,
            in_height: h,
            in_width: w,
            out_channels,
            kernel_height: kh,
            kernel_width: kw,
            out_height,
            out_width,
        })
    }
}

/// Window, stride and zero padding of a 2-D pooling, each as `[along h, along w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows; PyTorch's default is the window size.
    pub stride: [usize; 2],
    /// Padding on each side; at most half the window, as PyTorch requires.
    pub padding: [usize; 2],
}

impl Pool2dParams {
    /// A window of `kernel` with stride `kernel` and no padding.
    pub fn square(kernel: usize) -> Self {
        Self {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
        }
    }

    /// Checks the parameters against an input `[n, c, h, w]` and returns the output shape.
    ///
    /// # Errors
    /// [`Error::Shape`] when the input is not 4-D, a window or stride is zero, the padding is
    /// more than half the window, or the window is larger than the padded input.
    pub fn output_shape(&self, op: &'static str, input: &[usize]) -> Result<[usize; 4]> {
        let [n, c, h, w] = nchw(op, "input", input)?;
        if self.kernel.contains(&0) || self.stride.contains(&0) {
            return Err(Error::shape(
                op,
                format!(
                    "kernel {:?} and stride {:?} must be at least 1",
                    self.kernel, self.stride
                ),
            ));
        }
        // Comparing `padding > kernel / 2` is `2 * padding > kernel` without an overflow.
        if self.padding[0] > self.kernel[0] / 2 || self.padding[1] > self.kernel[1] / 2 {
            return Err(Error::shape(
                op,
                format!(
                    "padding {:?} must be at most half the kernel {:?}",
                    self.padding, self.kernel
                ),
            ));
        }
        if [n, c, h, w].contains(&0) {
            return Err(Error::shape(
                op,
                format!("input sizes must be non-zero, got {input:?}"),
            ));
        }
        let out_h = window_output_len(h, self.kernel[0], self.stride[0], self.padding[0], 1);
        let out_w = window_output_len(w, self.kernel[1], self.stride[1], self.padding[1], 1);
        match (out_h, out_w) {
            (Some(oh), Some(ow)) => Ok([n, c, oh, ow]),
            _ => Err(Error::shape(
                op,
                format!(
                    "kernel {:?} is larger than the input {h}x{w} with padding {:?}",
                    self.kernel, self.padding
                ),
            )),
        }
    }
}

/// Element-wise activation functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`; the gradient at exactly 0 is 0, as in PyTorch.
    Relu,
    /// `x` for `x > 0`, else `negative_slope * x`.
    LeakyRelu { negative_slope: f32 },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// A small integer that selects the function in the activation shader.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Relu => 0,
            Activation::LeakyRelu { .. } => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
        }
    }

    /// The negative slope, or 0 for functions without one.
    pub(crate) fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu { negative_slope } => negative_slope,
            _ => 0.0,
        }
    }
}

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Momentum factor. Default 0.
    pub momentum: f32,
    /// Dampening of the momentum. Default 0.
    pub dampening: f32,
    /// L2 penalty added to the gradient. Default 0.
    pub weight_decay: f32,
    /// Nesterov momentum. Default false.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// Adam and AdamW with PyTorch's `torch.optim.Adam` / `AdamW` semantics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Decay of the first moment. Default 0.9.
    pub beta1: f32,
    /// Decay of the second moment. Default 0.999.
    pub beta2: f32,
    /// Term added to the denominator. Default 1e-8.
    pub eps: f32,
    /// Weight decay: added to the gradient (Adam) or applied to the weights (AdamW).
    /// Default 0 for Adam; PyTorch's AdamW default is 0.01.
    pub weight_decay: f32,
    /// Decoupled weight decay (AdamW). Default false.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

/// Whether dropout keeps element `index` for `seed` with drop probability `p`.
///
/// The hash is PCG's output permutation applied twice (O'Neill, "PCG: A Family of Simple Fast
/// Space-Efficient Statistically Good Algorithms for Random Number Generation", 2014), and
/// `shaders/dropout.wgsl` computes the same in `u32` arithmetic, so both paths draw one mask.
pub fn dropout_keeps(seed: u32, index: u32, p: f32) -> bool {
    let hashed = pcg_hash(pcg_hash(index) ^ seed);
    // The top 24 bits as a uniform float in [0, 1).
    let uniform = (hashed >> 8) as f32 / 16_777_216.0;
    uniform >= p
}

/// One round of the PCG-RXS-M-XS permutation on 32 bits.
pub fn pcg_hash(input: u32) -> u32 {
    let state = input.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}
