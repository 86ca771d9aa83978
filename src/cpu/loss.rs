//! Losses: softmax cross-entropy over class labels, and mean squared error.

use ndarray::{ArrayD, ArrayView2, Ix2, Zip};

use crate::error::{Error, Result};
use crate::labels::check_labels;
use crate::params::expect_shape;

/// Views `logits` as `[n, classes]` and checks the labels against it.
fn logits_and_labels<'a>(
    op: &'static str,
    logits: &'a ArrayD<f32>,
    labels: &[u32],
) -> Result<ArrayView2<'a, f32>> {
    let logits = logits.view().into_dimensionality::<Ix2>().map_err(|_| {
        Error::shape(
            op,
            format!("logits must be 2-D [n, classes], got {:?}", logits.shape()),
        )
    })?;
    if labels.len() != logits.nrows() {
        return Err(Error::shape(
            op,
            format!(
                "{} labels do not match logits {:?}; pass one label per row",
                labels.len(),
                logits.shape()
            ),
        ));
    }
    check_labels(labels, logits.ncols())?;
    Ok(logits)
}

/// The mean over rows of `-log softmax(logits)[label]`, and its gradient
/// `(softmax(logits) - onehot(labels)) / n`.
pub fn softmax_cross_entropy(
    logits: &ArrayD<f32>,
    labels: &[u32],
    loss: &mut ArrayD<f32>,
    dlogits: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "softmax_cross_entropy";
    expect_shape(OP, "loss", loss.shape(), &[1])?;
    expect_shape(OP, "dlogits", dlogits.shape(), logits.shape())?;
    let logits = logits_and_labels(OP, logits, labels)?;
    let batch_size = logits.nrows() as f32;

    let mut total = 0.0f32;
    let mut dlogits = dlogits
        .view_mut()
        .into_dimensionality::<Ix2>()
        .expect("dlogits has the shape of logits");
    for ((row, mut grad), &label) in logits
        .outer_iter()
        .zip(dlogits.outer_iter_mut())
        .zip(labels)
    {
        let label = label as usize;
        // Shifting by the row max keeps every exponent at most 0, so exp cannot overflow.
        let max = row.fold(f32::NEG_INFINITY, |max, &v| max.max(v));
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        // The probability mass off the label, summed on its own, so that `p_label - 1`
        // keeps its digits when p_label rounds to 1.
        let off_label: f32 = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != label)
            .map(|(_, &v)| (v - max).exp())
            .sum();
        total += sum.ln() - (row[label] - max);
        Zip::indexed(&mut grad).and(&row).for_each(|j, g, &v| {
            let delta = if j == label {
                -off_label / sum
            } else {
                (v - max).exp() / sum
            };
            *g = delta / batch_size;
        });
    }
    loss[[0]] = total / batch_size;
    Ok(())
}

/// The number of rows whose first largest logit is at the label, as `f32`.
pub fn count_correct(
    logits: &ArrayD<f32>,
    labels: &[u32],
    correct: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "count_correct";
    expect_shape(OP, "correct", correct.shape(), &[1])?;
    let logits = logits_and_labels(OP, logits, labels)?;

    let hits = logits
        .outer_iter()
        .zip(labels)
        .filter(|(row, label)| first_argmax(row.iter().copied()) == **label as usize)
        .count();
    correct[[0]] = hits as f32;
    Ok(())
}

/// The index of the first largest value.
fn first_argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (index, value) in values.enumerate() {
        if index == 0 || value > best.1 {
            best = (index, value);
        }
    }
    best.0
}

/// The mean of `(pred - target)²` over all elements, and its gradient
/// `2 (pred - target) / len`.
pub fn mse(
    pred: &ArrayD<f32>,
    target: &ArrayD<f32>,
    loss: &mut ArrayD<f32>,
    dpred: &mut ArrayD<f32>,
) -> Result<()> {
    const OP: &str = "mse_loss";
    expect_shape(OP, "target", target.shape(), pred.shape())?;
    expect_shape(OP, "dpred", dpred.shape(), pred.shape())?;
    expect_shape(OP, "loss", loss.shape(), &[1])?;
    let len = pred.len() as f32;

    let mut total = 0.0f32;
    Zip::from(dpred)
        .and(pred)
        .and(target)
        .for_each(|grad, &p, &t| {
            let diff = p - t;
            total += diff * diff;
            *grad = 2.0 * diff / len;
        });
    loss[[0]] = total / len;
    Ok(())
}
