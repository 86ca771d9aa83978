//! The training loop: fit a model on a data set for some epochs and evaluate it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::ArrayViewD;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::backend::Backend;
use crate::checkpoint::{self, SaveInfo};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Mode, Model, Optimizer, Workspace};

/// Options of [`fit`].
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Passes over the training set. Default 1.
    pub epochs: usize,
    /// Images per training step. Default 64.
    pub batch_size: usize,
    /// Seed of the shuffling order (and, through the model, of dropout). Default 0.
    pub seed: u64,
    /// Stop after this many steps in total, for quick runs. Default none.
    pub max_steps: Option<u64>,
    /// Images per evaluation batch. Default 500.
    pub eval_batch_size: usize,
    /// Checkpoint file, saved after each epoch and when training stops early. Default
    /// none.
    pub checkpoint: Option<CheckpointTarget>,
    /// Set by a signal handler to stop after the current step. Default none.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// The file [`fit`] saves checkpoints to, and the metadata it records in them.
#[derive(Clone, Debug)]
pub struct CheckpointTarget {
    pub path: PathBuf,
    pub info: SaveInfo,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 64,
            seed: 0,
            max_steps: None,
            eval_batch_size: 500,
            checkpoint: None,
            interrupt: None,
        }
    }
}

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochMetrics {
    /// Counting from 1.
    pub epoch: usize,
    /// Mean loss over the epoch's training images.
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// `NaN` when no test set was given.
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Training images per second, evaluation excluded.
    pub images_per_second: f64,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Steps taken in this epoch.
    pub steps: u64,
}

/// Progress reported to the observer of [`fit`].
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    /// A training step finished.
    Step {
        epoch: usize,
        /// Steps so far over all epochs.
        step: u64,
        /// Index of the batch within the epoch, counting from 0.
        batch: usize,
        batches_per_epoch: usize,
        /// This batch's mean loss.
        loss: f32,
        /// Training images per second so far in this epoch.
        images_per_second: f64,
    },
    /// An epoch and its evaluation finished.
    Epoch(&'a EpochMetrics),
}

/// Mean loss and accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

/// Runs training and evaluation steps with one workspace per batch size, so repeated steps
/// allocate nothing.
#[derive(Debug)]
pub struct Trainer<B: Backend> {
    workspaces: HashMap<usize, Workspace<B>>,
    host_images: Vec<f32>,
    host_labels: Vec<u32>,
}

impl<B: Backend> Default for Trainer<B> {
    fn default() -> Self {
        Self {
            workspaces: HashMap::new(),
            host_images: Vec::new(),
            host_labels: Vec::new(),
        }
    }
}

/// Finds where a non-finite loss came from: the first layer whose output, parameters or
/// parameter gradients hold a NaN or an infinity.
fn diagnose_non_finite<B: Backend>(
    backend: &B,
    model: &Model<B>,
    workspace: &Workspace<B>,
    step: u64,
) -> Error {
    let finite = |tensor: &B::Tensor| {
        backend
            .read(tensor)
            .map(|array| array.iter().all(|v| v.is_finite()))
            .unwrap_or(false)
    };
    if !finite(&workspace.activations[0]) {
        return Error::NonFinite {
            what: "input",
            step,
            layer: "the input batch".to_string(),
        };
    }
    for (index, layer) in model.layers.iter().enumerate() {
        let name = format!("layer {index} ({})", layer.spec.kind());
        if let Some(param) = layer.params.iter().find(|p| !finite(&p.value)) {
            return Error::NonFinite {
                what: "parameter",
                step,
                layer: format!("{name} {}", param.name),
            };
        }
        if !finite(&workspace.activations[index + 1]) {
            return Error::NonFinite {
                what: "activation",
                step,
                layer: name,
            };
        }
    }
    for (index, layer) in model.layers.iter().enumerate() {
        if let Some(param) = layer.params.iter().find(|p| !finite(&p.grad)) {
            return Error::NonFinite {
                what: "gradient",
                step,
                layer: format!("layer {index} ({}) {}", layer.spec.kind(), param.name),
            };
        }
    }
    Error::NonFinite {
        what: "loss",
        step,
        layer: "softmax_cross_entropy".to_string(),
    }
}

/// Fails unless the data set's images fit the model's input and its classes its output.
fn check_fits<B: Backend>(model: &Model<B>, data: &Dataset, what: &str) -> Result<()> {
    let sample = &data.images().shape()[1..];
    if sample != model.input_shape() {
        return Err(Error::DataMismatch(format!(
            "the {what} images are {sample:?} ([channels, height, width]), but the model takes {:?}; \
             use data of the size the model was built for, or build the model for this data",
            model.input_shape()
        )));
    }
    if model.output_shape() != [data.classes()] {
        return Err(Error::DataMismatch(format!(
            "the model's output {:?} does not match the {} classes of the {what} data; \
             make the last layer's output size the number of classes",
            model.output_shape(),
            data.classes()
        )));
    }
    if data.labels().is_empty() {
        return Err(Error::DataMismatch(format!(
            "the {what} data set contains no images; give a data set with at least one"
        )));
    }
    Ok(())
}

impl<B: Backend> Trainer<B> {
    /// Creates a trainer with no workspace yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates the workspace for `batch_size` now, so that a batch too large for the
    /// device fails here, naming the tensor and the limit, instead of in the middle of
    /// training.
    pub fn prepare(
        &mut self,
        backend: &B,
        model: &Model<B>,
        batch_size: usize,
        classes: usize,
    ) -> Result<()> {
        if let Entry::Vacant(entry) = self.workspaces.entry(batch_size) {
            entry.insert(Workspace::new(backend, model, batch_size, classes)?);
        }
        Ok(())
    }

    /// Copies the images and labels at `indices` into the workspace for that batch size.
    fn load_batch(
        &mut self,
        backend: &B,
        model: &Model<B>,
        data: &Dataset,
        indices: &[usize],
    ) -> Result<()> {
        let batch_size = indices.len();
        let workspace = match self.workspaces.entry(batch_size) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                entry.insert(Workspace::new(backend, model, batch_size, data.classes())?)
            }
        };

        let sample_len: usize = model.input_shape().iter().product();
        self.host_images.clear();
        self.host_labels.clear();
        let images = data
            .images()
            .as_slice()
            .expect("data set images are contiguous");
        for &index in indices {
            self.host_images
                .extend_from_slice(&images[index * sample_len..(index + 1) * sample_len]);
            self.host_labels.push(data.labels()[index]);
        }
        let mut shape = vec![batch_size];
        shape.extend_from_slice(model.input_shape());
        let view = ArrayViewD::from_shape(shape, &self.host_images)
            .map_err(|error| Error::shape("fit", error.to_string()))?;
        backend.write(&mut workspace.activations[0], view)?;
        backend.write_labels(&mut workspace.labels, &self.host_labels, data.classes())
    }

    /// One training step on the images at `indices`: forward, loss, backward, update.
    /// Returns the batch's mean loss and its number of correct predictions.
    pub fn train_step(
        &mut self,
        backend: &B,
        model: &mut Model<B>,
        optimizer: &mut Optimizer<B>,
        data: &Dataset,
        indices: &[usize],
    ) -> Result<(f32, usize)> {
        self.load_batch(backend, model, data, indices)?;
        let workspace = self
            .workspaces
            .get_mut(&indices.len())
            .expect("created by load_batch");
        let step = optimizer.step;
        model.forward(backend, workspace, Mode::Train, step)?;
        workspace.softmax_cross_entropy(backend)?;
        model.backward(backend, workspace, step)?;
        optimizer.step(backend, model)?;

        // The readback joins the step's commands: one submission and one wait per step.
        let stats = backend.read_many(&[&workspace.loss, &workspace.correct])?;
        let (loss, correct) = (stats[0][0], stats[1][0]);
        if !loss.is_finite() {
            return Err(diagnose_non_finite(backend, model, workspace, step + 1));
        }
        Ok((loss, correct as usize))
    }

    /// Mean loss and accuracy of `model` on `data` in evaluation mode.
    pub fn evaluate(
        &mut self,
        backend: &B,
        model: &mut Model<B>,
        data: &Dataset,
        batch_size: usize,
    ) -> Result<Evaluation> {
        check_fits(model, data, "evaluation")?;
        if batch_size == 0 {
            return Err(Error::invalid("batch size", "0 must be at least 1"));
        }
        let count = data.labels().len();
        let mut loss_sum = 0.0f64;
        let mut correct = 0usize;
        let indices: Vec<usize> = (0..count).collect();
        for chunk in indices.chunks(batch_size) {
            self.load_batch(backend, model, data, chunk)?;
            let workspace = self
                .workspaces
                .get_mut(&chunk.len())
                .expect("created by load_batch");
            model.forward(backend, workspace, Mode::Eval, 0)?;
            workspace.softmax_cross_entropy(backend)?;
            let stats = backend.read_many(&[&workspace.loss, &workspace.correct])?;
            loss_sum += f64::from(stats[0][0]) * chunk.len() as f64;
            correct += stats[1][0] as usize;
        }
        Ok(Evaluation {
            loss: loss_sum / count as f64,
            accuracy: correct as f64 / count as f64,
        })
    }
}

/// Saves a checkpoint when the configuration names a checkpoint file.
fn save_checkpoint<B: Backend>(
    backend: &B,
    model: &Model<B>,
    optimizer: &Optimizer<B>,
    config: &FitConfig,
    completed_epochs: usize,
) -> Result<()> {
    let Some(target) = &config.checkpoint else {
        return Ok(());
    };
    let info = SaveInfo {
        epoch: completed_epochs,
        ..target.info.clone()
    };
    checkpoint::save(&target.path, backend, model, Some(optimizer), &info)
}

/// The shuffled order of `len` samples in `epoch` (counting from 1): a permutation drawn
/// from `seed` and the epoch alone, so a resumed run shuffles exactly as the original did.
pub fn epoch_order(seed: u64, epoch: usize, len: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng);
    order
}

/// Trains `model` on `train` for `config.epochs` epochs, evaluating on `test` after each.
/// An optimizer that has taken steps already (restored from a checkpoint) resumes at the
/// epoch and batch its step count falls on.
///
/// The observer receives every step and every epoch. Returning `ControlFlow::Break` stops
/// training after the current step (the metrics of the epoch so far are still returned).
///
/// # Errors
/// [`Error::Shape`] when the data does not fit the model, [`Error::InvalidArgument`] for a
/// zero batch size or epoch count, [`Error::NonFinite`] when the loss diverges, and any
/// backend error.
pub fn fit<B: Backend>(
    backend: &B,
    model: &mut Model<B>,
    optimizer: &mut Optimizer<B>,
    train: &Dataset,
    test: Option<&Dataset>,
    config: &FitConfig,
    mut observer: impl FnMut(Progress<'_>) -> ControlFlow<()>,
) -> Result<Vec<EpochMetrics>> {
    if config.batch_size == 0 {
        return Err(Error::invalid(
            "batch size",
            "0 must be at least 1, such as 64",
        ));
    }
    if config.epochs == 0 {
        return Err(Error::invalid("epochs", "0 must be at least 1"));
    }
    if config.eval_batch_size == 0 {
        return Err(Error::invalid(
            "evaluation batch size",
            "0 must be at least 1, such as 500",
        ));
    }
    check_fits(model, train, "training")?;
    if let Some(test) = test {
        check_fits(model, test, "test")?;
    }

    // Every batch size the run will use, planned against the device's limits up front.
    let mut trainer = Trainer::new();
    let mut sizes = vec![
        config.batch_size.min(train.len()),
        train.len() % config.batch_size,
    ];
    if let Some(test) = test {
        sizes.push(config.eval_batch_size.min(test.len()));
        sizes.push(test.len() % config.eval_batch_size);
    }
    for size in sizes.into_iter().filter(|&size| size > 0) {
        trainer.prepare(backend, model, size, train.classes())?;
    }
    let batches_per_epoch = train.len().div_ceil(config.batch_size);
    // A resumed optimizer continues where its step count left off: in the epoch and at the
    // batch that count falls on, with the same shuffled order.
    let first_epoch = (optimizer.step / batches_per_epoch as u64) as usize + 1;
    let mut skip = (optimizer.step % batches_per_epoch as u64) as usize;
    let mut history = Vec::new();
    let mut stop = config.max_steps.is_some_and(|max| optimizer.step >= max);

    for epoch in first_epoch..=config.epochs {
        if stop {
            break;
        }
        let order = epoch_order(config.seed, epoch, train.len());
        let skip_at_start = skip;
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen, mut steps) = (0.0f64, 0usize, 0usize, 0u64);
        for (batch, indices) in order.chunks(config.batch_size).enumerate().skip(skip) {
            let (loss, batch_correct) =
                trainer.train_step(backend, model, optimizer, train, indices)?;
            loss_sum += f64::from(loss) * indices.len() as f64;
            correct += batch_correct;
            seen += indices.len();
            steps += 1;
            let progress = Progress::Step {
                epoch,
                step: optimizer.step,
                batch,
                batches_per_epoch,
                loss,
                images_per_second: seen as f64 / started.elapsed().as_secs_f64(),
            };
            let limit_reached = config.max_steps.is_some_and(|max| optimizer.step >= max);
            if observer(progress).is_break() || limit_reached {
                stop = true;
                break;
            }
            if config
                .interrupt
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::SeqCst))
            {
                // The epoch is incomplete, so the checkpoint records the epochs before it;
                // the optimizer's step count marks where to resume.
                save_checkpoint(backend, model, optimizer, config, epoch - 1)?;
                return Err(Error::Interrupted {
                    step: optimizer.step,
                    checkpoint: config.checkpoint.as_ref().map(|target| target.path.clone()),
                });
            }
        }
        skip = 0;
        let seconds = started.elapsed().as_secs_f64();
        let evaluation = match test {
            Some(test) => trainer.evaluate(backend, model, test, config.eval_batch_size)?,
            None => Evaluation {
                loss: f64::NAN,
                accuracy: f64::NAN,
            },
        };
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            test_loss: evaluation.loss,
            test_accuracy: evaluation.accuracy,
            images_per_second: seen as f64 / seconds,
            seconds,
            steps,
        };
        log::info!(
            "epoch {epoch}: train loss {:.4}, train accuracy {:.4}, test accuracy {:.4}",
            metrics.train_loss,
            metrics.train_accuracy,
            metrics.test_accuracy
        );
        let completed = if stop && steps < (batches_per_epoch - skip_at_start) as u64 {
            epoch - 1
        } else {
            epoch
        };
        save_checkpoint(backend, model, optimizer, config, completed)?;
        let flow = observer(Progress::Epoch(&metrics));
        history.push(metrics);
        if stop || flow.is_break() {
            break;
        }
    }
    Ok(history)
}

/// One timed part of a training step.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileRow {
    /// `upload`, `forward`, `loss`, `backward`, `optimizer` or `readback`.
    pub phase: &'static str,
    /// The layer, such as `3 conv2d`, or empty for phases that span the model.
    pub layer: String,
    pub seconds: f64,
}

/// How much of an ordinary training step the device spent in kernels.
#[derive(Clone, Debug, Serialize)]
pub struct KernelShare {
    /// Host wall time of the whole step: batch upload, recording, kernels, readback.
    pub step_seconds: f64,
    /// The sum of every kernel's device time, from timestamp queries.
    pub kernel_seconds: f64,
    pub dispatches: usize,
}

impl<B: Backend> Trainer<B> {
    /// Times one ordinary training step on the host and its kernels with the device's
    /// timestamp queries; `None` when the backend cannot time kernels.
    pub fn kernel_share(
        &mut self,
        backend: &B,
        model: &mut Model<B>,
        optimizer: &mut Optimizer<B>,
        data: &Dataset,
        indices: &[usize],
    ) -> Result<Option<KernelShare>> {
        backend.synchronize()?;
        if !backend.start_kernel_timing() {
            return Ok(None);
        }
        let started = Instant::now();
        let result = self.train_step(backend, model, optimizer, data, indices);
        let step_seconds = started.elapsed().as_secs_f64();
        let kernels = backend.finish_kernel_timing()?;
        result?;
        Ok(Some(KernelShare {
            step_seconds,
            kernel_seconds: kernels.iter().map(|(_, seconds)| seconds).sum(),
            dispatches: kernels.len(),
        }))
    }

    /// Runs one training step like [`Trainer::train_step`], but waits for the device after
    /// every layer and phase and times each on the host.
    ///
    /// The waits keep the device from overlapping work, so the sum of the rows is larger than
    /// an unprofiled step; [`Trainer::kernel_share`] measures an ordinary step.
    pub fn profile_step(
        &mut self,
        backend: &B,
        model: &mut Model<B>,
        optimizer: &mut Optimizer<B>,
        data: &Dataset,
        indices: &[usize],
    ) -> Result<Vec<ProfileRow>> {
        let mut rows = Vec::new();
        let mut timed = |phase: &'static str,
                         layer: String,
                         work: &mut dyn FnMut() -> Result<()>|
         -> Result<()> {
            backend.synchronize()?;
            let started = Instant::now();
            work()?;
            backend.synchronize()?;
            rows.push(ProfileRow {
                phase,
                layer,
                seconds: started.elapsed().as_secs_f64(),
            });
            Ok(())
        };

        timed("upload", String::new(), &mut || {
            self.load_batch(backend, model, data, indices)
        })?;
        let workspace = self
            .workspaces
            .get_mut(&indices.len())
            .expect("created by load_batch");
        let step = optimizer.step;
        for index in 0..model.layers.len() {
            let name = format!("{index} {}", model.layers[index].spec.kind());
            timed("forward", name, &mut || {
                model.forward_layer(backend, workspace, index, Mode::Train, step)
            })?;
        }
        timed("loss", String::new(), &mut || {
            workspace.softmax_cross_entropy(backend)
        })?;
        for index in (0..model.layers.len()).rev() {
            let name = format!("{index} {}", model.layers[index].spec.kind());
            timed("backward", name, &mut || {
                model.backward_layer(backend, workspace, index, step)
            })?;
        }
        timed("optimizer", String::new(), &mut || {
            optimizer.step(backend, model)
        })?;
        timed("readback", String::new(), &mut || {
            backend.read(&workspace.loss).map(|_| ())
        })?;
        Ok(rows)
    }
}
