//! Argument parsing and the subcommands.

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
    /// List the GPU adapters with their backend, type and limits.
    Devices(devices::DevicesArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> wgcnn::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Devices(args) => devices::run(args),
    }
}
