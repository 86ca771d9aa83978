//! Layers, sequential models and optimizers, written once over [`crate::Backend`].

pub mod model;
pub mod optim;
pub mod spec;
pub mod workspace;

pub use model::{Layer, Mode, Model, Param};
pub use optim::{LrSchedule, Optimizer, OptimizerKind};
pub use spec::LayerSpec;
pub use workspace::Workspace;
