//! Tensors and label vectors that live in GPU buffers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh identity for a GPU buffer, used as a cache key for bind groups.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// An `f32` tensor in a GPU storage buffer, row-major in `shape`.
///
/// Cloning shares the buffer, as does [`crate::Backend::reshape`].
#[derive(Clone)]
pub struct GpuTensor {
    pub(crate) buffer: Arc<wgpu::Buffer>,
    pub(crate) shape: Vec<usize>,
    pub(crate) id: u64,
}

impl GpuTensor {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements; never true for a tensor wgcnn created.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuTensor")
            .field("shape", &self.shape)
            .field("id", &self.id)
            .finish()
    }
}

/// Class labels as `u32` in a GPU storage buffer.
pub struct GpuLabels {
    pub(crate) buffer: Arc<wgpu::Buffer>,
    pub(crate) len: usize,
    pub(crate) id: u64,
}

impl GpuLabels {
    /// The number of labels.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no labels; never true for labels wgcnn created.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for GpuLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuLabels")
            .field("len", &self.len)
            .field("id", &self.id)
            .finish()
    }
}
