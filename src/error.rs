//! The error type of every fallible call in wgcnn.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by wgcnn. Each variant carries the values a user needs to fix the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the requested backend and name filter.
    #[error(
        "no GPU adapter found (backends tried: {tried}{filter}). Install a driver for one of \
         them; on Debian or Ubuntu without a GPU, `apt-get install mesa-vulkan-drivers libvulkan1` \
         provides a software Vulkan adapter (lavapipe), and `wgcnn devices` lists the adapters found. Adapters seen: {seen}"
    )]
    NoAdapter {
        tried: String,
        filter: String,
        seen: String,
    },

    /// Adapters exist, but none matched the backend or name filter.
    #[error(
        "no GPU adapter matches {requested}; the adapters found are {seen}. Change {settings} \
         to select one of them, or leave {pronoun} out to use the best one; `wgcnn devices` \
         lists them with their details"
    )]
    NoMatchingAdapter {
        requested: String,
        seen: String,
        settings: String,
        pronoun: &'static str,
    },

    /// A backend name that wgcnn does not know.
    #[error("unknown backend `{0}`; expected one of auto, vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    /// The adapter refused to create a device with the limits wgcnn requested.
    #[error("failed to create a device on adapter `{adapter}`: {message}")]
    RequestDevice { adapter: String, message: String },

    /// A tensor shape that does not fit the operation.
    #[error("invalid shape for {op}: {message}")]
    Shape { op: &'static str, message: String },

    /// An invalid option or hyperparameter. The message continues the sentence that the name
    /// starts, as in "--batch-size must be at least 1, such as 64; got 0".
    #[error("{name} {message}")]
    InvalidArgument { name: &'static str, message: String },

    /// A tensor larger than one storage binding or buffer may be on this adapter.
    #[error(
        "tensor `{name}` needs {bytes} bytes, but the adapter allows at most {limit} bytes per \
         {what}; use a smaller batch size or a smaller model"
    )]
    TensorTooLarge {
        name: String,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },

    /// A host allocation the operating system refused.
    #[error(
        "tensor `{name}` needs {bytes} bytes, more than this machine could allocate; use a \
         smaller batch size or a smaller model"
    )]
    OutOfMemory { name: String, bytes: u128 },

    /// A data set that does not fit the model: another image size or class count, or no
    /// images at all. The message names both sides and the fix.
    #[error("{0}")]
    DataMismatch(String),

    /// The GPU driver could not allocate memory.
    #[error(
        "the GPU ran out of memory for {what}; use a smaller batch size or a smaller model, or \
         close other programs that use the GPU"
    )]
    GpuOutOfMemory { what: String },

    /// A class label outside `0..classes`.
    #[error(
        "label {label} at index {index} is out of range for {classes} classes; labels must be in \
         0..{classes}"
    )]
    LabelOutOfRange {
        label: u32,
        index: usize,
        classes: usize,
    },

    /// A validation or out-of-memory error reported by wgpu.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// The device was lost (driver reset, GPU removed).
    #[error(
        "the GPU device was lost ({0}), as after a driver reset or a removed GPU; start wgcnn \
         again, with --resume from the last checkpoint when training"
    )]
    DeviceLost(String),

    /// A wait on the GPU took longer than the configured timeout.
    #[error(
        "timed out after {seconds} s waiting for the GPU ({what}); the GPU may have hung, or \
         the work is too slow for it: try a smaller batch size, or allow a longer wait with \
         WGCNN_GPU_TIMEOUT=SECONDS"
    )]
    Timeout { what: &'static str, seconds: f64 },

    /// A data or checkpoint file that could not be read or is malformed.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },

    /// An I/O error with the path it happened on.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A loss or gradient that became NaN or infinite.
    #[error(
        "non-finite {what} at step {step} in {layer}; lower the learning rate (--lr) or check the \
         input data"
    )]
    NonFinite {
        what: &'static str,
        step: u64,
        layer: String,
    },

    /// Training was stopped by an interrupt (Ctrl-C), after saving a checkpoint to
    /// `checkpoint` when one was configured.
    #[error("training interrupted at step {step}; {}", interrupted_hint(.checkpoint.as_deref()))]
    Interrupted {
        step: u64,
        checkpoint: Option<PathBuf>,
    },
}

/// Formats where the progress of an interrupted run was saved, or that nothing was.
fn interrupted_hint(checkpoint: Option<&std::path::Path>) -> String {
    match checkpoint {
        Some(path) => format!(
            "the checkpoint {} contains the progress, and `--resume {}` continues from it",
            path.display(),
            path.display()
        ),
        None => "nothing was saved, because no --save path was given; pass --save FILE to keep \
                 the progress of an interrupted run"
            .to_string(),
    }
}

impl Error {
    /// Builds an [`Error::Shape`] for `op`.
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            op,
            message: message.into(),
        }
    }

    /// Builds an [`Error::InvalidArgument`] for `name`.
    pub fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            message: message.into(),
        }
    }
}
