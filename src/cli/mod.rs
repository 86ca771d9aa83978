//! Argument parsing and the subcommands.

mod bench;
mod devices;
mod eval;
mod train;

use std::fs;
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use wgcnn::Error;
use wgcnn::data::DatasetKind;

/// Train convolutional neural networks on any GPU through wgpu, or on the CPU.
#[derive(Debug, Parser)]
#[command(name = "wgcnn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model and report the test accuracy after each epoch.
    Train(train::TrainArgs),
    /// Report the test loss and accuracy of a checkpoint.
    Eval(eval::EvalArgs),
    /// Time single ops and whole training steps on the GPU and the CPU path.
    Bench(bench::BenchArgs),
    /// List the GPU adapters with their backend, type and limits.
    Devices(devices::DevicesArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> wgcnn::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Devices(args) => devices::run(args),
    }
}

/// Help text of `--data-dir`, which lists the folders that `DatasetKind::default_dirs`
/// searches.
const DATA_DIR_HELP: &str = "Folder with the data set's files. Default: for fashion-mnist, \
    the first of /usr/share/datasets/fashion-mnist and ./data/fashion-mnist that contains \
    the files; for mnist, ./data/mnist; for cifar10, ./data/cifar-10";

/// Builds the parser of `--dataset`, which lists the data sets in the help and in the error
/// for an unknown name.
fn dataset_parser() -> impl TypedValueParser<Value = DatasetKind> {
    PossibleValuesParser::new([
        PossibleValue::new("fashion-mnist")
            .aliases(["fashion_mnist", "fashionmnist"])
            .help("Zalando's clothing images, 28x28 grayscale, 10 classes"),
        PossibleValue::new("mnist").help("Handwritten digits, 28x28 grayscale"),
        PossibleValue::new("cifar10")
            .alias("cifar-10")
            .help("Photos, 32x32 RGB, 10 classes"),
    ])
    .try_map(|name| name.parse::<DatasetKind>())
}

/// Checks that `path`, given to `option`, names an existing regular file, so that a wrong
/// path gets a message that names the option instead of a bare OS error, and a device such
/// as /dev/zero is not read without end.
///
/// # Errors
/// [`Error::File`] naming the path, the option, the cause and what to change.
fn check_checkpoint_file(option: &str, path: &Path) -> wgcnn::Result<()> {
    let problem = match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => return Ok(()),
        Ok(metadata) if metadata.is_dir() => format!(
            "the checkpoint given to {option} is a folder; name the .safetensors file inside it \
             that `wgcnn train --save FILE` wrote"
        ),
        Ok(_) => format!(
            "the checkpoint given to {option} is not a regular file (a device or pipe); name the \
             .safetensors file that `wgcnn train --save FILE` wrote"
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => format!(
            "the checkpoint file given to {option} does not exist; check the path, or write a \
             checkpoint with `wgcnn train --save FILE`"
        ),
        Err(error) => {
            format!("cannot read the checkpoint file given to {option} ({error}); check the path")
        }
    };
    Err(Error::File {
        path: path.to_path_buf(),
        message: problem,
    })
}

/// Makes `path` comparable with another spelling of the same file: absolute, with the
/// parent folder's symbolic links and `..` resolved when that folder exists.
fn comparable_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => fs::canonicalize(parent)
            .map(|parent| parent.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

/// Returns whether `a` and `b` name the same file, as far as [`comparable_path`] can tell.
fn same_file_path(a: &Path, b: &Path) -> bool {
    comparable_path(a) == comparable_path(b)
}

/// Builds the parser of a whole-number option whose values start at `min`. The option also
/// needs `allow_negative_numbers`, or clap reports `-1` as an unexpected argument instead of
/// passing it here. The message names `example` as a valid value.
fn whole_number<T>(
    min: u64,
    example: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |text: &str| {
        let rule = format!("must be a whole number of at least {min}, such as {example}");
        // i128 contains every u64 and every negative i64, so a negative number is distinguished
        // from text that is not a number.
        match text.trim().parse::<i128>() {
            Ok(value) if value < i128::from(min) => Err(rule),
            Ok(value) => u64::try_from(value)
                .ok()
                .and_then(|value| T::try_from(value).ok())
                .ok_or_else(|| format!("{rule}; this value is too large")),
            Err(_) => Err(rule),
        }
    }
}

/// GPU options from `WGCNN_BACKEND` and `WGCNN_ADAPTER`, overridden by the command line's
/// `--backend` and `--adapter` where given.
fn gpu_options(
    backend: Option<wgcnn::BackendChoice>,
    adapter: Option<&str>,
) -> wgcnn::Result<wgcnn::GpuOptions> {
    let mut options = wgcnn::GpuOptions::from_env()?;
    if let Some(backend) = backend {
        options.backend = backend;
        options.backend_setting = "--backend";
    }
    if let Some(adapter) = adapter {
        options.adapter_name = Some(adapter.to_string());
        options.adapter_setting = "--adapter";
    }
    Ok(options)
}
