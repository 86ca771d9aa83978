//! The WGSL shaders, one file per op in `shaders/`, and the entry points wgcnn dispatches.

/// Invocations per workgroup of the one-dimensional kernels. The shaders receive it as the
/// `override` constant `WORKGROUP_SIZE`.
pub const WORKGROUP_SIZE: u32 = 64;

/// A WGSL source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Activation,
    Conv2d,
    Conv2dSubgroup,
    MaxPool2d,
    AvgPool2d,
    Linear,
    LinearSubgroup,
    BiasBackward,
    SoftmaxCrossEntropy,
    MseLoss,
    Sgd,
    Adam,
    BatchNorm2d,
    Dropout,
    SumChunks,
}

impl Shader {
    /// The file's name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Activation => "activation.wgsl",
            Shader::Conv2d => "conv2d.wgsl",
            Shader::Conv2dSubgroup => "conv2d_subgroup.wgsl",
            Shader::MaxPool2d => "max_pool2d.wgsl",
            Shader::AvgPool2d => "avg_pool2d.wgsl",
            Shader::Linear => "linear.wgsl",
            Shader::LinearSubgroup => "linear_subgroup.wgsl",
            Shader::BiasBackward => "bias_backward.wgsl",
            Shader::SoftmaxCrossEntropy => "softmax_cross_entropy.wgsl",
            Shader::MseLoss => "mse_loss.wgsl",
            Shader::Sgd => "sgd.wgsl",
            Shader::Adam => "adam.wgsl",
            Shader::BatchNorm2d => "batch_norm2d.wgsl",
            Shader::Dropout => "dropout.wgsl",
            Shader::SumChunks => "sum_chunks.wgsl",
        }
    }

    /// The WGSL source, compiled into the library.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Activation => include_str!("../../shaders/activation.wgsl"),
            Shader::Conv2d => include_str!("../../shaders/conv2d.wgsl"),
            Shader::Conv2dSubgroup => include_str!("../../shaders/conv2d_subgroup.wgsl"),
            Shader::MaxPool2d => include_str!("../../shaders/max_pool2d.wgsl"),
            Shader::AvgPool2d => include_str!("../../shaders/avg_pool2d.wgsl"),
            Shader::Linear => include_str!("../../shaders/linear.wgsl"),
            Shader::LinearSubgroup => include_str!("../../shaders/linear_subgroup.wgsl"),
            Shader::BiasBackward => include_str!("../../shaders/bias_backward.wgsl"),
            Shader::SoftmaxCrossEntropy => include_str!("../../shaders/softmax_cross_entropy.wgsl"),
            Shader::MseLoss => include_str!("../../shaders/mse_loss.wgsl"),
            Shader::Sgd => include_str!("../../shaders/sgd.wgsl"),
            Shader::Adam => include_str!("../../shaders/adam.wgsl"),
            Shader::BatchNorm2d => include_str!("../../shaders/batch_norm2d.wgsl"),
            Shader::Dropout => include_str!("../../shaders/dropout.wgsl"),
            Shader::SumChunks => include_str!("../../shaders/sum_chunks.wgsl"),
        }
    }
}

/// One entry point of one shader: the unit of pipeline caching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    pub shader: Shader,
    pub entry_point: &'static str,
}

impl Kernel {
    pub const fn new(shader: Shader, entry_point: &'static str) -> Self {
        Self {
            shader,
            entry_point,
        }
    }
}
