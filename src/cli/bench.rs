//! `wgcnn bench`: op and training-step timings on the GPU and the CPU path.

use clap::{Args, ValueEnum};
use wgcnn::bench::{BenchConfig, BenchResult, bench_ops, bench_training_step};
use wgcnn::gpu::{BackendChoice, GpuBackend};
use wgcnn::{Backend, CpuBackend};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDevices {
    Gpu,
    Cpu,
    Both,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which paths to time.
    #[arg(long, value_enum, default_value = "both")]
    device: BenchDevices,
    /// Run only the benchmarks whose name contains this text, such as `matmul` or `step`.
    #[arg(long, default_value = "")]
    filter: String,
    /// Timed training steps per batch size (after 20 untimed ones).
    #[arg(
        long,
        default_value_t = 50,
        allow_negative_numbers = true,
        value_parser = super::whole_number::<usize>(1, 50)
    )]
    steps: usize,
    /// Timed runs per op; the median is reported.
    #[arg(
        long,
        default_value_t = 10,
        allow_negative_numbers = true,
        value_parser = super::whole_number::<usize>(1, 10)
    )]
    runs: usize,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Graphics API for the GPU path: auto, vulkan, metal, dx12 or gl. Default: WGCNN_BACKEND, else auto.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Use the adapter whose name contains this text (case-insensitive).
    #[arg(long)]
    adapter: Option<String>,
}

fn run_on<B: Backend>(
    backend: &B,
    device: &str,
    args: &BenchArgs,
) -> wgcnn::Result<Vec<BenchResult>> {
    let config = BenchConfig {
        warmup: 3,
        runs: args.runs,
    };
    let mut results = bench_ops(backend, device, &args.filter, &config)?;
    for batch_size in [64, 256] {
        let name = format!("lenet_step_b{batch_size}");
        if name.contains(&args.filter) {
            results.push(bench_training_step(
                backend, device, batch_size, 20, args.steps,
            )?);
        }
    }
    Ok(results)
}

pub fn run(args: BenchArgs) -> wgcnn::Result<()> {
    let mut results = Vec::new();
    if matches!(args.device, BenchDevices::Gpu | BenchDevices::Both) {
        let options = super::gpu_options(args.backend, args.adapter.as_deref())?;
        let gpu = GpuBackend::new(&options)?;
        eprintln!("GPU path: {}", gpu.device_name());
        results.extend(run_on(&gpu, "gpu", &args)?);
    }
    if matches!(args.device, BenchDevices::Cpu | BenchDevices::Both) {
        results.extend(run_on(&CpuBackend, "cpu", &args)?);
    }
    if results.is_empty() {
        return Err(wgcnn::Error::invalid(
            "--filter",
            format!(
                "`{}` is part of no benchmark's name; try `matmul`, `conv`, `pool`, `relu`, \
                 `fc`, `cross_entropy`, `sgd` or `step`, or leave it out to run them all",
                args.filter
            ),
        ));
    }
    if args.json {
        for row in &results {
            println!("{}", serde_json::to_string(row).expect("rows serialize"));
        }
        return Ok(());
    }
    println!(
        "{:<30} {:<32} {:>6} {:>11} {:>9} {:>10}",
        "name", "shape", "device", "median ms", "GFLOP/s", "images/s"
    );
    for row in &results {
        let images = row
            .images_per_second
            .map_or_else(String::new, |v| format!("{v:.0}"));
        println!(
            "{:<30} {:<32} {:>6} {:>11.3} {:>9.2} {:>10}",
            row.name, row.shape, row.device, row.median_ms, row.gflop_per_second, images
        );
    }
    Ok(())
}
