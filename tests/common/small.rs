//! A small model and data set that every kind of layer test shares.

use ndarray::Ix4;
use rand::Rng;
use wgcnn::data::Dataset;
use wgcnn::nn::LayerSpec;

use super::random;

/// A small model with every kind of layer that has parameters, and a max pooling, two
/// activations and a flatten between them.
pub fn small_specs() -> Vec<LayerSpec> {
    small_specs_with(
        LayerSpec::max_pool2d(2),
        LayerSpec::LeakyRelu {
            negative_slope: 0.1,
        },
    )
}

/// The small model with another pooling and second activation.
pub fn small_specs_with(pool: LayerSpec, activation: LayerSpec) -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv2d {
            in_channels: 2,
            out_channels: 3,
            kernel: [3, 2],
            stride: [1, 2],
            padding: [1, 1],
            dilation: [1, 1],
            bias: true,
        },
        // Batch norm after the activation: right after the convolution it would cancel the
        // convolution's bias, whose gradient would then be rounding noise.
        LayerSpec::Tanh,
        LayerSpec::batch_norm2d(3),
        pool,
        LayerSpec::Flatten,
        LayerSpec::linear(3 * 3 * 2, 5),
        activation,
        LayerSpec::linear(5, 4),
    ]
}

/// Random images `[n, 2, 7, 7]` with labels below 4.
pub fn small_data(rng: &mut impl Rng, n: usize) -> Dataset {
    let images = random(rng, &[n, 2, 7, 7])
        .into_dimensionality::<Ix4>()
        .unwrap();
    let labels = (0..n).map(|_| rng.random_range(0..4)).collect();
    Dataset::new(images, labels, 4).unwrap()
}
