//! Mini-batches in sequential or shuffled order.

use ndarray::Array4;
use rand::Rng;
use rand::seq::SliceRandom;

use super::Dataset;
use crate::error::{Error, Result};

/// One mini-batch copied out of a [`Dataset`].
///
/// # Shapes
///
/// `images` is `[b, c, h, w]` and `labels` has `b` entries, where `b` is the batch size, or
/// fewer for the last batch of an epoch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The images of the batch.
    pub images: Array4<f32>,
    /// The class label of each image.
    pub labels: Vec<u32>,
}

/// Iterator over the mini-batches of one epoch, created by [`Dataset::batches`] or
/// [`Dataset::shuffled_batches`]. Every image appears exactly once, and the last batch contains
/// the remainder when the batch size does not divide the image count.
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    dataset: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl BatchIter<'_> {
    /// Returns the image indices of the epoch in visiting order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = self
            .next
            .saturating_add(self.batch_size)
            .min(self.order.len());
        let indices = &self.order[self.next..end];
        self.next = end;

        let [c, h, w] = self.dataset.image_shape();
        let mut pixels = vec![0.0; indices.len() * self.dataset.image_len()];
        let mut labels = Vec::with_capacity(indices.len());
        self.dataset
            .fill_batch(indices, &mut pixels, &mut labels)
            .expect("epoch orders hold only valid indices and the buffer is sized for them");
        let images = Array4::from_shape_vec((indices.len(), c, h, w), pixels)
            .expect("the buffer has exactly indices.len() images");
        Some(Batch { images, labels })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = (self.order.len() - self.next).div_ceil(self.batch_size);
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

impl Dataset {
    /// Iterates over batches of `batch_size` images in index order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `batch_size` is 0.
    pub fn batches(&self, batch_size: usize) -> Result<BatchIter<'_>> {
        self.batch_iter((0..self.len()).collect(), batch_size)
    }

    /// Iterates over batches of `batch_size` images in an order drawn from `rng` by
    /// [`Dataset::shuffled_order`]. Each call advances `rng`, so successive epochs with one
    /// generator visit the images in different orders, and a generator with a fixed seed
    /// (such as `rand_chacha::ChaCha8Rng`) repeats the same sequence of epochs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `batch_size` is 0.
    pub fn shuffled_batches<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<BatchIter<'_>> {
        self.batch_iter(self.shuffled_order(rng), batch_size)
    }

    /// Draws a uniformly random permutation of `0..len()` (Fisher-Yates shuffle from `rand`).
    ///
    /// NOTE: the permutation for a given seed is fixed by the `rand` 0.9 shuffle algorithm and
    /// may change with a `rand` release that changes it.
    pub fn shuffled_order<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        order
    }

    /// Number of batches per epoch, counting a last partial batch; 0 when `batch_size` is 0.
    pub fn batch_count(&self, batch_size: usize) -> usize {
        if batch_size == 0 {
            0
        } else {
            self.len().div_ceil(batch_size)
        }
    }

    /// Copies the images at `indices` into `images_out` (`[indices.len(), c, h, w]`, row-major)
    /// and replaces the contents of `labels_out` with their labels, so a training loop can
    /// reuse its buffers across steps.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an index not below [`Dataset::len`], and
    /// [`Error::Shape`] when `images_out` does not have `indices.len() * c * h * w` elements.
    /// Nothing is written on error.
    pub fn fill_batch(
        &self,
        indices: &[usize],
        images_out: &mut [f32],
        labels_out: &mut Vec<u32>,
    ) -> Result<()> {
        let image_len = self.image_len();
        if let Some(&index) = indices.iter().find(|&&index| index >= self.len()) {
            return Err(Error::invalid(
                "batch index",
                format!(
                    "{index} is out of range for a data set of {} images",
                    self.len()
                ),
            ));
        }
        let expected_len = indices.len().checked_mul(image_len);
        if expected_len != Some(images_out.len()) {
            return Err(Error::shape(
                "fill_batch",
                format!(
                    "images_out has {} elements, expected {} images of [c, h, w] = {:?}, {} \
                     elements",
                    images_out.len(),
                    indices.len(),
                    self.image_shape(),
                    expected_len
                        .map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string())
                ),
            ));
        }

        let pixels = self.pixels();
        for (slot, &index) in images_out.chunks_exact_mut(image_len).zip(indices) {
            let start = index * image_len;
            slot.copy_from_slice(&pixels[start..start + image_len]);
        }
        labels_out.clear();
        labels_out.extend(indices.iter().map(|&index| self.labels()[index]));
        Ok(())
    }

    fn batch_iter(&self, order: Vec<usize>, batch_size: usize) -> Result<BatchIter<'_>> {
        if batch_size == 0 {
            return Err(Error::invalid("batch size", "must be at least 1, found 0"));
        }
        Ok(BatchIter {
            dataset: self,
            order,
            batch_size,
            next: 0,
        })
    }
}
