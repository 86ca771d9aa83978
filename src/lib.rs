//! wgcnn trains convolutional neural networks on any GPU through `wgpu` compute shaders
//! (Vulkan, Metal, DX12, OpenGL), with a CPU reference path on `ndarray` that checks every
//! GPU result.
//!
//! The op set is the [`Backend`] trait, implemented by [`GpuBackend`] and [`CpuBackend`].
//! Tensors are `f32` and images are NCHW (`[n, c, h, w]`, row-major).

pub mod backend;
pub mod cpu;
pub mod data;
pub mod error;
pub mod gpu;
pub mod labels;
pub mod params;

pub use backend::Backend;
pub use cpu::CpuBackend;
pub use error::{Error, Result};
pub use gpu::{BackendChoice, GpuBackend, GpuOptions};
pub use params::{Activation, AdamConfig, Conv2dParams, Pool2dParams, SgdConfig};
