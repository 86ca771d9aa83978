//! Per-channel normalization: `x' = (x - mean[c]) / std[c]`.

use ndarray::{Array4, Axis};

use super::Dataset;
use crate::error::{Error, Result};

/// Per-channel mean and standard deviation that [`Normalization::apply`] maps to 0 and 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// Mean of each channel, subtracted first.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel, divided by after subtracting the mean; each must be
    /// finite and positive.
    pub std: Vec<f32>,
}

impl Normalization {
    /// Checks that there is one finite mean and one finite, positive standard deviation per
    /// channel.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the channel and value that fails.
    pub fn check(&self, channels: usize) -> Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(Error::invalid(
                "normalization",
                format!(
                    "has {} means and {} standard deviations for images with {channels} channels; \
                     expected one of each per channel",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        for (channel, (&mean, &std)) in self.mean.iter().zip(&self.std).enumerate() {
            if !mean.is_finite() {
                return Err(Error::invalid(
                    "normalization",
                    format!(
                        "is invalid: channel {channel} has mean {mean}; expected a finite value"
                    ),
                ));
            }
            if !(std.is_finite() && std > 0.0) {
                return Err(Error::invalid(
                    "normalization",
                    format!(
                        "is invalid: channel {channel} has standard deviation {std}; expected a finite \
                         value above 0"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Normalizes `images` (`[n, c, h, w]`) in place.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] as for [`Normalization::check`] with `c` channels.
    pub fn apply(&self, images: &mut Array4<f32>) -> Result<()> {
        self.check(images.dim().1)?;
        for (mut channel, (&mean, &std)) in images
            .axis_iter_mut(Axis(1))
            .zip(self.mean.iter().zip(&self.std))
        {
            channel.mapv_inplace(|x| (x - mean) / std);
        }
        Ok(())
    }
}

impl Dataset {
    /// Computes the mean and population standard deviation of each channel over all images,
    /// accumulating in `f64`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the data set is empty.
    pub fn channel_mean_std(&self) -> Result<Normalization> {
        if self.is_empty() {
            return Err(Error::invalid(
                "data set",
                "is empty, so it has no channel statistics",
            ));
        }
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for channel in self.images().axis_iter(Axis(1)) {
            let count = channel.len() as f64;
            let channel_mean = channel.iter().map(|&x| f64::from(x)).sum::<f64>() / count;
            let variance = channel
                .iter()
                .map(|&x| (f64::from(x) - channel_mean).powi(2))
                .sum::<f64>()
                / count;
            mean.push(channel_mean as f32);
            std.push(variance.sqrt() as f32);
        }
        Ok(Normalization { mean, std })
    }

    /// Normalizes the images in place; they are no longer in `[0, 1]` afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] as for [`Normalization::check`].
    pub fn normalize(&mut self, normalization: &Normalization) -> Result<()> {
        normalization.apply(self.images_mut())
    }
}
