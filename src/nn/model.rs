//! A sequential model: parameters on one backend, and the forward and backward passes.

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::spec::{LayerSpec, infer_shapes};
use super::workspace::Workspace;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::pcg_hash;

/// A learned tensor and its gradient.
#[derive(Debug)]
pub struct Param<B: Backend> {
    /// `weight` or `bias`.
    pub name: &'static str,
    pub value: B::Tensor,
    /// Overwritten by every backward pass, never accumulated.
    pub grad: B::Tensor,
}

/// One layer with its parameters and state.
#[derive(Debug)]
pub struct Layer<B: Backend> {
    pub spec: LayerSpec,
    /// Per-sample input shape.
    pub input_shape: Vec<usize>,
    /// Per-sample output shape.
    pub output_shape: Vec<usize>,
    pub params: Vec<Param<B>>,
    /// Batch norm's running mean and variance, updated in training mode.
    pub running: Vec<(&'static str, B::Tensor)>,
}

/// Whether a forward pass trains (batch statistics, dropout) or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A sequential model whose shapes were checked at construction.
#[derive(Debug)]
pub struct Model<B: Backend> {
    pub layers: Vec<Layer<B>>,
    input_shape: Vec<usize>,
    seed: u64,
}

/// Draws `len` values uniform in `[-bound, bound)`.
fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], bound: f32) -> ArrayD<f32> {
    let len = shape.iter().product();
    let values = (0..len).map(|_| rng.random_range(-bound..bound)).collect();
    ArrayD::from_shape_vec(IxDyn(shape), values).expect("length matches shape")
}

/// Draws initial values as PyTorch's defaults do. Weights are Kaiming-uniform with
/// `a = sqrt(5)`, which gives the bound `1 / sqrt(fan_in)`, and biases are uniform with the
/// same bound. Batch norm starts with scale 1 and shift 0.
fn initial_values(spec: &LayerSpec, rng: &mut ChaCha8Rng) -> Vec<(&'static str, ArrayD<f32>)> {
    let shapes = spec.parameter_shapes();
    if let LayerSpec::BatchNorm2d { channels, .. } = spec {
        return vec![
            ("weight", ArrayD::ones(IxDyn(&[*channels]))),
            ("bias", ArrayD::zeros(IxDyn(&[*channels]))),
        ];
    }
    let Some((_, weight_shape)) = shapes.first() else {
        return Vec::new();
    };
    let fan_in: usize = weight_shape[1..].iter().product();
    let bound = 1.0 / (fan_in as f32).sqrt();
    shapes
        .iter()
        .map(|(name, shape)| (*name, uniform(rng, shape, bound)))
        .collect()
}

impl<B: Backend> Model<B> {
    /// Builds a model for per-sample inputs of `input_shape` (such as `[1, 28, 28]`), with
    /// parameters initialized from `seed` on the host, so both backends start from the same
    /// values.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the first layer that does not fit, its index and both shapes.
    pub fn new(backend: &B, input_shape: &[usize], specs: &[LayerSpec], seed: u64) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::shape("model", "a model needs at least one layer"));
        }
        let shapes = infer_shapes(input_shape, specs)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let mut params = Vec::new();
            for (name, value) in initial_values(spec, &mut rng) {
                let label = format!("layer {index} {name}");
                params.push(Param {
                    name,
                    value: backend.tensor(&label, value.view())?,
                    grad: backend.zeros(&format!("{label} gradient"), value.shape())?,
                });
            }
            let mut running = Vec::new();
            if let LayerSpec::BatchNorm2d { channels, .. } = spec {
                running.push((
                    "running_mean",
                    backend.zeros(&format!("layer {index} running_mean"), &[*channels])?,
                ));
                running.push((
                    "running_var",
                    backend.full(&format!("layer {index} running_var"), &[*channels], 1.0)?,
                ));
            }
            layers.push(Layer {
                spec: spec.clone(),
                input_shape: shapes[index].clone(),
                output_shape: shapes[index + 1].clone(),
                params,
                running,
            });
        }
        Ok(Self {
            layers,
            input_shape: input_shape.to_vec(),
            seed,
        })
    }

    /// Per-sample input shape, such as `[1, 28, 28]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Per-sample output shape, such as `[10]`.
    pub fn output_shape(&self) -> &[usize] {
        &self.layers.last().expect("at least one layer").output_shape
    }

    /// The layer descriptions.
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(|l| l.spec.clone()).collect()
    }

    /// The number of learned values.
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.spec.parameter_shapes())
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }

    /// Every learned tensor and running statistic with a name such as `3.weight`, in layer
    /// order.
    pub fn named_tensors(&self) -> Vec<(String, &B::Tensor)> {
        let mut named = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            for param in &layer.params {
                named.push((format!("{index}.{}", param.name), &param.value));
            }
            for (name, tensor) in &layer.running {
                named.push((format!("{index}.{name}"), tensor));
            }
        }
        named
    }

    /// The same, mutable, for loading a checkpoint.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut B::Tensor)> {
        let mut named = Vec::new();
        for (index, layer) in self.layers.iter_mut().enumerate() {
            for param in &mut layer.params {
                named.push((format!("{index}.{}", param.name), &mut param.value));
            }
            for (name, tensor) in &mut layer.running {
                named.push((format!("{index}.{name}"), tensor));
            }
        }
        named
    }

    /// A dropout seed for one layer and step, derived from the model's seed.
    fn dropout_seed(&self, layer: usize, step: u64) -> u32 {
        let low = pcg_hash(self.seed as u32 ^ pcg_hash(layer as u32));
        let high = pcg_hash((self.seed >> 32) as u32 ^ low);
        pcg_hash(high ^ step as u32) ^ pcg_hash((step >> 32) as u32)
    }

    /// Runs every layer on `workspace.activations[0]`, leaving each layer's output in the
    /// workspace. `step` varies the dropout masks between training steps.
    pub fn forward(
        &mut self,
        backend: &B,
        workspace: &mut Workspace<B>,
        mode: Mode,
        step: u64,
    ) -> Result<()> {
        for index in 0..self.layers.len() {
            self.forward_layer(backend, workspace, index, mode, step)?;
        }
        Ok(())
    }

    /// Runs layer `index` alone, from its input activation to its output.
    pub fn forward_layer(
        &mut self,
        backend: &B,
        workspace: &mut Workspace<B>,
        index: usize,
        mode: Mode,
        step: u64,
    ) -> Result<()> {
        let seed = self.dropout_seed(index, step);
        let layer = &mut self.layers[index];
        let (before, after) = workspace.activations.split_at_mut(index + 1);
        let saved = &mut workspace.saved[index];
        forward_layer(
            backend,
            layer,
            &before[index],
            &mut after[0],
            saved,
            mode,
            seed,
        )
    }

    /// Back-propagates `workspace.gradients[last]` (set by the loss) through every layer,
    /// overwriting each parameter's gradient. The input's gradient is not computed.
    pub fn backward(&mut self, backend: &B, workspace: &mut Workspace<B>, step: u64) -> Result<()> {
        for index in (0..self.layers.len()).rev() {
            self.backward_layer(backend, workspace, index, step)?;
        }
        Ok(())
    }

    /// Back-propagates through layer `index` alone, from the gradient of its output.
    pub fn backward_layer(
        &mut self,
        backend: &B,
        workspace: &mut Workspace<B>,
        index: usize,
        step: u64,
    ) -> Result<()> {
        let seed = self.dropout_seed(index, step);
        let layer = &mut self.layers[index];
        let (before, after) = workspace.gradients.split_at_mut(index + 1);
        // The input batch needs no gradient, except where batch norm computes it anyway.
        let dx = &mut before[index];
        let needs_dx = index > 0;
        let x = &workspace.activations[index];
        let y = &workspace.activations[index + 1];
        let saved = &workspace.saved[index];
        backward_layer(backend, layer, x, y, &after[0], dx, needs_dx, saved, seed)
    }
}

fn forward_layer<B: Backend>(
    backend: &B,
    layer: &mut Layer<B>,
    x: &B::Tensor,
    y: &mut B::Tensor,
    saved: &mut [B::Tensor],
    mode: Mode,
    seed: u32,
) -> Result<()> {
    let spec = &layer.spec;
    let bias = layer.params.get(1).map(|p| &p.value);
    match spec {
        LayerSpec::Conv2d { .. } => {
            let params = spec.conv2d_params().expect("a conv2d layer");
            backend.conv2d_forward(x, &layer.params[0].value, bias, &params, y)
        }
        LayerSpec::MaxPool2d { .. } => {
            let params = spec.pool2d_params().expect("a pooling layer");
            backend.max_pool2d_forward(x, &params, y)
        }
        LayerSpec::AvgPool2d { .. } => {
            let params = spec.pool2d_params().expect("a pooling layer");
            backend.avg_pool2d_forward(x, &params, y)
        }
        LayerSpec::Relu | LayerSpec::LeakyRelu { .. } | LayerSpec::Sigmoid | LayerSpec::Tanh => {
            let activation = spec.activation().expect("an activation layer");
            backend.activation_forward(activation, x, y)
        }
        LayerSpec::Flatten => {
            let shape = backend.shape(y).to_vec();
            *y = backend.reshape(x, &shape)?;
            Ok(())
        }
        LayerSpec::Linear { .. } => backend.linear_forward(x, &layer.params[0].value, bias, y),
        LayerSpec::Dropout { p } => {
            // Evaluation copies through with p = 0, so `y` never aliases `x`.
            let p = if mode == Mode::Train { *p } else { 0.0 };
            backend.dropout_forward(x, p, seed, y)
        }
        LayerSpec::BatchNorm2d { momentum, eps, .. } => {
            let (gamma, beta) = (&layer.params[0].value, &layer.params[1].value);
            let [(_, running_mean), (_, running_var)] = &mut layer.running[..] else {
                unreachable!("batch norm layers have two running statistics")
            };
            match mode {
                Mode::Train => {
                    let [saved_mean, saved_inv_std] = saved else {
                        unreachable!("the workspace holds two saved tensors for batch norm")
                    };
                    backend.batch_norm2d_forward_train(
                        x,
                        gamma,
                        beta,
                        running_mean,
                        running_var,
                        *momentum,
                        *eps,
                        y,
                        saved_mean,
                        saved_inv_std,
                    )
                }
                Mode::Eval => backend.batch_norm2d_forward_eval(
                    x,
                    gamma,
                    beta,
                    running_mean,
                    running_var,
                    *eps,
                    y,
                ),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_layer<B: Backend>(
    backend: &B,
    layer: &mut Layer<B>,
    x: &B::Tensor,
    y: &B::Tensor,
    dy: &B::Tensor,
    dx: &mut B::Tensor,
    needs_dx: bool,
    saved: &[B::Tensor],
    seed: u32,
) -> Result<()> {
    let spec = layer.spec.clone();
    match &spec {
        LayerSpec::Conv2d { .. } => {
            let params = spec.conv2d_params().expect("a conv2d layer");
            let (weight, rest) = layer.params.split_at_mut(1);
            backend.conv2d_backward_weight(x, dy, &params, &mut weight[0].grad)?;
            if let Some(bias) = rest.first_mut() {
                backend.bias_backward(dy, &mut bias.grad)?;
            }
            if needs_dx {
                backend.conv2d_backward_input(dy, &weight[0].value, &params, dx)?;
            }
            Ok(())
        }
        LayerSpec::Linear { .. } => {
            let (weight, rest) = layer.params.split_at_mut(1);
            backend.linear_backward_weight(x, dy, &mut weight[0].grad)?;
            if let Some(bias) = rest.first_mut() {
                backend.bias_backward(dy, &mut bias.grad)?;
            }
            if needs_dx {
                backend.linear_backward_input(dy, &weight[0].value, dx)?;
            }
            Ok(())
        }
        LayerSpec::BatchNorm2d { .. } => {
            let [saved_mean, saved_inv_std] = saved else {
                unreachable!("the workspace holds two saved tensors for batch norm")
            };
            let [gamma, beta] = &mut layer.params[..] else {
                unreachable!("batch norm layers have two parameters")
            };
            backend.batch_norm2d_backward(
                x,
                dy,
                &gamma.value,
                saved_mean,
                saved_inv_std,
                dx,
                &mut gamma.grad,
                &mut beta.grad,
            )
        }
        _ => {
            if !needs_dx {
                // A first layer without parameters needs no gradient at all.
                return Ok(());
            }
            match &spec {
                LayerSpec::MaxPool2d { .. } => {
                    let params = spec.pool2d_params().expect("a pooling layer");
                    backend.max_pool2d_backward(x, dy, &params, dx)
                }
                LayerSpec::AvgPool2d { .. } => {
                    let params = spec.pool2d_params().expect("a pooling layer");
                    backend.avg_pool2d_backward(dy, &params, dx)
                }
                LayerSpec::Flatten => {
                    let shape = backend.shape(x).to_vec();
                    *dx = backend.reshape(dy, &shape)?;
                    Ok(())
                }
                LayerSpec::Dropout { p } => backend.dropout_backward(dy, *p, seed, dx),
                _ => {
                    let activation = spec.activation().expect("an activation layer");
                    backend.activation_backward(activation, x, y, dy, dx)
                }
            }
        }
    }
}
