//! Ready-made architectures for 10-class image classification.

use crate::nn::LayerSpec;

/// The LeNet-style default model for `[in_channels, h, w]` images with `h` and `w` divisible
/// by 4: conv 5x5 → 16 (padding 2), ReLU, max-pool 2, conv 5x5 16 → 32 (padding 2), ReLU,
/// max-pool 2, linear → 128, ReLU, linear → `classes`. For 1x28x28 inputs it has 215,370
/// parameters and the flattened features number 1568.
pub fn lenet(in_channels: usize, height: usize, width: usize, classes: usize) -> Vec<LayerSpec> {
    let features = 32 * (height / 4) * (width / 4);
    vec![
        LayerSpec::conv2d(in_channels, 16, 5, 2),
        LayerSpec::Relu,
        LayerSpec::max_pool2d(2),
        LayerSpec::conv2d(16, 32, 5, 2),
        LayerSpec::Relu,
        LayerSpec::max_pool2d(2),
        LayerSpec::Flatten,
        LayerSpec::linear(features, 128),
        LayerSpec::Relu,
        LayerSpec::linear(128, classes),
    ]
}

/// A larger model with batch normalization and dropout: two blocks of conv 5x5 (padding 2),
/// batch norm, ReLU and max-pool 2 with 32 and 64 channels, then dropout 0.1, linear → 256,
/// ReLU, dropout 0.25, linear → `classes`. The dropout rates are lower than the classic 0.25
/// and 0.5 because with those a run of a few epochs stays under-fitted on Fashion-MNIST.
pub fn lenet_bn(in_channels: usize, height: usize, width: usize, classes: usize) -> Vec<LayerSpec> {
    let features = 64 * (height / 4) * (width / 4);
    vec![
        LayerSpec::conv2d(in_channels, 32, 5, 2),
        LayerSpec::batch_norm2d(32),
        LayerSpec::Relu,
        LayerSpec::max_pool2d(2),
        LayerSpec::conv2d(32, 64, 5, 2),
        LayerSpec::batch_norm2d(64),
        LayerSpec::Relu,
        LayerSpec::max_pool2d(2),
        LayerSpec::Flatten,
        LayerSpec::Dropout { p: 0.1 },
        LayerSpec::linear(features, 256),
        LayerSpec::Relu,
        LayerSpec::Dropout { p: 0.25 },
        LayerSpec::linear(256, classes),
    ]
}
