//! Launchers of `shaders/softmax_cross_entropy.wgsl` and `shaders/mse_loss.wgsl`. Each loss
//! runs as one workgroup that reduces in a fixed order.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuLabels, GpuTensor};
use crate::params::expect_shape;

const SOFTMAX_CROSS_ENTROPY: Kernel =
    Kernel::new(Shader::SoftmaxCrossEntropy, "softmax_cross_entropy");
const COUNT_CORRECT: Kernel = Kernel::new(Shader::SoftmaxCrossEntropy, "count_correct");
const MSE_LOSS: Kernel = Kernel::new(Shader::MseLoss, "mse_loss");

/// One workgroup: the reductions run in a single workgroup so that their order is fixed.
const ONE_WORKGROUP: [u32; 3] = [1, 1, 1];

/// Mirrors `Params` in `shaders/softmax_cross_entropy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ClassParams {
    rows: u32,
    classes: u32,
    _padding: [u32; 2],
}

/// Mirrors `Params` in `shaders/mse_loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MseParams {
    len: u32,
    _padding: [u32; 3],
}

/// Checks `logits` as `[n, classes]` with one label per row.
fn class_params(op: &'static str, logits: &GpuTensor, labels: &GpuLabels) -> Result<ClassParams> {
    let &[rows, classes] = logits.shape.as_slice() else {
        return Err(Error::shape(
            op,
            format!("logits must be 2-D [n, classes], got {:?}", logits.shape),
        ));
    };
    if labels.len() != rows {
        return Err(Error::shape(
            op,
            format!(
                "{} labels do not match logits {:?}; pass one label per row",
                labels.len(),
                logits.shape
            ),
        ));
    }
    to_u32(op, logits.len())?;
    Ok(ClassParams {
        rows: to_u32(op, rows)?,
        classes: to_u32(op, classes)?,
        _padding: [0; 2],
    })
}

pub(crate) fn softmax_cross_entropy(
    gpu: &GpuBackend,
    logits: &GpuTensor,
    labels: &GpuLabels,
    loss: &mut GpuTensor,
    dlogits: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "softmax_cross_entropy";
    let params = class_params(OP, logits, labels)?;
    expect_shape(OP, "loss", &loss.shape, &[1])?;
    expect_shape(OP, "dlogits", &dlogits.shape, &logits.shape)?;
    gpu.dispatch(
        SOFTMAX_CROSS_ENTROPY,
        &params,
        &[logits.at(1), labels.at(2), dlogits.at(3), loss.at(4)],
        ONE_WORKGROUP,
    )
}

pub(crate) fn count_correct(
    gpu: &GpuBackend,
    logits: &GpuTensor,
    labels: &GpuLabels,
    correct: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "count_correct";
    let params = class_params(OP, logits, labels)?;
    expect_shape(OP, "correct", &correct.shape, &[1])?;
    gpu.dispatch(
        COUNT_CORRECT,
        &params,
        &[logits.at(1), labels.at(2), correct.at(5)],
        ONE_WORKGROUP,
    )
}

pub(crate) fn mse(
    gpu: &GpuBackend,
    pred: &GpuTensor,
    target: &GpuTensor,
    loss: &mut GpuTensor,
    dpred: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "mse_loss";
    expect_shape(OP, "target", &target.shape, &pred.shape)?;
    expect_shape(OP, "dpred", &dpred.shape, &pred.shape)?;
    expect_shape(OP, "loss", &loss.shape, &[1])?;
    let params = MseParams {
        len: to_u32(OP, pred.len())?,
        _padding: [0; 3],
    };
    gpu.dispatch(
        MSE_LOSS,
        &params,
        &[pred.at(1), target.at(2), dpred.at(3), loss.at(4)],
        ONE_WORKGROUP,
    )
}
