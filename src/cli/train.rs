//! `wgcnn train`: the main job.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wgcnn::checkpoint::{self, Checkpoint, SaveInfo};
use wgcnn::data::{Dataset, DatasetKind, Normalization, Split, find_dataset_dir, load_dataset};
use wgcnn::gpu::{BackendChoice, GpuBackend};
use wgcnn::nn::{LrSchedule, Model, Optimizer, OptimizerKind};
use wgcnn::train::{CheckpointTarget, EpochMetrics, FitConfig, Progress, fit};
use wgcnn::{AdamConfig, Backend, CpuBackend, Error, SgdConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    /// Two 5x5 convolutions (16 and 32 channels) with max pooling, then 128 hidden units.
    Lenet,
    /// Two 5x5 convolutions (32 and 64 channels) with batch norm, then dropout and 256 hidden
    /// units.
    LenetBn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    Sgd,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleChoice {
    /// Cosine annealing from --lr to 0 over all steps.
    Cosine,
    /// Multiply the rate by 0.1 after each third of the epochs.
    Step,
    /// Keep --lr throughout.
    Constant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    Gpu,
    Cpu,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Data set to train on [default: fashion-mnist, or the one a resumed checkpoint
    /// recorded].
    #[arg(long, ignore_case = true, value_parser = super::dataset_parser())]
    dataset: Option<DatasetKind>,
    #[arg(long, value_name = "DIR", help = super::DATA_DIR_HELP)]
    data_dir: Option<PathBuf>,
    /// Architecture.
    #[arg(long, value_enum, default_value = "lenet", conflicts_with = "resume")]
    model: ModelChoice,
    /// Passes over the training set.
    #[arg(
        long,
        default_value_t = 5,
        allow_negative_numbers = true,
        value_parser = super::whole_number::<usize>(1, 5)
    )]
    epochs: usize,
    /// Images per training step.
    #[arg(
        long,
        default_value_t = 64,
        conflicts_with = "resume",
        allow_negative_numbers = true,
        value_parser = super::whole_number::<usize>(1, 64)
    )]
    batch_size: usize,
    /// Base learning rate (default: 0.05 for SGD, 0.001 for Adam and AdamW).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "resume")]
    lr: Option<f32>,
    /// Update rule.
    #[arg(long, value_enum, default_value = "sgd", conflicts_with = "resume")]
    optimizer: OptimizerChoice,
    /// SGD momentum.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.9,
        conflicts_with = "resume"
    )]
    momentum: f32,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.0,
        conflicts_with = "resume"
    )]
    weight_decay: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine", conflicts_with = "resume")]
    schedule: ScheduleChoice,
    /// Skip normalizing the inputs to zero mean and unit variance per channel.
    #[arg(long, conflicts_with = "resume")]
    no_normalize: bool,
    /// Device to train on.
    #[arg(long, value_enum, default_value = "gpu")]
    device: DeviceChoice,
    /// Graphics API for --device gpu: auto, vulkan, metal, dx12 or gl. Default: WGCNN_BACKEND, else auto.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Use the adapter whose name contains this text (case-insensitive).
    #[arg(long)]
    adapter: Option<String>,
    /// Seed of the initial weights, the shuffling and dropout.
    #[arg(
        long,
        default_value_t = 0,
        conflicts_with = "resume",
        allow_negative_numbers = true,
        value_parser = super::whole_number::<u64>(0, 42)
    )]
    seed: u64,
    /// Stop after this many training steps in total.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_parser = super::whole_number::<u64>(1, 1000)
    )]
    max_steps: Option<u64>,
    /// Write one JSON object per epoch to this file (JSON Lines), replacing the file.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Print only the final result.
    #[arg(long)]
    quiet: bool,
    /// Save a checkpoint (safetensors) here after each epoch and when training stops early.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Time each layer and phase of a few training steps, print the table and exit.
    #[arg(long)]
    profile: bool,
    /// Continue from this checkpoint with its model, optimizer, step, seed, batch size, data
    /// set and input normalization; --epochs is the new total. The options that would change
    /// those cannot be given with it.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
}

/// Everything the training run needs, loaded and checked before any device work.
struct Job {
    train: Dataset,
    test: Dataset,
    specs: Vec<wgcnn::nn::LayerSpec>,
    kind: OptimizerKind,
    lr: f32,
    config: FitConfig,
    normalization: Option<Normalization>,
    resume: Option<Checkpoint>,
    /// The `--model` value, or the one a resumed checkpoint recorded.
    model_name: String,
    dataset: DatasetKind,
    /// The `--metrics` file, created before the data is loaded.
    metrics: Option<BufWriter<File>>,
}

/// Loads one split of a data set from `data_dir` or the default places.
pub fn load_split(
    kind: DatasetKind,
    data_dir: Option<&std::path::Path>,
    split: Split,
) -> wgcnn::Result<Dataset> {
    let dir = find_dataset_dir(kind, data_dir)?;
    load_dataset(kind, &dir, split)
}

/// The training options `wgcnn train` records in a checkpoint (see [`training_record`]),
/// read back strictly. A value that is there but wrong makes the file corrupt; a default in
/// its place would train or evaluate something else.
#[derive(Debug, Default)]
pub struct Recorded {
    pub dataset: Option<DatasetKind>,
    pub model: Option<String>,
    pub batch_size: Option<usize>,
    pub normalization: Option<Normalization>,
}

#[derive(serde::Deserialize)]
struct NormalizationJson {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Recorded {
    /// Reads the options of `checkpoint`. One saved through the library records none.
    ///
    /// # Errors
    /// [`Error::File`] naming the checkpoint when a recorded option is malformed or invalid.
    pub fn of(checkpoint: &Checkpoint) -> wgcnn::Result<Recorded> {
        let corrupt = |message: String| Error::File {
            path: checkpoint.path().to_path_buf(),
            message: format!(
                "the recorded training options are invalid ({message}), so the file is corrupt"
            ),
        };
        if checkpoint.training.is_null() {
            return Ok(Recorded::default());
        }
        if !checkpoint.training.is_object() {
            return Err(corrupt(format!("{} is not an object", checkpoint.training)));
        }
        // One key at a time, so that the message names the key that is wrong.
        fn field<T: serde::de::DeserializeOwned>(
            training: &serde_json::Value,
            key: &str,
        ) -> std::result::Result<Option<T>, String> {
            match training.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(value) => serde_json::from_value(value.clone())
                    .map(Some)
                    .map_err(|error| format!("`{key}`: {error}")),
            }
        }
        let training = &checkpoint.training;
        let dataset = field::<String>(training, "dataset")
            .map_err(corrupt)?
            .map(|name| name.parse::<DatasetKind>())
            .transpose()
            .map_err(|error| corrupt(format!("`dataset`: {error}")))?;
        let model = field::<String>(training, "model").map_err(corrupt)?;
        if let Some(name) = &model
            && ModelChoice::from_str(name, false).is_err()
        {
            return Err(corrupt(format!("`model`: unknown model `{name}`")));
        }
        let batch_size = field::<usize>(training, "batch_size").map_err(corrupt)?;
        if batch_size == Some(0) {
            return Err(corrupt("`batch_size`: 0; it must be at least 1".into()));
        }
        let normalization = field::<NormalizationJson>(training, "normalization")
            .map_err(corrupt)?
            .map(|n| Normalization {
                mean: n.mean,
                std: n.std,
            });
        if let Some(normalization) = &normalization {
            let channels = checkpoint.input_shape.first().copied().unwrap_or(0);
            normalization
                .check(channels)
                .map_err(|error| corrupt(error.to_string()))?;
        }
        Ok(Recorded {
            dataset,
            model,
            batch_size,
            normalization,
        })
    }
}

fn prepare(args: &TrainArgs) -> wgcnn::Result<Job> {
    check_output_paths(args)?;
    if let Some(path) = &args.resume {
        super::check_checkpoint_file("--resume", path)?;
    }
    // The file is created (and replaced) before the slow steps, so a bad path fails at once.
    let metrics = args
        .metrics
        .as_deref()
        .map(create_metrics_file)
        .transpose()?;
    let resume = args.resume.as_deref().map(checkpoint::load).transpose()?;
    let recorded = resume
        .as_ref()
        .map(Recorded::of)
        .transpose()?
        .unwrap_or_default();
    let dataset = choose_dataset(args.dataset, recorded.dataset)?;
    let dir = find_dataset_dir(dataset, args.data_dir.as_deref())?;
    let mut train = load_dataset(dataset, &dir, Split::Train)?;
    let mut test = load_dataset(dataset, &dir, Split::Test)?;
    for (split, data) in [("training", &train), ("test", &test)] {
        if data.is_empty() {
            return Err(Error::File {
                path: dir.clone(),
                message: format!(
                    "the {split} set of {} contains no images; give a folder with the full data set",
                    dataset.name()
                ),
            });
        }
    }
    if args.batch_size > train.len() && args.resume.is_none() {
        log::warn!(
            "--batch-size {} is larger than the {} training images, so every step takes all of them",
            args.batch_size,
            train.len()
        );
    }
    let normalization = match &resume {
        Some(_) => recorded.normalization.clone(),
        // Statistics of the training set only, applied to both sets.
        None if !args.no_normalize => Some(train.channel_mean_std()?),
        None => None,
    };
    if let Some(normalization) = &normalization {
        train.normalize(normalization)?;
        test.normalize(normalization)?;
    }
    let [channels, height, width] = train.image_shape();
    let classes = train.classes();
    let specs = match args.model {
        ModelChoice::Lenet => wgcnn::models::lenet(channels, height, width, classes),
        ModelChoice::LenetBn => wgcnn::models::lenet_bn(channels, height, width, classes),
    };
    let (kind, default_lr) = match args.optimizer {
        OptimizerChoice::Sgd => (
            OptimizerKind::Sgd(SgdConfig {
                momentum: args.momentum,
                weight_decay: args.weight_decay,
                ..SgdConfig::default()
            }),
            0.05,
        ),
        OptimizerChoice::Adam | OptimizerChoice::Adamw => (
            OptimizerKind::Adam(AdamConfig {
                weight_decay: args.weight_decay,
                decoupled: args.optimizer == OptimizerChoice::Adamw,
                ..AdamConfig::default()
            }),
            0.001,
        ),
    };
    let lr = args.lr.unwrap_or(default_lr);
    wgcnn::nn::optim::check_hyperparameters(&kind, lr)?;
    let mut config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        max_steps: args.max_steps,
        ..FitConfig::default()
    };
    let mut model_name = args
        .model
        .to_possible_value()
        .map_or_else(|| format!("{:?}", args.model), |v| v.get_name().to_string());
    if let Some(checkpoint) = &resume {
        if let Some(name) = &recorded.model {
            model_name = name.clone();
        }
        config.seed = checkpoint.seed;
        if let Some(batch_size) = recorded.batch_size {
            config.batch_size = batch_size;
        }
    }
    Ok(Job {
        train,
        test,
        specs,
        kind,
        lr,
        config,
        normalization,
        model_name,
        resume,
        dataset,
        metrics,
    })
}

/// Checks before any work that the checkpoint can be saved at `--save`, and that `--metrics`
/// names neither the `--save` nor the `--resume` file, which one write would replace.
fn check_output_paths(args: &TrainArgs) -> wgcnn::Result<()> {
    if let Some(path) = &args.save {
        checkpoint::check_save_path(path)?;
        checkpoint::check_save_folder_writable(path)?;
    }
    let Some(metrics) = &args.metrics else {
        return Ok(());
    };
    for (option, other) in [("--save", &args.save), ("--resume", &args.resume)] {
        if let Some(other) = other
            && super::same_file_path(metrics, other)
        {
            return Err(Error::invalid(
                "--metrics",
                format!(
                    "names the same file as {option}, {}, so one would overwrite the other; \
                     choose another path for --metrics",
                    other.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Creates (or truncates) the `--metrics` file.
///
/// # Errors
/// [`Error::File`] naming the path, the cause and what to change.
fn create_metrics_file(path: &Path) -> wgcnn::Result<BufWriter<File>> {
    File::create(path).map(BufWriter::new).map_err(|source| {
        let problem = match source.kind() {
            ErrorKind::NotFound => "its folder does not exist; create the folder or choose \
                                    another path"
                .to_string(),
            ErrorKind::IsADirectory => format!(
                "it is a folder; name a file, such as {}",
                path.join("metrics.jsonl").display()
            ),
            ErrorKind::NotADirectory => {
                "a part of the path is a file, not a folder; choose another path".to_string()
            }
            _ => format!("{source}; fix the permissions or choose another path"),
        };
        Error::File {
            path: path.to_path_buf(),
            message: format!("cannot write the metrics file (--metrics): {problem}"),
        }
    })
}

/// Chooses the data set: `requested` on the command line, else the one `checkpoint` recorded,
/// else Fashion-MNIST. A `requested` one that differs from the recorded one is an error, since MNIST and
/// Fashion-MNIST have the same shapes and the mix-up would otherwise go unnoticed.
pub fn choose_dataset(
    requested: Option<DatasetKind>,
    recorded: Option<DatasetKind>,
) -> wgcnn::Result<DatasetKind> {
    match (requested, recorded) {
        (Some(requested), Some(recorded)) if requested != recorded => Err(Error::invalid(
            "--dataset",
            format!(
                "{} differs from the data set the checkpoint was trained on, {}; \
                 drop --dataset or pass --dataset {}",
                requested.name(),
                recorded.name(),
                recorded.name()
            ),
        )),
        (Some(kind), _) | (None, Some(kind)) => Ok(kind),
        (None, None) => Ok(DatasetKind::FashionMnist),
    }
}

pub fn run(args: TrainArgs) -> wgcnn::Result<()> {
    let job = prepare(&args)?;
    match args.device {
        DeviceChoice::Cpu => train_on(&CpuBackend, "cpu", "cpu", &args, job),
        DeviceChoice::Gpu => {
            let options = super::gpu_options(args.backend, args.adapter.as_deref())?;
            let gpu = GpuBackend::new(&options)?;
            let context = gpu.context();
            if context.is_software() && !args.quiet {
                eprintln!(
                    "note: the adapter `{}` is a software implementation that runs on the CPU; \
                     on this machine `--device cpu` trains faster",
                    context.info.name
                );
            }
            let adapter = gpu.device_name();
            train_on(&gpu, "gpu", &adapter, &args, job)
        }
    }
}

/// Steps in the whole run: every epoch's batches, or `--max-steps` when smaller.
fn total_steps(job: &Job) -> u64 {
    let steps_per_epoch = job.train.len().div_ceil(job.config.batch_size) as u64;
    let total = steps_per_epoch * job.config.epochs as u64;
    job.config.max_steps.map_or(total, |max| total.min(max))
}

fn schedule(args: &TrainArgs, job: &Job) -> LrSchedule {
    let schedule = match args.schedule {
        ScheduleChoice::Cosine => LrSchedule::Cosine {
            total_steps: 0,
            min_lr: 0.0,
        },
        ScheduleChoice::Step => LrSchedule::Step {
            step_size: 0,
            gamma: 0.1,
        },
        ScheduleChoice::Constant => LrSchedule::Constant,
    };
    replan(schedule, total_steps(job))
}

/// The same kind of schedule fitted to `total_steps`: cosine annealing over all of them, or
/// step decay after each third.
fn replan(schedule: LrSchedule, total_steps: u64) -> LrSchedule {
    match schedule {
        LrSchedule::Cosine { min_lr, .. } => LrSchedule::Cosine {
            total_steps,
            min_lr,
        },
        LrSchedule::Step { gamma, .. } => LrSchedule::Step {
            step_size: (total_steps / 3).max(1),
            gamma,
        },
        LrSchedule::Constant => LrSchedule::Constant,
    }
}

/// The options recorded in checkpoints, which `--resume` and `wgcnn eval` read back.
fn training_record(job: &Job) -> serde_json::Value {
    serde_json::json!({
        "dataset": job.dataset.name(),
        "model": job.model_name,
        "epochs": job.config.epochs,
        "batch_size": job.config.batch_size,
        "seed": job.config.seed,
        "normalization": job.normalization.as_ref().map(|n| serde_json::json!({
            "mean": n.mean,
            "std": n.std,
        })),
    })
}

fn train_on<B: Backend>(
    backend: &B,
    device: &str,
    adapter: &str,
    args: &TrainArgs,
    mut job: Job,
) -> wgcnn::Result<()> {
    let input_shape = job.train.image_shape();
    let (mut model, mut optimizer) = match &job.resume {
        Some(checkpoint) => {
            let model = checkpoint.build_model(backend)?;
            let optimizer = checkpoint.build_optimizer(backend, &model)?.ok_or_else(|| {
                Error::File {
                    path: checkpoint.path().to_path_buf(),
                    message: "holds no optimizer state, so training cannot continue from it; \
                              evaluate it with `wgcnn eval --checkpoint`, or train anew without --resume"
                        .into(),
                }
            })?;
            if model.input_shape() != input_shape {
                return Err(Error::shape(
                    "--resume",
                    format!(
                        "the checkpoint's model expects images {:?}, but the data set has {input_shape:?}",
                        model.input_shape()
                    ),
                ));
            }
            // The schedule spans the new total of steps, so training longer than the first
            // run continues with a rate instead of ending at the old schedule's final rate.
            let mut optimizer = optimizer;
            optimizer.schedule = replan(optimizer.schedule, total_steps(&job));
            if !args.quiet {
                eprintln!(
                    "resuming from step {} (epoch {}) with the checkpoint's model, optimizer, seed and batch size",
                    optimizer.step, checkpoint.epoch
                );
            }
            (model, optimizer)
        }
        None => {
            let model = Model::new(backend, &input_shape, &job.specs, args.seed)?;
            let schedule = schedule(args, &job);
            let optimizer = Optimizer::new(backend, &model, job.kind, job.lr, schedule)?;
            (model, optimizer)
        }
    };
    if let Some(path) = &args.save {
        job.config.checkpoint = Some(CheckpointTarget {
            path: path.clone(),
            info: SaveInfo {
                epoch: 0,
                seed: job.config.seed,
                training: training_record(&job),
            },
        });
    }
    if args.profile {
        return print_profile(backend, &mut model, &mut optimizer, &job);
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    if let Err(error) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        log::warn!("Ctrl-C will stop training without a checkpoint: {error}");
    }
    job.config.interrupt = Some(interrupt);
    if !args.quiet {
        eprintln!(
            "training {} ({} parameters) on {} images, testing on {}, device {device} ({adapter})",
            job.model_name,
            model.parameter_count(),
            job.train.len(),
            job.test.len()
        );
    }

    let mut metrics_file = job.metrics.take();
    let bar = ProgressBar::new(0);
    if args.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );

    let epochs = job.config.epochs;
    let mut write_error = None;
    let history = fit(
        backend,
        &mut model,
        &mut optimizer,
        &job.train,
        Some(&job.test),
        &job.config,
        |progress| {
            match progress {
                Progress::Step {
                    epoch,
                    batch,
                    batches_per_epoch,
                    loss,
                    images_per_second,
                    ..
                } => {
                    if batch == 0 {
                        bar.reset();
                        bar.set_length(batches_per_epoch as u64);
                        bar.set_prefix(format!("{epoch}/{epochs}"));
                    }
                    bar.set_position(batch as u64 + 1);
                    bar.set_message(format!("loss {loss:.4}, {images_per_second:.0} images/s"));
                }
                Progress::Epoch(metrics) => {
                    bar.finish_and_clear();
                    if !args.quiet {
                        println!("{}", summary_line(metrics, epochs));
                    }
                    if let Some(file) = metrics_file.as_mut()
                        && let Err(error) = write_metrics(file, metrics, device, adapter)
                    {
                        write_error = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    if let (Some(error), Some(path)) = (write_error, &args.metrics) {
        return Err(Error::Io {
            path: path.clone(),
            source: error,
        });
    }
    match history.last() {
        Some(last) => println!("test accuracy: {:.4}", last.test_accuracy),
        None => eprintln!(
            "nothing to train: the checkpoint is already at step {}, which --epochs {} or --max-steps reaches; raise them to train longer",
            optimizer.step, job.config.epochs
        ),
    }
    Ok(())
}

fn summary_line(metrics: &EpochMetrics, epochs: usize) -> String {
    format!(
        "epoch {}/{epochs}: train loss {:.4}, train accuracy {:.4}, test loss {:.4}, test accuracy {:.4}, {:.0} images/s, {:.1} s",
        metrics.epoch,
        metrics.train_loss,
        metrics.train_accuracy,
        metrics.test_loss,
        metrics.test_accuracy,
        metrics.images_per_second,
        metrics.seconds
    )
}

fn write_metrics(
    file: &mut BufWriter<File>,
    metrics: &EpochMetrics,
    device: &str,
    adapter: &str,
) -> std::io::Result<()> {
    let line = serde_json::json!({
        "epoch": metrics.epoch,
        "train_loss": metrics.train_loss,
        "train_accuracy": metrics.train_accuracy,
        "test_loss": metrics.test_loss,
        "test_accuracy": metrics.test_accuracy,
        "images_per_second": metrics.images_per_second,
        "seconds": metrics.seconds,
        "device": device,
        "adapter": adapter,
    });
    writeln!(file, "{line}")?;
    file.flush()
}

/// Profiles 5 training steps after 3 untimed ones and prints the median time of each layer
/// and phase.
fn print_profile<B: Backend>(
    backend: &B,
    model: &mut Model<B>,
    optimizer: &mut Optimizer<B>,
    job: &Job,
) -> wgcnn::Result<()> {
    let batch_size = job.config.batch_size.min(job.train.len());
    let indices: Vec<usize> = (0..batch_size).collect();
    let mut trainer = wgcnn::train::Trainer::new();
    for _ in 0..3 {
        trainer.train_step(backend, model, optimizer, &job.train, &indices)?;
    }
    let runs: Vec<Vec<wgcnn::train::ProfileRow>> = (0..5)
        .map(|_| trainer.profile_step(backend, model, optimizer, &job.train, &indices))
        .collect::<wgcnn::Result<_>>()?;
    let medians: Vec<f64> = (0..runs[0].len())
        .map(|row| {
            let mut samples: Vec<f64> = runs.iter().map(|run| run[row].seconds).collect();
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect();
    let total: f64 = medians.iter().sum();
    println!(
        "profile of one training step at batch {batch_size} on {} (median of 5, waits after every row)",
        backend.device_name()
    );
    println!(
        "{:<10} {:<18} {:>10} {:>7}",
        "phase", "layer", "ms", "share"
    );
    for (row, seconds) in runs[0].iter().zip(&medians) {
        println!(
            "{:<10} {:<18} {:>10.3} {:>6.1}%",
            row.phase,
            row.layer,
            seconds * 1e3,
            100.0 * seconds / total
        );
    }
    println!("{:<10} {:<18} {:>10.3}", "total", "", total * 1e3);

    let mut shares = Vec::new();
    for _ in 0..5 {
        match trainer.kernel_share(backend, model, optimizer, &job.train, &indices)? {
            Some(share) => shares.push(share),
            None => break,
        }
    }
    if shares.is_empty() {
        println!("kernel time: not measurable on this device (no timestamp queries)");
        return Ok(());
    }
    shares.sort_by(|a, b| a.step_seconds.total_cmp(&b.step_seconds));
    let share = &shares[shares.len() / 2];
    println!(
        "ordinary step (median of {}): {:.3} ms wall, {:.3} ms in {} kernels (timestamp queries), {:.1}% outside kernels",
        shares.len(),
        share.step_seconds * 1e3,
        share.kernel_seconds * 1e3,
        share.dispatches,
        100.0 * (1.0 - share.kernel_seconds / share.step_seconds)
    );
    Ok(())
}
