//! Checkpoints: round trips, atomic saves, rejected files, resume, interrupts and divergence.

mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::small::{small_data, small_specs};
use common::{gpu_backends, rng};
use wgcnn::checkpoint::{self, SaveInfo};
use wgcnn::data::Dataset;
use wgcnn::nn::{LayerSpec, LrSchedule, Model, Optimizer, OptimizerKind};
use wgcnn::train::{CheckpointTarget, FitConfig, fit};
use wgcnn::{AdamConfig, Backend, CpuBackend, Error, SgdConfig};

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let unique = format!(
            "wgcnn-{test}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn adam() -> OptimizerKind {
    OptimizerKind::Adam(AdamConfig::default())
}

fn momentum_sgd() -> OptimizerKind {
    OptimizerKind::Sgd(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    })
}

fn new_run<B: Backend>(backend: &B, kind: OptimizerKind) -> (Model<B>, Optimizer<B>) {
    let model = Model::new(backend, &[2, 7, 7], &small_specs(), 5).unwrap();
    let optimizer = Optimizer::new(backend, &model, kind, 0.02, LrSchedule::Constant).unwrap();
    (model, optimizer)
}

fn config(epochs: usize) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 6,
        seed: 11,
        ..FitConfig::default()
    }
}

fn train<B: Backend>(
    backend: &B,
    model: &mut Model<B>,
    optimizer: &mut Optimizer<B>,
    data: &Dataset,
    config: &FitConfig,
) -> wgcnn::Result<()> {
    fit(backend, model, optimizer, data, None, config, |_| {
        ControlFlow::Continue(())
    })
    .map(|_| ())
}

fn tensors<B: Backend>(backend: &B, model: &Model<B>) -> HashMap<String, Vec<u32>> {
    model
        .named_tensors()
        .into_iter()
        .map(|(name, t)| {
            (
                name,
                backend
                    .read(t)
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn checkpoint_round_trip_restores_everything() {
    let mut rng = rng("checkpoint_round_trip_restores_everything");
    let data = small_data(&mut rng, 18);
    let dir = TempDir::new("round-trip");
    let path = dir.join("model.safetensors");
    let cpu = CpuBackend;
    let (mut model, mut optimizer) = new_run(&cpu, adam());
    train(&cpu, &mut model, &mut optimizer, &data, &config(1)).unwrap();
    let info = SaveInfo {
        epoch: 1,
        seed: 11,
        training: serde_json::json!({"batch_size": 6}),
    };
    checkpoint::save(&path, &cpu, &model, Some(&optimizer), &info).unwrap();

    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.epoch, 1);
    assert_eq!(loaded.step, optimizer.step);
    assert_eq!(loaded.architecture, small_specs());
    assert_eq!(loaded.training["batch_size"], 6);
    let restored = loaded.build_model(&cpu).unwrap();
    assert_eq!(tensors(&cpu, &restored), tensors(&cpu, &model));
    let restored_optimizer = loaded.build_optimizer(&cpu, &restored).unwrap().unwrap();
    assert_eq!(restored_optimizer.step, optimizer.step);
    assert_eq!(restored_optimizer.kind, optimizer.kind);
    for (a, b) in restored_optimizer
        .state
        .iter()
        .flatten()
        .zip(optimizer.state.iter().flatten())
    {
        assert_eq!(a.first, b.first);
        assert_eq!(a.second, b.second);
    }
}

#[test]
fn save_interrupted_before_rename_keeps_old_checkpoint() {
    let dir = TempDir::new("interrupted-save");
    let path = dir.join("model.safetensors");
    let cpu = CpuBackend;
    let (model, optimizer) = new_run(&cpu, momentum_sgd());
    checkpoint::save(&path, &cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();
    let before = std::fs::read(&path).unwrap();

    // The second save stops after writing its temporary file, as a crash would.
    let newer = SaveInfo {
        epoch: 7,
        ..SaveInfo::default()
    };
    let bytes = checkpoint::to_bytes(&cpu, &model, Some(&optimizer), &newer).unwrap();
    let temporary = checkpoint::write_temporary(&path, &bytes[..bytes.len() / 2]).unwrap();

    assert!(temporary.exists());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(checkpoint::load(&path).unwrap().epoch, 0);
}

#[test]
fn failed_replace_reports_nothing_saved() {
    let dir = TempDir::new("failed-replace");
    // A non-empty folder cannot be replaced by a rename, as an immutable file cannot.
    let target = dir.join("model.safetensors");
    std::fs::create_dir_all(target.join("inside")).unwrap();
    let temporary = checkpoint::write_temporary(&target, b"bytes").unwrap();

    let error = checkpoint::commit_temporary(&temporary, &target).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(message.contains("was not saved"), "{message}");
    assert!(message.contains("is unchanged"), "{message}");
    assert!(message.contains("another --save path"), "{message}");
    assert!(!temporary.exists(), "the temporary file was left behind");
    assert!(target.join("inside").is_dir());
}

#[test]
fn save_path_under_a_file_is_named() {
    let dir = TempDir::new("save-under-file");
    let file = dir.join("file.txt");
    std::fs::write(&file, b"text").unwrap();

    let error = checkpoint::check_save_path(&file.join("model.safetensors")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("is a file, not a folder"), "{message}");
    assert!(!message.contains("does not exist"), "{message}");
}

#[test]
fn save_folder_probe_leaves_no_file() {
    let dir = TempDir::new("save-probe");
    let path = dir.join("model.safetensors");

    checkpoint::check_save_folder_writable(&path).unwrap();
    let entries: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert!(entries.is_empty(), "the probe left {entries:?}");
}

/// /proc rejects new files even for root, which ignores permission bits.
#[cfg(target_os = "linux")]
#[test]
fn save_folder_probe_rejects_proc() {
    let error =
        checkpoint::check_save_folder_writable(std::path::Path::new("/proc/model.st")).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("creating a file in /proc failed"),
        "{message}"
    );
    assert!(message.contains("--save"), "{message}");
}

#[test]
fn failed_save_reports_path_and_keeps_old_checkpoint() {
    let dir = TempDir::new("failed-save");
    let path = dir.join("model.safetensors");
    let cpu = CpuBackend;
    let (model, optimizer) = new_run(&cpu, momentum_sgd());
    checkpoint::save(&path, &cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();
    let before = std::fs::read(&path).unwrap();

    // A folder in place of the file is rejected before anything is written, and a folder
    // that does not exist fails the write of the temporary file.
    let blocked = dir.join("blocked");
    std::fs::create_dir_all(blocked.join("inside")).unwrap();
    let error = checkpoint::save(&blocked, &cpu, &model, None, &SaveInfo::default()).unwrap_err();
    assert!(matches!(error, Error::File { .. }), "{error}");
    assert!(error.to_string().contains("blocked"), "{error}");
    assert!(blocked.join("inside").is_dir());
    let missing = dir.join("missing").join("model.safetensors");
    let error = checkpoint::write_temporary(&missing, b"bytes").unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
    assert!(error.to_string().contains("unchanged"), "{error}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn checkpoint_of_other_architecture_is_rejected() {
    let dir = TempDir::new("architecture");
    let path = dir.join("model.safetensors");
    let cpu = CpuBackend;
    let (model, optimizer) = new_run(&cpu, momentum_sgd());
    checkpoint::save(&path, &cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();

    let mut specs = small_specs();
    specs[5] = LayerSpec::linear(18, 6);
    specs[7] = LayerSpec::linear(6, 4);
    let mut other = Model::new(&cpu, &[2, 7, 7], &specs, 0).unwrap();
    let error = checkpoint::load(&path)
        .unwrap()
        .restore_model(&cpu, &mut other)
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("model.5.weight"), "{message}");
    assert!(
        message.contains("[5, 18]") && message.contains("[6, 18]"),
        "{message}"
    );
}

#[test]
fn truncated_and_corrupt_checkpoints_are_rejected() {
    let cpu = CpuBackend;
    let (model, optimizer) = new_run(&cpu, momentum_sgd());
    let bytes = checkpoint::to_bytes(&cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();
    let path = std::path::Path::new("model.safetensors");
    for cut in [0, 4, 8, 100, bytes.len() - 1] {
        let error = checkpoint::from_bytes(path, &bytes[..cut]).unwrap_err();
        assert!(matches!(error, Error::File { .. }), "cut at {cut}: {error}");
        assert!(error.to_string().contains("model.safetensors"), "{error}");
    }
    let mut flipped = bytes.clone();
    flipped[10] ^= 0xff;
    assert!(checkpoint::from_bytes(path, &flipped).is_err());
}

#[test]
fn checkpoint_with_non_finite_values_is_rejected() {
    let cpu = CpuBackend;
    for bad in [f32::NAN, f32::INFINITY] {
        let (mut model, optimizer) = new_run(&cpu, momentum_sgd());
        // `to_bytes` refuses non-finite values, so a finite marker is written and replaced.
        let marker = 12345.678_f32;
        let (name, weight) = model.named_tensors_mut().into_iter().next().unwrap();
        weight.as_slice_mut().unwrap()[3] = marker;
        let mut bytes =
            checkpoint::to_bytes(&cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();
        let at = bytes
            .windows(4)
            .position(|window| window == marker.to_le_bytes())
            .expect("the marker is stored");
        bytes[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        let error =
            checkpoint::from_bytes(std::path::Path::new("bad.safetensors"), &bytes).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::File { .. }), "{message}");
        assert!(
            message.contains(&format!("`model.{name}` holds {bad} at index 3")),
            "{message}"
        );
    }
}

#[test]
fn schedules_of_zero_length_are_rejected() {
    let cpu = CpuBackend;
    let model = Model::new(&cpu, &[2, 7, 7], &small_specs(), 5).unwrap();
    for (schedule, name) in [
        (
            LrSchedule::Step {
                step_size: 0,
                gamma: 0.1,
            },
            "step size",
        ),
        (
            LrSchedule::Cosine {
                total_steps: 0,
                min_lr: 0.0,
            },
            "cosine schedule length",
        ),
        (
            LrSchedule::Cosine {
                total_steps: 10,
                min_lr: f32::NAN,
            },
            "minimum learning rate",
        ),
    ] {
        let Err(error) = Optimizer::new(&cpu, &model, momentum_sgd(), 0.1, schedule) else {
            panic!("{schedule:?} was accepted");
        };
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn checkpoint_from_newer_format_is_rejected() {
    let cpu = CpuBackend;
    let (model, _) = new_run(&cpu, momentum_sgd());
    let bytes = checkpoint::to_bytes(&cpu, &model, None, &SaveInfo::default()).unwrap();
    // Rewrite the version inside the JSON header in place, keeping every length.
    let pattern = b"\"format_version\":\"1\"";
    let at = bytes
        .windows(pattern.len())
        .position(|window| window == pattern)
        .expect("the header holds format_version 1");
    let mut newer = bytes.clone();
    newer[at + pattern.len() - 2] = b'9';
    let error =
        checkpoint::from_bytes(std::path::Path::new("new.safetensors"), &newer).unwrap_err();
    assert!(error.to_string().contains("newer"), "{error}");
}

/// Trains 3 epochs straight, and again stopped after 5 steps, saved, and resumed from the
/// checkpoint; the two must end with the same bits.
fn check_resume_matches<B: Backend>(backend: &B, data: &Dataset, dir: &TempDir) {
    let (mut model, mut optimizer) = new_run(backend, adam());
    train(backend, &mut model, &mut optimizer, data, &config(3)).unwrap();
    let straight = tensors(backend, &model);

    let path = dir.join(&format!(
        "resume-{}.safetensors",
        backend.device_name().len()
    ));
    let (mut model, mut optimizer) = new_run(backend, adam());
    let mut first_part = config(3);
    first_part.max_steps = Some(5);
    first_part.checkpoint = Some(CheckpointTarget {
        path: path.clone(),
        info: SaveInfo::default(),
    });
    train(backend, &mut model, &mut optimizer, data, &first_part).unwrap();
    drop((model, optimizer));

    let checkpoint = checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.step, 5);
    let mut model = checkpoint.build_model(backend).unwrap();
    let mut optimizer = checkpoint
        .build_optimizer(backend, &model)
        .unwrap()
        .unwrap();
    train(backend, &mut model, &mut optimizer, data, &config(3)).unwrap();
    assert_eq!(
        tensors(backend, &model),
        straight,
        "resumed run differs on {}",
        backend.device_name()
    );
}

#[test]
fn resumed_training_matches_uninterrupted_run() {
    let mut rng = rng("resumed_training_matches_uninterrupted_run");
    let data = small_data(&mut rng, 20);
    let dir = TempDir::new("resume");
    check_resume_matches(&CpuBackend, &data, &dir);
    for gpu in gpu_backends() {
        check_resume_matches(&gpu, &data, &dir);
    }
}

#[test]
fn interrupt_saves_checkpoint_and_returns_error() {
    let mut rng = rng("interrupt_saves_checkpoint_and_returns_error");
    let data = small_data(&mut rng, 20);
    let dir = TempDir::new("interrupt");
    let path = dir.join("model.safetensors");
    let cpu = CpuBackend;
    let (mut model, mut optimizer) = new_run(&cpu, momentum_sgd());
    let mut settings = config(2);
    settings.interrupt = Some(Arc::new(AtomicBool::new(true)));
    settings.checkpoint = Some(CheckpointTarget {
        path: path.clone(),
        info: SaveInfo::default(),
    });
    let error = train(&cpu, &mut model, &mut optimizer, &data, &settings).unwrap_err();
    assert!(
        matches!(error, Error::Interrupted { step: 1, .. }),
        "{error}"
    );
    assert_eq!(checkpoint::load(&path).unwrap().step, 1);
}

#[test]
fn diverging_training_names_step_and_layer() {
    let mut rng = rng("diverging_training_names_step_and_layer");
    let data = small_data(&mut rng, 20);
    let cpu = CpuBackend;
    let model_specs = small_specs();
    let mut model = Model::new(&cpu, &[2, 7, 7], &model_specs, 5).unwrap();
    let kind = momentum_sgd();
    let mut optimizer = Optimizer::new(&cpu, &model, kind, 1e30, LrSchedule::Constant).unwrap();
    let error = train(&cpu, &mut model, &mut optimizer, &data, &config(3)).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::NonFinite { .. }), "{message}");
    assert!(message.contains("step"), "{message}");
    assert!(message.contains("layer"), "{message}");
    assert!(message.contains("--lr"), "{message}");
}

#[test]
fn save_rejects_non_finite_parameters() {
    let dir = TempDir::new("save-non-finite");
    let path = dir.join("model.safetensors");
    let cpu = CpuBackend;
    let (mut model, optimizer) = new_run(&cpu, momentum_sgd());
    checkpoint::save(&path, &cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();
    let before = std::fs::read(&path).unwrap();

    let (name, weight) = model.named_tensors_mut().into_iter().next().unwrap();
    weight.as_slice_mut().unwrap()[0] = f32::NAN;
    let error =
        checkpoint::save(&path, &cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::NonFinite { .. }), "{message}");
    assert!(message.contains(&format!("`model.{name}`")), "{message}");
    assert!(message.contains("--lr"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old checkpoint changed"
    );
    checkpoint::load(&path).unwrap();
}

/// A device or a FIFO given as a checkpoint would be read forever or until memory runs out.
#[cfg(unix)]
#[test]
fn checkpoints_that_are_not_regular_files_are_rejected() {
    let dir = TempDir::new("not-regular");
    let fifo = dir.join("fifo.safetensors");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    for path in [PathBuf::from("/dev/zero"), fifo, dir.0.clone()] {
        let error = checkpoint::load(&path).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::File { .. }), "{message}");
        assert!(message.contains("not a regular file"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

#[test]
fn malformed_training_record_is_rejected() {
    let cpu = CpuBackend;
    let (model, _) = new_run(&cpu, momentum_sgd());
    let bytes = checkpoint::to_bytes(&cpu, &model, None, &SaveInfo::default()).unwrap();
    // Break the JSON of the recorded options in place, keeping every length.
    let pattern = b"\"training\":\"null\"";
    let at = bytes
        .windows(pattern.len())
        .position(|window| window == pattern)
        .expect("the header records no training options as null");
    let mut broken = bytes.clone();
    broken[at + pattern.len() - 2] = b'!';
    let path = std::path::Path::new("broken.safetensors");
    let error = checkpoint::from_bytes(path, &broken).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::File { .. }), "{message}");
    assert!(message.contains("`training`"), "{message}");
    assert!(message.contains("broken.safetensors"), "{message}");
}

#[test]
fn invalid_recorded_optimizer_settings_name_the_file() {
    let cpu = CpuBackend;
    let (model, optimizer) = new_run(&cpu, momentum_sgd());
    let bytes = checkpoint::to_bytes(&cpu, &model, Some(&optimizer), &SaveInfo::default()).unwrap();
    // A negative learning rate, -0.2 written over the stored 0.02.
    let pattern = b"\\\"base_lr\\\":";
    let at = bytes
        .windows(pattern.len())
        .position(|window| window == pattern)
        .expect("the header records base_lr");
    let mut bad = bytes.clone();
    let value = at + pattern.len();
    assert_eq!(&bad[value..value + 4], b"0.02");
    bad[value..value + 4].copy_from_slice(b"-0.2");
    let path = std::path::Path::new("bad-lr.safetensors");
    let checkpoint = checkpoint::from_bytes(path, &bad).unwrap();
    let model = checkpoint.build_model(&cpu).unwrap();
    let Err(error) = checkpoint.build_optimizer(&cpu, &model) else {
        panic!("a negative learning rate was accepted");
    };
    let message = error.to_string();
    assert!(matches!(error, Error::File { .. }), "{message}");
    assert!(message.contains("bad-lr.safetensors"), "{message}");
    assert!(message.contains("learning rate"), "{message}");
}

#[test]
fn invalid_recorded_architecture_names_the_file() {
    let cpu = CpuBackend;
    let (model, _) = new_run(&cpu, momentum_sgd());
    let bytes = checkpoint::to_bytes(&cpu, &model, None, &SaveInfo::default()).unwrap();
    // The first convolution takes the 2 input channels; 9 no longer fits the input shape.
    let pattern = b"\\\"in_channels\\\":2";
    let at = bytes
        .windows(pattern.len())
        .position(|window| window == pattern)
        .expect("the header records in_channels 2");
    let mut bad = bytes.clone();
    bad[at + pattern.len() - 1] = b'9';
    let path = std::path::Path::new("bad-architecture.safetensors");
    let checkpoint = checkpoint::from_bytes(path, &bad).unwrap();
    let Err(error) = checkpoint.build_model(&cpu) else {
        panic!("an architecture that does not fit its input was accepted");
    };
    let message = error.to_string();
    assert!(matches!(error, Error::File { .. }), "{message}");
    assert!(
        message.contains("bad-architecture.safetensors"),
        "{message}"
    );
    assert!(message.contains("corrupt"), "{message}");
}
