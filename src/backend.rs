//! The op set that layers and models are written against, implemented once on the GPU
//! ([`crate::gpu::GpuBackend`]) and once on the CPU ([`crate::cpu::CpuBackend`]).
//!
//! Every op writes into an output tensor that the caller allocated, so a training step can
//! reuse its buffers. Outputs are fully overwritten: no op accumulates into its output.
//! Shapes are checked at each call and a mismatch is an [`Error::Shape`](crate::Error::Shape).

use ndarray::{ArrayD, ArrayViewD};

use crate::error::Result;
use crate::params::{Activation, AdamConfig, Conv2dParams, Pool2dParams, SgdConfig};

/// One implementation of every op of CNN training.
pub trait Backend {
    /// An `f32` tensor that lives on this backend.
    type Tensor: Clone + std::fmt::Debug;
    /// A vector of class labels that lives on this backend.
    type Labels: std::fmt::Debug;

    /// A human-readable name of the device, such as `cpu` or the adapter's name.
    fn device_name(&self) -> String;

    /// The shape of `tensor`.
    fn shape<'a>(&self, tensor: &'a Self::Tensor) -> &'a [usize];

    /// Creates a tensor filled with `value`. `label` names it in errors and debuggers.
    fn full(&self, label: &str, shape: &[usize], value: f32) -> Result<Self::Tensor>;

    /// Creates a tensor filled with zeros.
    fn zeros(&self, label: &str, shape: &[usize]) -> Result<Self::Tensor> {
        self.full(label, shape, 0.0)
    }

    /// Creates a tensor holding a copy of `data`.
    fn tensor(&self, label: &str, data: ArrayViewD<'_, f32>) -> Result<Self::Tensor>;

    /// Overwrites `tensor` with `data`, which must have the same shape.
    fn write(&self, tensor: &mut Self::Tensor, data: ArrayViewD<'_, f32>) -> Result<()>;

    /// Copies `tensor` to the host, waiting for all work recorded so far.
    fn read(&self, tensor: &Self::Tensor) -> Result<ArrayD<f32>>;

    /// Copies several tensors to the host; the GPU does it with one submission and one wait.
    fn read_many(&self, tensors: &[&Self::Tensor]) -> Result<Vec<ArrayD<f32>>> {
        tensors.iter().map(|tensor| self.read(tensor)).collect()
    }

    /// A view of `tensor` with another shape of the same element count. On the GPU it shares
    /// the buffer.
    fn reshape(&self, tensor: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;

    /// Creates a label vector; every label must be below `classes`.
    fn labels(&self, label: &str, labels: &[u32], classes: usize) -> Result<Self::Labels>;

    /// Overwrites a label vector with labels of the same length, each below `classes`.
    fn write_labels(&self, target: &mut Self::Labels, labels: &[u32], classes: usize)
    -> Result<()>;

    /// Sends the work recorded so far to the device without waiting for it.
    fn submit(&self) -> Result<()>;

    /// Sends the work recorded so far and waits until the device has finished it.
    fn synchronize(&self) -> Result<()>;

    /// Starts measuring the device time of each following kernel. Returns false when the
    /// backend cannot (the CPU path, or an adapter without timestamp queries).
    fn start_kernel_timing(&self) -> bool {
        false
    }

    /// Stops measuring and returns each kernel's name and seconds since
    /// [`Backend::start_kernel_timing`].
    fn finish_kernel_timing(&self) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }

    // --- convolution -----------------------------------------------------------------------

    /// `y[n, oc, oh, ow] = bias[oc] + sum_{ic, kh, kw} x[n, ic, ih, iw] * weight[oc, ic, kh, kw]`
    /// with `ih = oh * stride_h - padding_h + kh * dilation_h` (zero outside the input), and
    /// the same along w.
    ///
    /// # Shapes
    /// `x`: `[n, in_channels, h, w]`; `weight`: `[out_channels, in_channels, kh, kw]`;
    /// `bias`: `[out_channels]`; `y`: `[n, out_channels, out_h, out_w]`.
    fn conv2d_forward(
        &self,
        x: &Self::Tensor,
        weight: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        params: &Conv2dParams,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// Gradient of the convolution's input: `dx` from `dy` and `weight`.
    ///
    /// # Shapes
    /// `dy`: `[n, out_channels, out_h, out_w]`; `weight`: `[out_channels, in_channels, kh, kw]`;
    /// `dx`: `[n, in_channels, h, w]` (its shape fixes `h` and `w`).
    fn conv2d_backward_input(
        &self,
        dy: &Self::Tensor,
        weight: &Self::Tensor,
        params: &Conv2dParams,
        dx: &mut Self::Tensor,
    ) -> Result<()>;

    /// Gradient of the convolution's weight: `dweight` from `x` and `dy`, summed over the batch.
    ///
    /// # Shapes
    /// `x`: `[n, in_channels, h, w]`; `dy`: `[n, out_channels, out_h, out_w]`;
    /// `dweight`: `[out_channels, in_channels, kh, kw]`.
    fn conv2d_backward_weight(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        params: &Conv2dParams,
        dweight: &mut Self::Tensor,
    ) -> Result<()>;

    /// Gradient of a per-channel bias: `dbias[c]` is the sum of `dy` over every axis but 1.
    ///
    /// # Shapes
    /// `dy`: `[n, c]` or `[n, c, h, w]`; `dbias`: `[c]`.
    fn bias_backward(&self, dy: &Self::Tensor, dbias: &mut Self::Tensor) -> Result<()>;

    // --- pooling ---------------------------------------------------------------------------

    /// Max over each window; padded positions never win.
    ///
    /// # Shapes
    /// `x`: `[n, c, h, w]`; `y`: `[n, c, out_h, out_w]`.
    fn max_pool2d_forward(
        &self,
        x: &Self::Tensor,
        params: &Pool2dParams,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// Sends each window's gradient to the window's first maximum in row-major order;
    /// gradients of overlapping windows add up.
    ///
    /// # Shapes
    /// `x`, `dx`: `[n, c, h, w]`; `dy`: `[n, c, out_h, out_w]`.
    fn max_pool2d_backward(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        params: &Pool2dParams,
        dx: &mut Self::Tensor,
    ) -> Result<()>;

    /// Mean over each window, dividing by the full window size even where it covers padding
    /// (PyTorch's default `count_include_pad = true`).
    ///
    /// # Shapes
    /// `x`: `[n, c, h, w]`; `y`: `[n, c, out_h, out_w]`.
    fn avg_pool2d_forward(
        &self,
        x: &Self::Tensor,
        params: &Pool2dParams,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// Gradient of [`Backend::avg_pool2d_forward`].
    ///
    /// # Shapes
    /// `dy`: `[n, c, out_h, out_w]`; `dx`: `[n, c, h, w]`.
    fn avg_pool2d_backward(
        &self,
        dy: &Self::Tensor,
        params: &Pool2dParams,
        dx: &mut Self::Tensor,
    ) -> Result<()>;

    // --- element-wise ----------------------------------------------------------------------

    /// `y = f(x)` element-wise. `x` and `y` have the same shape.
    fn activation_forward(
        &self,
        activation: Activation,
        x: &Self::Tensor,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// `dx = f'(x) * dy`, where `y = f(x)` is the forward output (sigmoid and tanh use it).
    /// All four tensors have the same shape.
    fn activation_backward(
        &self,
        activation: Activation,
        x: &Self::Tensor,
        y: &Self::Tensor,
        dy: &Self::Tensor,
        dx: &mut Self::Tensor,
    ) -> Result<()>;

    // --- linear ----------------------------------------------------------------------------

    /// `y = x weightᵀ + bias`.
    ///
    /// # Shapes
    /// `x`: `[n, in_features]`; `weight`: `[out_features, in_features]`; `bias`:
    /// `[out_features]`; `y`: `[n, out_features]`.
    fn linear_forward(
        &self,
        x: &Self::Tensor,
        weight: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// `dx = dy weight`.
    ///
    /// # Shapes
    /// `dy`: `[n, out_features]`; `weight`: `[out_features, in_features]`; `dx`: `[n, in_features]`.
    fn linear_backward_input(
        &self,
        dy: &Self::Tensor,
        weight: &Self::Tensor,
        dx: &mut Self::Tensor,
    ) -> Result<()>;

    /// `dweight = dyᵀ x`, summed over the batch.
    ///
    /// # Shapes
    /// `x`: `[n, in_features]`; `dy`: `[n, out_features]`; `dweight`: `[out_features, in_features]`.
    fn linear_backward_weight(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        dweight: &mut Self::Tensor,
    ) -> Result<()>;

    // --- losses ----------------------------------------------------------------------------

    /// Softmax cross-entropy over integer labels, averaged over the batch, and its gradient
    /// `dlogits = (softmax(logits) - onehot(labels)) / n`. Log-sum-exp subtracts the row max,
    /// so huge logits give a finite loss.
    ///
    /// # Shapes
    /// `logits`, `dlogits`: `[n, classes]`; `labels`: `n` labels; `loss`: `[1]`.
    fn softmax_cross_entropy(
        &self,
        logits: &Self::Tensor,
        labels: &Self::Labels,
        loss: &mut Self::Tensor,
        dlogits: &mut Self::Tensor,
    ) -> Result<()>;

    /// Counts the rows whose largest logit (the first one, on ties) is at the label.
    ///
    /// # Shapes
    /// `logits`: `[n, classes]`; `labels`: `n` labels; `correct`: `[1]`.
    fn count_correct(
        &self,
        logits: &Self::Tensor,
        labels: &Self::Labels,
        correct: &mut Self::Tensor,
    ) -> Result<()>;

    /// Mean squared error over all elements, and its gradient `dpred = 2 (pred - target) / len`.
    ///
    /// # Shapes
    /// `pred`, `target`, `dpred`: any shape, all equal; `loss`: `[1]`.
    fn mse_loss(
        &self,
        pred: &Self::Tensor,
        target: &Self::Tensor,
        loss: &mut Self::Tensor,
        dpred: &mut Self::Tensor,
    ) -> Result<()>;

    // --- normalization and regularization -----------------------------------------------------

    /// Batch normalization in training mode, as `torch.nn.BatchNorm2d`: normalizes each channel
    /// with the batch mean and biased variance, then scales by `gamma` and shifts by `beta`.
    /// Updates `running_mean` and `running_var` with `momentum` and the unbiased variance, and
    /// stores the batch mean and `1 / sqrt(var + eps)` for the backward pass.
    ///
    /// # Shapes
    /// `x`, `y`: `[n, c, h, w]`; `gamma`, `beta`, `running_mean`, `running_var`, `saved_mean`,
    /// `saved_inv_std`: `[c]`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_forward_train(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        running_mean: &mut Self::Tensor,
        running_var: &mut Self::Tensor,
        momentum: f32,
        eps: f32,
        y: &mut Self::Tensor,
        saved_mean: &mut Self::Tensor,
        saved_inv_std: &mut Self::Tensor,
    ) -> Result<()>;

    /// Batch normalization in evaluation mode: normalizes with the running statistics.
    ///
    /// # Shapes
    /// `x`, `y`: `[n, c, h, w]`; `gamma`, `beta`, `running_mean`, `running_var`: `[c]`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_forward_eval(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        running_mean: &Self::Tensor,
        running_var: &Self::Tensor,
        eps: f32,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// Gradients of training-mode batch normalization with respect to `x`, `gamma` and `beta`.
    ///
    /// # Shapes
    /// `x`, `dy`, `dx`: `[n, c, h, w]`; `gamma`, `saved_mean`, `saved_inv_std`, `dgamma`,
    /// `dbeta`: `[c]`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm2d_backward(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        gamma: &Self::Tensor,
        saved_mean: &Self::Tensor,
        saved_inv_std: &Self::Tensor,
        dx: &mut Self::Tensor,
        dgamma: &mut Self::Tensor,
        dbeta: &mut Self::Tensor,
    ) -> Result<()>;

    /// Inverted dropout: zeroes each element with probability `p` and scales the others by
    /// `1 / (1 - p)`. The mask is a hash of `seed` and the element index
    /// ([`crate::params::dropout_keeps`]), the same on every backend, so the backward pass
    /// recomputes it instead of storing it.
    ///
    /// # Shapes
    /// `x`, `y`: equal.
    fn dropout_forward(
        &self,
        x: &Self::Tensor,
        p: f32,
        seed: u32,
        y: &mut Self::Tensor,
    ) -> Result<()>;

    /// Gradient of [`Backend::dropout_forward`] with the same `p` and `seed`.
    ///
    /// # Shapes
    /// `dy`, `dx`: equal.
    fn dropout_backward(
        &self,
        dy: &Self::Tensor,
        p: f32,
        seed: u32,
        dx: &mut Self::Tensor,
    ) -> Result<()>;

    // --- optimizers ------------------------------------------------------------------------

    /// One SGD step on `param` in place, as `torch.optim.SGD`. `step` counts from 1; at step 1
    /// the velocity is set to the gradient (no dampening), as PyTorch does.
    ///
    /// # Shapes
    /// `param`, `grad`, `velocity`: equal.
    fn sgd_step(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        velocity: &mut Self::Tensor,
        config: &SgdConfig,
        lr: f32,
        step: u64,
    ) -> Result<()>;

    /// One Adam or AdamW step on `param` in place, as `torch.optim.Adam` / `AdamW`, with bias
    /// correction for `step` (counting from 1).
    ///
    /// # Shapes
    /// `param`, `grad`, `m`, `v`: equal.
    #[allow(clippy::too_many_arguments)]
    fn adam_step(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        config: &AdamConfig,
        lr: f32,
        step: u64,
    ) -> Result<()>;
}
