//! Argument parsing and the subcommands.

mod bench;
mod devices;
mod eval;
mod train;

use clap::{Parser, Subcommand};

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
