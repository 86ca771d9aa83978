//! The `wgcnn` command line: `train`, `devices`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // wgpu's driver layer logs failed probes of absent platforms (EGL, X11) as errors while
    // it looks for adapters. wgcnn reports real device errors itself, so those stay hidden
    // unless RUST_LOG names them.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off"),
    )
    .format_timestamp(None)
    .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
