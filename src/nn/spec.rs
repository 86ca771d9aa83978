//! Layer descriptions and the shape inference a model runs at construction.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::params::{Activation, Conv2dParams, Pool2dParams};

/// The maximum number of elements of one `f32` tensor, because Rust caps a single allocation
/// at `isize::MAX` bytes. Shape inference rejects larger parameters and per-sample shapes.
pub const MAX_TENSOR_ELEMENTS: usize = isize::MAX as usize / std::mem::size_of::<f32>();

/// Counts the elements of `shape`, returning `None` above [`MAX_TENSOR_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |count, &dimension| count.checked_mul(dimension))
        .filter(|&count| count <= MAX_TENSOR_ELEMENTS)
}

/// One layer of a sequential model, as a user describes it. Shapes below are per sample;
/// the batch axis comes first at run time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// 2-D convolution. Input `[in_channels, h, w]`, output `[out_channels, out_h, out_w]`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        bias: bool,
    },
    /// Max pooling. Input `[c, h, w]`.
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    /// Average pooling that counts padding in the divisor. Input `[c, h, w]`.
    AvgPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    /// `max(x, 0)`.
    Relu,
    /// `x` for positive `x`, else `negative_slope * x`.
    LeakyRelu { negative_slope: f32 },
    /// The logistic function.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Reshapes `[c, h, w]` to `[c * h * w]`.
    Flatten,
    /// `y = x Wᵀ + b`. Input `[in_features]`, output `[out_features]`.
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
    /// Inverted dropout with drop probability `p` in training; the identity in evaluation.
    Dropout { p: f32 },
    /// Per-channel batch normalization with learned scale and shift. Input `[channels, h, w]`.
    BatchNorm2d {
        channels: usize,
        momentum: f32,
        eps: f32,
    },
}

impl LayerSpec {
    /// A convolution with a square `kernel`, stride 1, `padding` on every side, and a bias.
    pub fn conv2d(in_channels: usize, out_channels: usize, kernel: usize, padding: usize) -> Self {
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [padding, padding],
            dilation: [1, 1],
            bias: true,
        }
    }

    /// Max pooling over square windows of `kernel` with stride `kernel`.
    pub fn max_pool2d(kernel: usize) -> Self {
        LayerSpec::MaxPool2d {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
        }
    }

    /// A linear layer with a bias.
    pub fn linear(in_features: usize, out_features: usize) -> Self {
        LayerSpec::Linear {
            in_features,
            out_features,
            bias: true,
        }
    }

    /// Batch normalization with PyTorch's defaults (momentum 0.1, eps 1e-5).
    pub fn batch_norm2d(channels: usize) -> Self {
        LayerSpec::BatchNorm2d {
            channels,
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// The layer's name in errors and profiles, such as `conv2d`.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::Relu => "relu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
        }
    }

    /// The activation function of an element-wise layer.
    pub fn activation(&self) -> Option<Activation> {
        match *self {
            LayerSpec::Relu => Some(Activation::Relu),
            LayerSpec::LeakyRelu { negative_slope } => {
                Some(Activation::LeakyRelu { negative_slope })
            }
            LayerSpec::Sigmoid => Some(Activation::Sigmoid),
            LayerSpec::Tanh => Some(Activation::Tanh),
            _ => None,
        }
    }

    /// Convolution parameters of a [`LayerSpec::Conv2d`].
    pub fn conv2d_params(&self) -> Option<Conv2dParams> {
        match *self {
            LayerSpec::Conv2d {
                stride,
                padding,
                dilation,
                ..
            } => Some(Conv2dParams {
                stride,
                padding,
                dilation,
            }),
            _ => None,
        }
    }

    /// Pooling parameters of a pooling layer.
    pub fn pool2d_params(&self) -> Option<Pool2dParams> {
        match *self {
            LayerSpec::MaxPool2d {
                kernel,
                stride,
                padding,
            }
            | LayerSpec::AvgPool2d {
                kernel,
                stride,
                padding,
            } => Some(Pool2dParams {
                kernel,
                stride,
                padding,
            }),
            _ => None,
        }
    }

    /// Names and per-layer shapes of the learned parameters.
    pub fn parameter_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        match *self {
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                bias,
                ..
            } => {
                let mut shapes = vec![(
                    "weight",
                    vec![out_channels, in_channels, kernel[0], kernel[1]],
                )];
                if bias {
                    shapes.push(("bias", vec![out_channels]));
                }
                shapes
            }
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let mut shapes = vec![("weight", vec![out_features, in_features])];
                if bias {
                    shapes.push(("bias", vec![out_features]));
                }
                shapes
            }
            LayerSpec::BatchNorm2d { channels, .. } => {
                vec![("weight", vec![channels]), ("bias", vec![channels])]
            }
            _ => Vec::new(),
        }
    }

    /// Names and per-layer shapes of every tensor a model keeps for this layer, in the order
    /// of [`crate::nn::Model::named_tensors`]: the learned parameters, then batch norm's
    /// running mean and variance.
    pub fn state_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut shapes = self.parameter_shapes();
        if let LayerSpec::BatchNorm2d { channels, .. } = *self {
            shapes.push(("running_mean", vec![channels]));
            shapes.push(("running_var", vec![channels]));
        }
        shapes
    }

    /// Checks the layer's own settings and returns its per-sample output shape for a
    /// per-sample `input` shape.
    ///
    /// # Errors
    /// A message that names the expected and the actual input shape, or the parameter or
    /// output shape with more than [`MAX_TENSOR_ELEMENTS`] elements. The model adds the
    /// layer's index.
    pub fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let output = self.fitted_output_shape(input)?;
        for (name, shape) in self.parameter_shapes() {
            if element_count(&shape).is_none() {
                return Err(format!(
                    "its {name} of shape {shape:?} has more than {MAX_TENSOR_ELEMENTS} elements"
                ));
            }
        }
        if element_count(&output).is_none() {
            return Err(format!(
                "its output of shape {output:?} per sample has more than {MAX_TENSOR_ELEMENTS} \
                 elements"
            ));
        }
        Ok(output)
    }

    fn fitted_output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let image = |input: &[usize]| -> std::result::Result<[usize; 3], String> {
            match *input {
                [c, h, w] => Ok([c, h, w]),
                _ => Err(format!(
                    "expects an input [channels, height, width], got {input:?}"
                )),
            }
        };
        match self {
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => {
                let [c, h, w] = image(input)?;
                if c != *in_channels {
                    return Err(format!(
                        "expects {in_channels} input channels, got an input {input:?}"
                    ));
                }
                let params = self.conv2d_params().expect("a conv2d layer");
                let shape = params
                    .shape(&[1, c, h, w], &[*out_channels, c, kernel[0], kernel[1]])
                    .map_err(|error| error.to_string())?;
                Ok(vec![*out_channels, shape.out_height, shape.out_width])
            }
            LayerSpec::MaxPool2d { .. } | LayerSpec::AvgPool2d { .. } => {
                let [c, h, w] = image(input)?;
                let params = self.pool2d_params().expect("a pooling layer");
                let [_, c, oh, ow] = params
                    .output_shape(self.kind(), &[1, c, h, w])
                    .map_err(|error| error.to_string())?;
                Ok(vec![c, oh, ow])
            }
            LayerSpec::Relu
            | LayerSpec::LeakyRelu { .. }
            | LayerSpec::Sigmoid
            | LayerSpec::Tanh => Ok(input.to_vec()),
            LayerSpec::Dropout { p } => {
                if !(0.0..1.0).contains(p) {
                    return Err(format!("drop probability {p} must be in [0, 1)"));
                }
                Ok(input.to_vec())
            }
            LayerSpec::Flatten => match element_count(input) {
                Some(features) => Ok(vec![features]),
                None => Err(format!(
                    "cannot flatten {input:?}: it has more than {MAX_TENSOR_ELEMENTS} elements"
                )),
            },
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => match *input {
                _ if *out_features == 0 => Err("out_features must be at least 1".to_string()),
                [features] if features == *in_features => Ok(vec![*out_features]),
                _ => Err(format!(
                    "expects an input [{in_features}], got {input:?} (add a flatten layer before it, or change in_features)"
                )),
            },
            LayerSpec::BatchNorm2d { channels, eps, .. } => {
                let [c, _, _] = image(input)?;
                if c != *channels {
                    return Err(format!(
                        "expects {channels} channels, got an input {input:?}"
                    ));
                }
                if !eps.is_finite() || *eps <= 0.0 {
                    return Err(format!("eps {eps} must be a positive finite number"));
                }
                Ok(input.to_vec())
            }
        }
    }
}

/// Infers the per-sample shape after every layer.
///
/// # Errors
/// [`Error::Shape`] for an input shape that is empty, contains a zero or has more than
/// [`MAX_TENSOR_ELEMENTS`] elements, and naming the first layer that does not fit, its index,
/// and both shapes.
pub fn infer_shapes(input: &[usize], layers: &[LayerSpec]) -> Result<Vec<Vec<usize>>> {
    if input.is_empty() || input.contains(&0) || element_count(input).is_none() {
        return Err(Error::shape(
            "model",
            format!(
                "input shape {input:?} must have at least one dimension, no zero sizes and at \
                 most {MAX_TENSOR_ELEMENTS} elements, such as [1, 28, 28]"
            ),
        ));
    }
    let mut shapes = vec![input.to_vec()];
    for (index, layer) in layers.iter().enumerate() {
        let current = shapes.last().expect("starts non-empty");
        let next = layer.output_shape(current).map_err(|message| {
            Error::shape(
                "model",
                format!(
                    "layer {index} ({}) does not fit its input shape {current:?}: {message}",
                    layer.kind()
                ),
            )
        })?;
        shapes.push(next);
    }
    Ok(shapes)
}
