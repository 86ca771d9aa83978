//! Checks shared by both paths for class labels.

use crate::error::{Error, Result};

/// Fails with [`Error::LabelOutOfRange`] on the first label that is not below `classes`.
pub fn check_labels(labels: &[u32], classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(index) => Err(Error::LabelOutOfRange {
            label: labels[index],
            index,
            classes,
        }),
        None => Ok(()),
    }
}
