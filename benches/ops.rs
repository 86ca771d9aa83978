//! Criterion benchmarks of the ops and the training step, on the GPU path and the CPU path.
//! `wgcnn bench` prints the same measurements as a table; these give criterion's statistics.

use criterion::{Criterion, criterion_group, criterion_main};
use wgcnn::bench::{BenchConfig, bench_ops, bench_training_step};
use wgcnn::{CpuBackend, GpuBackend, GpuOptions};

fn ops(c: &mut Criterion) {
    let gpu = GpuBackend::new(&GpuOptions::from_env().expect("valid WGCNN_* variables"))
        .expect("a GPU adapter (on Debian: apt-get install mesa-vulkan-drivers)");
    let config = BenchConfig { warmup: 1, runs: 1 };
    let mut group = c.benchmark_group("ops");
    group.sample_size(10);
    for (device, name) in [
        ("gpu", "matmul_512"),
        ("gpu", "lenet_conv2"),
        ("cpu", "lenet_conv2"),
    ] {
        group.bench_function(format!("{device}/{name}"), |b| {
            b.iter(|| match device {
                "gpu" => bench_ops(&gpu, device, name, &config).expect("op runs"),
                _ => bench_ops(&CpuBackend, device, name, &config).expect("op runs"),
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("training_step");
    group.sample_size(10);
    for batch_size in [64, 256] {
        group.bench_function(format!("gpu/lenet_b{batch_size}"), |b| {
            b.iter(|| bench_training_step(&gpu, "gpu", batch_size, 1, 3).expect("step runs"))
        });
        group.bench_function(format!("cpu/lenet_b{batch_size}"), |b| {
            b.iter(|| bench_training_step(&CpuBackend, "cpu", batch_size, 1, 3).expect("step runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
