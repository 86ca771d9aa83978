//! The in-memory data set: images, labels and class count.

use std::ops::Range;

use ndarray::{Array4, s};

use crate::error::{Error, Result};
use crate::labels::check_labels;

/// Images with one class label each, held in memory.
///
/// # Shapes
///
/// `images` is `[n, c, h, w]` (NCHW, standard row-major layout); `labels` has `n` entries, each
/// in `0..classes`. The readers scale pixels to `[0, 1]`; after [`Dataset::normalize`] the
/// values are `(pixel - mean) / std` per channel.
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Array4<f32>,
    labels: Vec<u32>,
    classes: usize,
}

impl Dataset {
    /// Creates a data set after checking that the shapes and labels agree.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when an image dimension is zero or the label count differs from the
    /// image count, [`Error::InvalidArgument`] when `classes` is zero, and
    /// [`Error::LabelOutOfRange`] for a label not below `classes`.
    pub fn new(images: Array4<f32>, labels: Vec<u32>, classes: usize) -> Result<Self> {
        let (n, c, h, w) = images.dim();
        if c == 0 || h == 0 || w == 0 {
            return Err(Error::shape(
                "Dataset",
                format!(
                    "images [n, c, h, w] = {:?} have an empty image size",
                    images.shape()
                ),
            ));
        }
        if labels.len() != n {
            return Err(Error::shape(
                "Dataset",
                format!(
                    "{} labels for {n} images; expected one label per image",
                    labels.len()
                ),
            ));
        }
        if classes == 0 {
            return Err(Error::invalid("classes", "must be at least 1, found 0"));
        }
        check_labels(&labels, classes)?;

        // Batching copies whole images out of one contiguous slice.
        let images = if images.is_standard_layout() {
            images
        } else {
            images.as_standard_layout().into_owned()
        };
        Ok(Dataset {
            images,
            labels,
            classes,
        })
    }

    /// The images, `[n, c, h, w]`.
    pub fn images(&self) -> &Array4<f32> {
        &self.images
    }

    /// The class label of each image.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of classes; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the data set has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one image, `[c, h, w]`.
    pub fn image_shape(&self) -> [usize; 3] {
        let (_, c, h, w) = self.images.dim();
        [c, h, w]
    }

    /// Number of values in one image, `c * h * w`.
    pub fn image_len(&self) -> usize {
        self.image_shape().iter().product()
    }

    /// Returns the images and labels, consuming the data set.
    pub fn into_parts(self) -> (Array4<f32>, Vec<u32>) {
        (self.images, self.labels)
    }

    /// Returns the images for in-place changes that keep the shape.
    pub(super) fn images_mut(&mut self) -> &mut Array4<f32> {
        &mut self.images
    }

    /// Returns all pixel values in `[n, c, h, w]` order.
    pub(super) fn pixels(&self) -> &[f32] {
        self.images
            .as_slice()
            .expect("Dataset::new stores images in standard layout")
    }

    /// Copies the images and labels at `range` into a new data set with the same classes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the range is reversed or ends past [`Dataset::len`].
    pub fn subset(&self, range: Range<usize>) -> Result<Dataset> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::invalid(
                "subset range",
                format!(
                    "{}..{} is not within 0..{} (the number of images)",
                    range.start,
                    range.end,
                    self.len()
                ),
            ));
        }
        Ok(Dataset {
            images: self.images.slice(s![range.clone(), .., .., ..]).to_owned(),
            labels: self.labels[range].to_vec(),
            classes: self.classes,
        })
    }

    /// Copies the first `count` images, or all of them when there are fewer.
    pub fn take(&self, count: usize) -> Dataset {
        let end = count.min(self.len());
        Dataset {
            images: self.images.slice(s![..end, .., .., ..]).to_owned(),
            labels: self.labels[..end].to_vec(),
            classes: self.classes,
        }
    }
}
