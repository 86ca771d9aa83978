//! The command line rejects bad input with a one-paragraph error and a failure status, never
//! a panic. A short run on the test slice also works end to end.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn wgcnn(args: &[&str]) -> Output {
    wgcnn_with_env(args, &[])
}

/// Runs wgcnn with the environment variables `env` set in addition to the inherited ones.
fn wgcnn_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the wgcnn binary runs")
}

fn slice_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fashion-mnist-slice")
        .display()
        .to_string()
}

/// Asserts a failure whose stderr mentions `expected` and contains no panic or backtrace.
fn assert_rejected(args: &[&str], expected: &str) {
    assert_rejected_with_env(args, &[], expected);
}

/// As [`assert_rejected`], with the environment variables `env` set.
fn assert_rejected_with_env(args: &[&str], env: &[(&str, &str)], expected: &str) {
    let output = wgcnn_with_env(args, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{args:?}: expected `{expected}` in: {stderr}"
    );
}

#[test]
fn train_rejects_bad_options() {
    let data = slice_dir();
    let base = ["train", "--device", "cpu", "--data-dir", data.as_str()];
    let cases: [(&[&str], &str); 9] = [
        (&["--batch-size", "0"], "--batch-size"),
        (&["--epochs", "0"], "--epochs"),
        (
            &["--lr", "-1"],
            "learning rate (--lr) must be a positive finite number, such as 0.01; got -1",
        ),
        (&["--lr", "0"], "learning rate (--lr) must be"),
        (
            &["--momentum", "1.5"],
            "momentum (--momentum) must be in [0, 1); got 1.5",
        ),
        (
            &["--weight-decay", "-0.5"],
            "weight decay (--weight-decay) must be 0 or a positive finite number; got -0.5",
        ),
        (&["--backend", "foo"], "unknown backend"),
        (&["--dataset", "imagenet"], "imagenet"),
        (&["--max-steps", "0"], "--max-steps"),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_rejected(&args, expected);
    }
}

#[test]
fn counts_reject_negative_and_zero() {
    let cases: [(&[&str], &str, &str); 7] = [
        (&["train"], "--batch-size", "at least 1, such as 64"),
        (&["train"], "--epochs", "at least 1, such as 5"),
        (&["train"], "--max-steps", "at least 1, such as 1000"),
        (
            &["eval", "--checkpoint", "model.safetensors"],
            "--batch-size",
            "at least 1, such as 500",
        ),
        (&["bench"], "--steps", "at least 1, such as 50"),
        (&["bench"], "--runs", "at least 1, such as 10"),
        (&["train"], "--seed", "at least 0, such as 42"),
    ];
    for (command, option, rule) in cases {
        let values: &[&str] = if option == "--seed" {
            &["-5"]
        } else {
            &["-1", "0"]
        };
        for value in values {
            let args: Vec<&str> = command.iter().copied().chain([option, value]).collect();
            let output = wgcnn(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("'{value}' for '{option} ")),
                "{args:?} names no option and value: {stderr}"
            );
            assert!(
                stderr.contains(&format!("must be a whole number of {rule}")),
                "{args:?} gives no fix: {stderr}"
            );
        }
    }
}

#[test]
fn gpu_timeout_suggests_the_default() {
    assert_rejected_with_env(
        &["bench", "--device", "gpu"],
        &[("WGCNN_GPU_TIMEOUT", "soon")],
        "WGCNN_GPU_TIMEOUT must be a positive number of seconds, such as 300 (the default); got `soon`",
    );
}

#[test]
fn unknown_env_backend_names_variable() {
    assert_rejected_with_env(
        &["bench", "--device", "gpu"],
        &[("WGCNN_BACKEND", "foo")],
        "WGCNN_BACKEND is `foo`, an unknown backend",
    );
}

/// Metal exists only on Apple platforms, so elsewhere `--backend metal` finds no adapter.
#[cfg(not(target_vendor = "apple"))]
#[test]
fn devices_fails_for_backend_without_adapters() {
    let output = wgcnn(&["devices", "--backend", "metal"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--backend metal"), "{stderr}");
}

#[test]
fn unmatched_adapter_filter_lists_adapters() {
    // `wgcnn devices` fails when the machine has no adapter at all; then install advice is
    // the right fix.
    let machine_has_adapters = wgcnn(&["devices"]).status.success();
    let filter = "no-such-adapter-xyz";
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], String);
    let cases: [Case; 2] = [
        (
            &["bench", "--device", "gpu", "--adapter", filter],
            &[],
            format!("--adapter `{filter}`"),
        ),
        (
            &["bench", "--device", "gpu"],
            &[("WGCNN_ADAPTER", filter)],
            format!("WGCNN_ADAPTER `{filter}`"),
        ),
    ];
    for (args, env, setting) in cases {
        let output = wgcnn_with_env(args, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(&setting), "{args:?} {env:?}: {stderr}");
        if machine_has_adapters {
            assert!(
                stderr.contains("the adapters found are"),
                "{args:?} {env:?}: {stderr}"
            );
            assert!(!stderr.contains("apt-get"), "{args:?} {env:?}: {stderr}");
        } else {
            assert!(stderr.contains("apt-get"), "{args:?} {env:?}: {stderr}");
        }
    }
}

#[test]
fn train_rejects_unsafe_save_paths_before_training() {
    let data = slice_dir();
    let base = [
        "train",
        "--device",
        "cpu",
        "--data-dir",
        data.as_str(),
        "--save",
    ];
    let under_file = format!("{data}/train-images-idx3-ubyte.gz/model.safetensors");
    let cases: [(&str, &str); 4] = [
        ("/dev/null", "not a regular file"),
        ("/nonexistent-folder/model.safetensors", "does not exist"),
        ("/tmp", "not a regular file"),
        (&under_file, "is a file, not a folder"),
    ];
    for (path, expected) in cases {
        let args: Vec<&str> = base.iter().copied().chain([path]).collect();
        assert_rejected(&args, expected);
    }
}

/// /proc rejects new files even for root, so the folder probe fails there.
#[cfg(target_os = "linux")]
#[test]
fn unwritable_save_folder_fails_before_training() {
    let data = slice_dir();
    let output = wgcnn(&[
        "train",
        "--device",
        "cpu",
        "--data-dir",
        &data,
        "--max-steps",
        "3",
        "--save",
        "/proc/model.safetensors",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("creating a file in /proc failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("training lenet"),
        "training started: {stderr}"
    );
}

#[test]
fn file_options_name_option_and_problem() {
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let folder = dir.display().to_string();
    let missing = dir.join("missing.safetensors").display().to_string();
    // The data folder does not exist, so only a check made before loading data can report
    // the --metrics problem.
    let base = [
        "train",
        "--device",
        "cpu",
        "--data-dir",
        "/nonexistent/data",
    ];
    let cases: [(&[&str], &str); 5] = [
        (
            &["--metrics", "/nonexistent/dir/m.jsonl"],
            "cannot write the metrics file (--metrics): its folder does not exist",
        ),
        (
            &["--metrics", &folder],
            "cannot write the metrics file (--metrics): it is a folder",
        ),
        (
            &["--resume", &missing],
            "the checkpoint file given to --resume does not exist",
        ),
        (
            &["--resume", &folder],
            "the checkpoint given to --resume is a folder",
        ),
        (
            &["--resume", "/dev/null"],
            "the checkpoint given to --resume is not a regular file",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_rejected(&args, expected);
    }
    assert_rejected(
        &["eval", "--device", "cpu", "--checkpoint", &folder],
        "the checkpoint given to --checkpoint is a folder",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn metrics_rejects_save_and_resume_paths() {
    let data = slice_dir();
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-same-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let path = dir.join("out").display().to_string();
    let dotted = dir.join(".").join("out").display().to_string();
    let parent = dir.join("sub").join("..").join("out").display().to_string();
    let base = ["train", "--device", "cpu", "--data-dir", data.as_str()];
    let cases: [(&str, &str, &str); 3] = [
        ("--save", &path, &path),
        ("--save", &path, &dotted),
        ("--save", &path, &parent),
    ];
    for (option, other, metrics) in cases {
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain([option, other, "--metrics", metrics])
            .collect();
        assert_rejected(&args, "--metrics names the same file as --save");
    }
    std::fs::write(&path, b"a checkpoint").unwrap();
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--resume", &path, "--metrics", &dotted])
        .collect();
    assert_rejected(&args, "--metrics names the same file as --resume");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"a checkpoint",
        "--metrics truncated the checkpoint"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_matches_the_searched_folders() {
    for command in ["train", "eval"] {
        let output = wgcnn(&[command, "--help"]);
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}: {help}");
        for expected in [
            "--data-dir <DIR>",
            "./data/mnist",
            "./data/cifar-10",
            "/usr/share/datasets/fashion-mnist",
            "- fashion-mnist:",
            "- mnist:",
            "- cifar10:",
        ] {
            assert!(
                help.contains(expected),
                "{command} lacks `{expected}`: {help}"
            );
        }
        assert!(!help.contains("<dataset>"), "{command}: {help}");
    }
    let train = String::from_utf8_lossy(&wgcnn(&["train", "--help"]).stdout).into_owned();
    for expected in ["--save <FILE>", "--metrics <FILE>", "--resume <FILE>"] {
        assert!(
            train.contains(expected),
            "train lacks `{expected}`: {train}"
        );
    }
    let eval = String::from_utf8_lossy(&wgcnn(&["eval", "--help"]).stdout).into_owned();
    assert!(eval.contains("--checkpoint <FILE>"), "{eval}");
}

#[test]
fn unknown_dataset_lists_possible_values() {
    let output = wgcnn(&["train", "--dataset", "imagenet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[possible values: fashion-mnist, mnist, cifar10]"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("invalid value").count(), 1, "{stderr}");
}

#[test]
fn bench_rejects_zero_steps() {
    assert_rejected(&["bench", "--device", "cpu", "--steps", "0"], "--steps");
}

#[test]
fn bench_rejects_filter_that_matches_nothing() {
    assert_rejected(
        &["bench", "--device", "cpu", "--filter", "no-such-op"],
        "`no-such-op` is part of no benchmark's name",
    );
}

#[test]
fn train_names_missing_data_and_how_to_get_it() {
    assert_rejected(
        &[
            "train",
            "--device",
            "cpu",
            "--data-dir",
            "/nonexistent/wgcnn-data",
        ],
        "dataset-fashion-mnist",
    );
}

#[test]
fn train_rejects_corrupt_data_file() {
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(Path::new(&slice_dir()).join(name), dir.join(name)).unwrap();
    }
    // A gzip header followed by garbage.
    std::fs::write(
        dir.join("train-images-idx3-ubyte.gz"),
        [0x1f, 0x8b, 8, 0, 1, 2, 3],
    )
    .unwrap();
    let dir_text = dir.display().to_string();
    assert_rejected(
        &["train", "--device", "cpu", "--data-dir", &dir_text],
        "train-images-idx3-ubyte.gz",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn eval_rejects_missing_and_corrupt_checkpoints() {
    assert_rejected(
        &[
            "eval",
            "--device",
            "cpu",
            "--checkpoint",
            "/nonexistent/model.safetensors",
        ],
        "/nonexistent/model.safetensors",
    );
    let path =
        std::env::temp_dir().join(format!("wgcnn-cli-bad-{}.safetensors", std::process::id()));
    std::fs::write(&path, b"not a checkpoint at all").unwrap();
    let text = path.display().to_string();
    assert_rejected(
        &["eval", "--device", "cpu", "--checkpoint", &text],
        "safetensors",
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn short_cpu_run_saves_and_evaluates() {
    let data = slice_dir();
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("model.safetensors").display().to_string();
    let metrics = dir.join("metrics.jsonl").display().to_string();
    let output = wgcnn(&[
        "train",
        "--device",
        "cpu",
        "--data-dir",
        &data,
        "--max-steps",
        "5",
        "--quiet",
        "--save",
        &checkpoint,
        "--metrics",
        &metrics,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("test accuracy"), "{stdout}");

    let line = std::fs::read_to_string(&metrics).unwrap();
    let record: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    for key in [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "images_per_second",
        "seconds",
        "device",
        "adapter",
    ] {
        assert!(
            record.get(key).is_some(),
            "metrics line lacks `{key}`: {line}"
        );
    }

    let output = wgcnn(&[
        "eval",
        "--device",
        "cpu",
        "--data-dir",
        &data,
        "--checkpoint",
        &checkpoint,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("test accuracy"));

    // MNIST has Fashion-MNIST's shapes, so only the recorded name can catch the mix-up.
    let output = wgcnn(&[
        "eval",
        "--device",
        "cpu",
        "--dataset",
        "mnist",
        "--data-dir",
        &data,
        "--checkpoint",
        &checkpoint,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "eval on another data set passed");
    assert!(
        stderr.contains("mnist differs") && stderr.contains("--dataset fashion-mnist"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resume_rejects_options_that_the_checkpoint_fixes() {
    for (option, value) in [
        ("--model", "lenet-bn"),
        ("--batch-size", "32"),
        ("--lr", "0.1"),
        ("--optimizer", "adam"),
        ("--seed", "3"),
    ] {
        let output = wgcnn(&["train", "--resume", "some.safetensors", option, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option}: {stderr}");
        assert!(
            stderr.contains("--resume") && stderr.contains(option),
            "{option}: {stderr}"
        );
    }
}

#[test]
fn resume_with_more_steps_keeps_training() {
    let data = slice_dir();
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("first.safetensors").display().to_string();
    let second = dir.join("second.safetensors").display().to_string();
    let common = [
        "train",
        "--device",
        "cpu",
        "--data-dir",
        data.as_str(),
        "--quiet",
    ];

    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--max-steps", "3", "--save", &first]);
    assert!(wgcnn(&args).status.success());
    // The first run's cosine schedule ends at step 3 with a rate of 0; the resumed run must
    // fit a new schedule to its own total instead of keeping that rate.
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--max-steps", "6", "--resume", &first, "--save", &second]);
    let output = wgcnn(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let before = wgcnn::checkpoint::load(std::path::Path::new(&first)).unwrap();
    let after = wgcnn::checkpoint::load(std::path::Path::new(&second)).unwrap();
    assert_eq!(after.step, 6);
    let cpu = wgcnn::CpuBackend;
    let before_model = before.build_model(&cpu).unwrap();
    let after_model = after.build_model(&cpu).unwrap();
    let changed = before_model
        .named_tensors()
        .iter()
        .zip(after_model.named_tensors())
        .any(|((_, a), (_, b))| *a != b);
    assert!(changed, "the resumed run left every weight unchanged");
    std::fs::remove_dir_all(&dir).ok();
}

/// ReLU on the CPU path passes NaN on, so a diverging default model stops with the step and
/// layer instead of finishing with NaN weights. No checkpoint of NaN is written.
#[test]
fn diverging_cpu_run_stops_with_an_error() {
    let data = slice_dir();
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-diverge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("model.safetensors");
    let text = checkpoint.display().to_string();
    assert_rejected(
        &[
            "train",
            "--device",
            "cpu",
            "--data-dir",
            &data,
            "--max-steps",
            "20",
            "--quiet",
            "--lr",
            "1e30",
            "--save",
            &text,
        ],
        "lower the learning rate (--lr)",
    );
    assert!(
        !checkpoint.exists(),
        "a checkpoint of a diverged run was written"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Writes a checkpoint of the default model for the test slice, with `training` as the
/// recorded options, and returns its path.
fn checkpoint_recording(dir: &Path, name: &str, training: serde_json::Value) -> String {
    use wgcnn::checkpoint::{self, SaveInfo};
    use wgcnn::nn::{LrSchedule, Model, Optimizer, OptimizerKind};
    let cpu = wgcnn::CpuBackend;
    let specs = wgcnn::models::lenet(1, 28, 28, 10);
    let model = Model::new(&cpu, &[1, 28, 28], &specs, 0).unwrap();
    let kind = OptimizerKind::Sgd(wgcnn::SgdConfig::default());
    let optimizer = Optimizer::new(&cpu, &model, kind, 0.01, LrSchedule::Constant).unwrap();
    let path = dir.join(name);
    let info = SaveInfo {
        epoch: 1,
        seed: 0,
        training,
    };
    checkpoint::save(&path, &cpu, &model, Some(&optimizer), &info).unwrap();
    path.display().to_string()
}

/// Recorded options that are present but wrong make the checkpoint corrupt, named as such;
/// none may panic or fall back to a default.
#[test]
fn resume_and_eval_reject_tampered_training_records() {
    let data = slice_dir();
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = serde_json::json!({
        "dataset": "fashion-mnist",
        "model": "lenet",
        "batch_size": 64,
        "normalization": null,
    });
    let cases = [
        ("batch_size", serde_json::json!(0), "`batch_size`: 0"),
        ("dataset", serde_json::json!("imagenet"), "imagenet"),
        ("model", serde_json::json!("resnet"), "resnet"),
        (
            "normalization",
            serde_json::json!({"mean": "x", "std": [1.0]}),
            "normalization",
        ),
        (
            "normalization",
            serde_json::json!({"mean": [0.5], "std": [0.0]}),
            "standard deviation 0",
        ),
    ];
    for (index, (key, value, expected)) in cases.into_iter().enumerate() {
        let mut training = good.clone();
        training[key] = value;
        let path = checkpoint_recording(&dir, &format!("case{index}.safetensors"), training);
        for command in ["train", "eval"] {
            let option = if command == "train" {
                "--resume"
            } else {
                "--checkpoint"
            };
            let mut args = vec![
                command,
                "--device",
                "cpu",
                "--data-dir",
                &data,
                option,
                &path,
            ];
            if command == "train" {
                args.extend(["--max-steps", "1", "--quiet"]);
            }
            assert_rejected(&args, expected);
            assert_rejected(&args, &path);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts a long training run with `extra` options, sends it SIGINT once training has
/// started, and returns its stderr after the start line.
#[cfg(unix)]
fn interrupted_run(extra: &[&str]) -> String {
    let data = slice_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args([
            "train",
            "--device",
            "cpu",
            "--data-dir",
            &data,
            "--epochs",
            "1000",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the wgcnn binary runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // The Ctrl-C handler is installed before this line is printed.
    let mut start = String::new();
    stderr.read_line(&mut start).unwrap();
    assert!(start.starts_with("training "), "{start}");

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{rest}");
    rest
}

#[cfg(unix)]
#[test]
fn interrupt_names_checkpoint_to_resume() {
    let dir = std::env::temp_dir().join(format!("wgcnn-cli-interrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors").display().to_string();

    let stderr = interrupted_run(&["--save", &path]);
    assert!(stderr.contains("training interrupted at step"), "{stderr}");
    assert!(stderr.contains(&format!("`--resume {path}`")), "{stderr}");
    assert!(Path::new(&path).is_file(), "no checkpoint at {path}");
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
#[test]
fn interrupt_without_save_suggests_save() {
    let stderr = interrupted_run(&[]);
    assert!(stderr.contains("training interrupted at step"), "{stderr}");
    assert!(stderr.contains("nothing was saved"), "{stderr}");
    assert!(stderr.contains("--save FILE"), "{stderr}");
}
