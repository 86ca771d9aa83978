//! wgcnn trains convolutional neural networks on any GPU through `wgpu` compute shaders
//! (Vulkan, Metal, DX12, OpenGL), with a CPU reference path on `ndarray` that checks every
//! GPU result.
//!
//! The op set is the [`Backend`] trait, implemented by [`GpuBackend`] and [`CpuBackend`].
//! Tensors are `f32` and images are NCHW (`[n, c, h, w]`, row-major). Layers and models
//! ([`nn`]) are written once over the trait; [`train::fit`] trains them on a
//! [`data::Dataset`], and [`checkpoint`] saves and loads them.
//!
//! ```
//! use wgcnn::nn::{LayerSpec, Mode, Model, Workspace};
//! use wgcnn::{Backend, CpuBackend};
//!
//! let cpu = CpuBackend;
//! let layers = [
//!     LayerSpec::conv2d(1, 4, 3, 1),
//!     LayerSpec::Relu,
//!     LayerSpec::Flatten,
//!     LayerSpec::linear(4 * 8 * 8, 3),
//! ];
//! let mut model = Model::new(&cpu, &[1, 8, 8], &layers, 0)?;
//! assert_eq!(model.parameter_count(), 4 * 9 + 4 + 256 * 3 + 3);
//!
//! // A batch of two 1x8x8 images, all zeros, through the model in evaluation mode.
//! let mut workspace = Workspace::new(&cpu, &model, 2, 3)?;
//! model.forward(&cpu, &mut workspace, Mode::Eval, 0)?;
//! assert_eq!(cpu.shape(workspace.output()), &[2, 3]);
//! # Ok::<(), wgcnn::Error>(())
//! ```

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod error;
pub mod gpu;
pub mod labels;
pub mod models;
pub mod nn;
pub mod params;
pub mod train;

pub use backend::Backend;
pub use cpu::CpuBackend;
pub use error::{Error, Result};
pub use gpu::{BackendChoice, GpuBackend, GpuOptions};
pub use params::{Activation, AdamConfig, Conv2dParams, Pool2dParams, SgdConfig};
