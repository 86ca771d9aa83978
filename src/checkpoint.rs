//! Checkpoints in the safetensors format: weights, running statistics, optimizer state and
//! the metadata needed to rebuild the model and resume training.
//!
//! Tensor names: `model.{layer}.{weight|bias|running_mean|running_var}` and
//! `optimizer.{layer}.{param}.{first|second}` (SGD velocity, or Adam's moments). Metadata keys:
//! `format`, `format_version`, `input_shape` and `architecture` (JSON), `optimizer` (JSON),
//! `epoch`, `step`, `seed`, `training` (JSON of the options that produced the run).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::spec::infer_shapes;
use crate::nn::{LayerSpec, LrSchedule, Model, Optimizer, OptimizerKind};

/// The `format` metadata value of every wgcnn checkpoint.
pub const FORMAT: &str = "wgcnn-checkpoint";
/// The newest format version this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = 1;

/// The optimizer's settings and progress as stored in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerRecord {
    pub kind: OptimizerKind,
    pub base_lr: f32,
    pub schedule: LrSchedule,
    pub step: u64,
}

/// A checkpoint read from disk.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Per-sample input shape of the model.
    pub input_shape: Vec<usize>,
    pub architecture: Vec<LayerSpec>,
    pub optimizer: Option<OptimizerRecord>,
    /// Completed epochs.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    pub seed: u64,
    /// The training options, as the writer recorded them (`null` when it recorded none).
    pub training: serde_json::Value,
    tensors: HashMap<String, ArrayD<f32>>,
    /// The file it was read from, for error messages.
    path: PathBuf,
}

/// Metadata that [`save`] records besides the tensors.
#[derive(Clone, Debug, Default)]
pub struct SaveInfo {
    pub epoch: usize,
    pub seed: u64,
    pub training: serde_json::Value,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Serializes the model, and the optimizer when given, to safetensors bytes.
pub fn to_bytes<B: Backend>(
    backend: &B,
    model: &Model<B>,
    optimizer: Option<&Optimizer<B>>,
    info: &SaveInfo,
) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let step = optimizer.map_or(0, |optimizer| optimizer.step);
    let mut push = |name: String, tensor: &B::Tensor| -> Result<()> {
        let array = backend.read(tensor)?;
        // The loader rejects non-finite values, so such a file could never be read back. The
        // run diverged, and the previous checkpoint is the one worth keeping.
        if array.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "value",
                step,
                layer: format!("checkpoint tensor `{name}`"),
            });
        }
        let bytes: Vec<u8> = array.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, array.shape().to_vec(), bytes));
        Ok(())
    };
    for (name, tensor) in model.named_tensors() {
        push(format!("model.{name}"), tensor)?;
    }
    let mut metadata = HashMap::new();
    if let Some(optimizer) = optimizer {
        for (layer, states) in optimizer.state.iter().enumerate() {
            for (param, state) in states.iter().enumerate() {
                push(format!("optimizer.{layer}.{param}.first"), &state.first)?;
                if let Some(second) = &state.second {
                    push(format!("optimizer.{layer}.{param}.second"), second)?;
                }
            }
        }
        let record = OptimizerRecord {
            kind: optimizer.kind,
            base_lr: optimizer.base_lr,
            schedule: optimizer.schedule,
            step: optimizer.step,
        };
        metadata.insert("optimizer".into(), to_json(&record)?);
        metadata.insert("step".into(), optimizer.step.to_string());
    } else {
        metadata.insert("step".into(), "0".into());
    }
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("format_version".into(), FORMAT_VERSION.to_string());
    metadata.insert("input_shape".into(), to_json(&model.input_shape())?);
    metadata.insert("architecture".into(), to_json(&model.specs())?);
    metadata.insert("epoch".into(), info.epoch.to_string());
    metadata.insert("seed".into(), info.seed.to_string());
    metadata.insert("training".into(), info.training.to_string());

    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| Error::Gpu(format!("invalid tensor `{name}`: {error}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|error| Error::invalid("checkpoint", format!("failed to serialize: {error}")))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| {
        Error::invalid("checkpoint", format!("failed to encode metadata: {error}"))
    })
}

/// The temporary file a save writes before renaming it over `path`: a hidden name in the
/// same folder, so the rename stays on one file system.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Checks before training that a checkpoint can be saved at `path`: its folder exists, and
/// `path` is absent or a regular file (never a device, a folder or a symbolic link, which
/// the atomic rename would replace).
///
/// # Errors
/// [`Error::File`] naming the path and what to change.
pub fn check_save_path(path: &Path) -> Result<()> {
    let folder = save_folder(path);
    match fs::metadata(folder) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(file_error(
                path,
                format!(
                    "cannot save a checkpoint here: {} is a file, not a folder; choose a path inside a folder",
                    folder.display()
                ),
            ));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(file_error(
                path,
                format!(
                    "cannot save a checkpoint here: {} is not a folder, because a part of it is a file; choose a path inside a folder",
                    folder.display()
                ),
            ));
        }
        Err(_) => {
            return Err(file_error(
                path,
                format!(
                    "cannot save a checkpoint here: the folder {} does not exist; create it or choose another path",
                    folder.display()
                ),
            ));
        }
    }
    match fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.file_type().is_file() => Err(file_error(
            path,
            "cannot save a checkpoint here: the path exists and is not a regular file (a folder, device or symbolic link); choose another path",
        )),
        _ => Ok(()),
    }
}

/// Returns the folder that a checkpoint at `path` is saved in: its parent, or the current
/// folder.
fn save_folder(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Checks before training that the folder of `path` accepts new files, by creating and
/// removing the temporary file that a save writes first. A folder without write permission
/// then fails at once instead of at the end of the first epoch.
///
/// # Errors
/// [`Error::File`] naming the path, the cause and what to change.
pub fn check_save_folder_writable(path: &Path) -> Result<()> {
    let temporary = temporary_path(path);
    match File::options()
        .write(true)
        .create_new(true)
        .open(&temporary)
    {
        Ok(file) => {
            drop(file);
            fs::remove_file(&temporary).map_err(io_error(&temporary))
        }
        Err(source) => Err(file_error(
            path,
            format!(
                "cannot save a checkpoint here: creating a file in {} failed ({source}); fix the folder's permissions or choose another --save path",
                save_folder(path).display()
            ),
        )),
    }
}

/// Writes `bytes` to the temporary file of `path` and syncs it to disk; the first half of an
/// atomic save. Returns the temporary path.
pub fn write_temporary(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(source) = result {
        fs::remove_file(&temporary).ok();
        return Err(file_error(
            path,
            format!(
                "failed to write the checkpoint (through the temporary file {}): {source}; the previous checkpoint, if any, is unchanged",
                temporary.display()
            ),
        ));
    }
    Ok(temporary)
}

/// Renames a synced temporary file over `path`, then syncs the folder so the rename itself
/// survives a crash; the second half of an atomic save.
pub fn commit_temporary(temporary: &Path, path: &Path) -> Result<()> {
    if let Err(source) = fs::rename(temporary, path) {
        fs::remove_file(temporary).ok();
        return Err(file_error(
            path,
            format!(
                "the checkpoint was not saved, because replacing the file failed ({source}); the previous checkpoint, if any, is unchanged. Choose another --save path or fix the permissions of the file and its folder"
            ),
        ));
    }
    let folder = save_folder(path);
    // Syncing a folder is not possible on every platform; the file itself is already synced.
    if let Ok(handle) = File::open(folder) {
        handle.sync_all().ok();
    }
    Ok(())
}

/// Saves a checkpoint atomically: the previous file at `path` stays intact until the new one
/// is complete on disk, and a failed save (full disk, no permission) leaves it untouched.
///
/// # Errors
/// [`Error::File`] or [`Error::Io`] naming the path that failed, or a backend error while
/// reading tensors.
pub fn save<B: Backend>(
    path: &Path,
    backend: &B,
    model: &Model<B>,
    optimizer: Option<&Optimizer<B>>,
    info: &SaveInfo,
) -> Result<()> {
    check_save_path(path)?;
    let bytes = to_bytes(backend, model, optimizer, info)?;
    let temporary = write_temporary(path, &bytes)?;
    commit_temporary(&temporary, path)?;
    log::info!("saved checkpoint {}", path.display());
    Ok(())
}

fn metadata_value<'a>(
    path: &Path,
    metadata: &'a HashMap<String, String>,
    key: &str,
) -> Result<&'a str> {
    metadata.get(key).map(String::as_str).ok_or_else(|| {
        file_error(
            path,
            format!("not a wgcnn checkpoint: metadata `{key}` is missing"),
        )
    })
}

fn parse_metadata<T: std::str::FromStr>(
    path: &Path,
    metadata: &HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let text = metadata_value(path, metadata, key)?;
    text.parse().map_err(|_| {
        file_error(
            path,
            format!("metadata `{key}` has the invalid value `{text}`"),
        )
    })
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    metadata: &HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let text = metadata_value(path, metadata, key)?;
    serde_json::from_str(text)
        .map_err(|error| file_error(path, format!("metadata `{key}` is invalid: {error}")))
}

/// Parses checkpoint bytes; `path` only names the source in errors.
///
/// # Errors
/// [`Error::File`] for a truncated or corrupt file, a file that is not a wgcnn checkpoint,
/// one written by a newer format version, or tensors that are not `f32`.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|error| {
        file_error(
            path,
            format!("not a valid safetensors file (truncated or corrupt): {error}"),
        )
    })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let format = metadata_value(path, &metadata, "format")?;
    if format != FORMAT {
        return Err(file_error(
            path,
            format!("not a wgcnn checkpoint: format is `{format}`, expected `{FORMAT}`"),
        ));
    }
    let version: u32 = parse_metadata(path, &metadata, "format_version")?;
    if version > FORMAT_VERSION {
        return Err(file_error(
            path,
            format!(
                "written by a newer wgcnn (checkpoint format version {version}); this build reads \
                 versions up to {FORMAT_VERSION}: upgrade wgcnn to load it"
            ),
        ));
    }
    let safetensors = SafeTensors::deserialize(bytes).map_err(|error| {
        file_error(
            path,
            format!("not a valid safetensors file (truncated or corrupt): {error}"),
        )
    })?;
    let mut tensors = HashMap::new();
    for (name, view) in safetensors.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(file_error(
                path,
                format!("tensor `{name}` has dtype {:?}; expected F32", view.dtype()),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(file_error(
                path,
                format!(
                    "tensor `{name}` holds {value} at index {index}; checkpoints hold only finite \
                     numbers, so the file is corrupt"
                ),
            ));
        }
        let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|error| {
            file_error(
                path,
                format!("tensor `{name}` has an inconsistent size: {error}"),
            )
        })?;
        tensors.insert(name, array);
    }
    let optimizer = if metadata.contains_key("optimizer") {
        Some(parse_json(path, &metadata, "optimizer")?)
    } else {
        None
    };
    Ok(Checkpoint {
        input_shape: parse_json(path, &metadata, "input_shape")?,
        architecture: parse_json(path, &metadata, "architecture")?,
        optimizer,
        epoch: parse_metadata(path, &metadata, "epoch")?,
        step: parse_metadata(path, &metadata, "step")?,
        seed: parse_metadata(path, &metadata, "seed")?,
        training: parse_json(path, &metadata, "training")?,
        tensors,
        path: path.to_path_buf(),
    })
}

/// Reads a checkpoint.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, and the errors of [`from_bytes`].
pub fn load(path: &Path) -> Result<Checkpoint> {
    let file_type = fs::metadata(path).map_err(io_error(path))?.file_type();
    if !file_type.is_file() {
        // A device such as /dev/zero or a FIFO would be read forever.
        return Err(file_error(
            path,
            "is not a regular file; give the path of a checkpoint written by `wgcnn train --save`",
        ));
    }
    let mut file = File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| Error::OutOfMemory {
            name: path.display().to_string(),
            bytes: u128::from(len),
        })?;
    file.read_to_end(&mut bytes).map_err(io_error(path))?;
    from_bytes(path, &bytes)
}

impl Checkpoint {
    /// Returns the file the checkpoint was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Builds the checkpoint's model on `backend` with the stored weights.
    ///
    /// The architecture comes from the file, so it is checked before anything is allocated:
    /// every tensor it implies must be stored with the same shape. The model then takes no
    /// more memory than the stored tensors, which the file contains in full.
    ///
    /// # Errors
    /// [`Error::Shape`] when the architecture does not fit the input shape, or when a model
    /// tensor is missing, has another shape than the architecture gives it, or is extra.
    pub fn build_model<B: Backend>(&self, backend: &B) -> Result<Model<B>> {
        infer_shapes(&self.input_shape, &self.architecture).map_err(|error| {
            file_error(
                &self.path,
                format!("the recorded architecture is invalid, so the file is corrupt: {error}"),
            )
        })?;
        self.check_model_tensors()?;
        let mut model = Model::new(backend, &self.input_shape, &self.architecture, self.seed)?;
        self.restore_model(backend, &mut model)?;
        Ok(model)
    }

    /// Checks the stored `model.*` tensors against the shapes the architecture implies.
    fn check_model_tensors(&self) -> Result<()> {
        let mut expected = HashSet::new();
        for (index, spec) in self.architecture.iter().enumerate() {
            for (name, shape) in spec.state_shapes() {
                let key = format!("model.{index}.{name}");
                match self.tensors.get(&key) {
                    None => {
                        return Err(Error::shape(
                            "checkpoint",
                            format!(
                                "the checkpoint has no tensor `{key}`, which its architecture \
                                 gives the shape {shape:?}; the file is incomplete or corrupt"
                            ),
                        ));
                    }
                    Some(array) if array.shape() != shape.as_slice() => {
                        return Err(Error::shape(
                            "checkpoint",
                            format!(
                                "tensor `{key}` has shape {:?}, but the checkpoint's \
                                 architecture gives it the shape {shape:?}; the file is corrupt",
                                array.shape()
                            ),
                        ));
                    }
                    Some(_) => {
                        expected.insert(key);
                    }
                }
            }
        }
        let extra = self
            .tensors
            .keys()
            .filter(|key| key.starts_with("model.") && !expected.contains(*key))
            .min();
        if let Some(key) = extra {
            return Err(Error::shape(
                "checkpoint",
                format!(
                    "the checkpoint has a tensor `{key}` that its architecture has no place \
                     for; the file is corrupt"
                ),
            ));
        }
        Ok(())
    }

    /// Overwrites every tensor of `model` with the stored one.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the tensor and both shapes when the model's architecture
    /// differs from the checkpoint's.
    pub fn restore_model<B: Backend>(&self, backend: &B, model: &mut Model<B>) -> Result<()> {
        let expected = model.named_tensors().len();
        let stored = self
            .tensors
            .keys()
            .filter(|k| k.starts_with("model."))
            .count();
        for (name, tensor) in model.named_tensors_mut() {
            let key = format!("model.{name}");
            let Some(array) = self.tensors.get(&key) else {
                return Err(Error::shape(
                    "checkpoint",
                    format!(
                        "the checkpoint has no tensor `{key}` (shape {:?} in the model); it was saved from another architecture",
                        backend.shape(tensor)
                    ),
                ));
            };
            if array.shape() != backend.shape(tensor) {
                return Err(Error::shape(
                    "checkpoint",
                    format!(
                        "tensor `{key}` has shape {:?} in the checkpoint but {:?} in the model; it was saved from another architecture",
                        array.shape(),
                        backend.shape(tensor)
                    ),
                ));
            }
            backend.write(tensor, array.view())?;
        }
        if stored != expected {
            return Err(Error::shape(
                "checkpoint",
                format!(
                    "the checkpoint holds {stored} model tensors but the model has {expected}; it was saved from another architecture"
                ),
            ));
        }
        Ok(())
    }

    /// Builds an optimizer for `model` with the stored settings, state and step count, or
    /// `None` when the checkpoint contains no optimizer.
    pub fn build_optimizer<B: Backend>(
        &self,
        backend: &B,
        model: &Model<B>,
    ) -> Result<Option<Optimizer<B>>> {
        let Some(record) = &self.optimizer else {
            return Ok(None);
        };
        let mut optimizer = Optimizer::new(
            backend,
            model,
            record.kind,
            record.base_lr,
            record.schedule,
        )
        .map_err(|error| match error {
            Error::InvalidArgument { .. } => file_error(
                &self.path,
                format!(
                    "the recorded optimizer settings are invalid, so the file is corrupt: {error}"
                ),
            ),
            error => error,
        })?;
        optimizer.step = record.step;
        for (layer, states) in optimizer.state.iter_mut().enumerate() {
            for (param, state) in states.iter_mut().enumerate() {
                let slots = [
                    ("first", Some(&mut state.first)),
                    ("second", state.second.as_mut()),
                ];
                for (slot, tensor) in slots {
                    let Some(tensor) = tensor else { continue };
                    let key = format!("optimizer.{layer}.{param}.{slot}");
                    let array = self.tensors.get(&key).ok_or_else(|| {
                        Error::shape(
                            "checkpoint",
                            format!("the checkpoint has no optimizer tensor `{key}`"),
                        )
                    })?;
                    if array.shape() != backend.shape(tensor) {
                        return Err(Error::shape(
                            "checkpoint",
                            format!(
                                "optimizer tensor `{key}` has shape {:?} in the checkpoint but {:?} in the model",
                                array.shape(),
                                backend.shape(tensor)
                            ),
                        ));
                    }
                    backend.write(tensor, array.view())?;
                }
            }
        }
        Ok(Some(optimizer))
    }
}
