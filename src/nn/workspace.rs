//! The tensors one batch size needs: every activation, its gradient, saved statistics, the
//! labels and the loss. Allocated once per batch size and reused by every step.

use super::model::Model;
use super::spec::LayerSpec;
use crate::backend::Backend;
use crate::error::Result;

/// Buffers for running a model on batches of one size.
#[derive(Debug)]
pub struct Workspace<B: Backend> {
    pub batch_size: usize,
    /// `activations[0]` is the input batch; `activations[i + 1]` the output of layer `i`.
    pub activations: Vec<B::Tensor>,
    /// `gradients[i]` is the loss gradient with respect to `activations[i]`.
    pub gradients: Vec<B::Tensor>,
    /// Per layer: batch norm's batch mean and inverse standard deviation, else empty.
    pub saved: Vec<Vec<B::Tensor>>,
    pub labels: B::Labels,
    /// `[1]`: the batch's mean loss.
    pub loss: B::Tensor,
    /// `[1]`: the number of correct predictions in the batch.
    pub correct: B::Tensor,
}

impl<B: Backend> Workspace<B> {
    /// Allocates the buffers of `model` for `batch_size` samples and `classes` classes.
    pub fn new(backend: &B, model: &Model<B>, batch_size: usize, classes: usize) -> Result<Self> {
        let batch = |shape: &[usize]| -> Vec<usize> {
            let mut full = vec![batch_size];
            full.extend_from_slice(shape);
            full
        };
        let mut activations = vec![backend.zeros("input batch", &batch(model.input_shape()))?];
        let mut gradients = vec![backend.zeros("input gradient", &batch(model.input_shape()))?];
        let mut saved = Vec::new();
        for (index, layer) in model.layers.iter().enumerate() {
            let shape = batch(&layer.output_shape);
            activations.push(backend.zeros(&format!("layer {index} output"), &shape)?);
            gradients.push(backend.zeros(&format!("layer {index} output gradient"), &shape)?);
            saved.push(match layer.spec {
                LayerSpec::BatchNorm2d { channels, .. } => vec![
                    backend.zeros(&format!("layer {index} batch mean"), &[channels])?,
                    backend.zeros(&format!("layer {index} batch inverse std"), &[channels])?,
                ],
                _ => Vec::new(),
            });
        }
        Ok(Self {
            batch_size,
            activations,
            gradients,
            saved,
            labels: backend.labels("labels", &vec![0; batch_size], classes.max(1))?,
            loss: backend.zeros("loss", &[1])?,
            correct: backend.zeros("correct", &[1])?,
        })
    }

    /// The model's output for the last forward pass, `[batch_size, classes]`.
    pub fn output(&self) -> &B::Tensor {
        self.activations.last().expect("at least the input")
    }

    /// Computes the mean softmax cross-entropy of the output against `labels`, its gradient
    /// into the last gradient slot, and the number of correct predictions.
    pub fn softmax_cross_entropy(&mut self, backend: &B) -> Result<()> {
        let last = self.activations.len() - 1;
        backend.softmax_cross_entropy(
            &self.activations[last],
            &self.labels,
            &mut self.loss,
            &mut self.gradients[last],
        )?;
        backend.count_correct(&self.activations[last], &self.labels, &mut self.correct)
    }
}
