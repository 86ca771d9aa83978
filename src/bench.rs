//! Timing of single ops and whole training steps on any backend, for `wgcnn bench` and the
//! criterion benches.

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::Result;
use crate::nn::{LayerSpec, LrSchedule, Model, Optimizer, OptimizerKind};
use crate::params::{Activation, Conv2dParams, Pool2dParams, SgdConfig};
use crate::train::Trainer;

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub name: String,
    pub shape: String,
    pub device: String,
    pub batch_size: usize,
    pub median_ms: f64,
    pub gflop_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_per_second: Option<f64>,
}

/// How many repetitions to time.
#[derive(Clone, Copy, Debug)]
pub struct BenchConfig {
    /// Untimed runs first, to build pipelines and warm caches. Default 3 for ops.
    pub warmup: usize,
    /// Timed runs; the median is reported. Default 10.
    pub runs: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            warmup: 3,
            runs: 10,
        }
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let middle = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[middle - 1] + samples[middle]) / 2.0
    } else {
        samples[middle]
    }
}

/// Times `op` (which records work) followed by a wait for the device, and returns the median
/// seconds per run.
fn time<B: Backend>(
    backend: &B,
    config: &BenchConfig,
    mut op: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..config.warmup {
        op()?;
        backend.synchronize()?;
    }
    let mut samples = Vec::with_capacity(config.runs);
    for _ in 0..config.runs.max(1) {
        let started = Instant::now();
        op()?;
        backend.synchronize()?;
        samples.push(started.elapsed().as_secs_f64());
    }
    Ok(median(samples))
}

fn random_tensor<B: Backend>(
    backend: &B,
    rng: &mut ChaCha8Rng,
    shape: &[usize],
) -> Result<B::Tensor> {
    let len = shape.iter().product();
    let values: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
    let array = ArrayD::from_shape_vec(IxDyn(shape), values).expect("length matches shape");
    backend.tensor("benchmark input", array.view())
}

/// Shapes of one convolution benchmark: input `[n, c, h, w]`, weight `[oc, c, kh, kw]`.
struct ConvCase {
    name: &'static str,
    input: [usize; 4],
    weight: [usize; 4],
    padding: usize,
}

const CONV_CASES: [ConvCase; 4] = [
    ConvCase {
        name: "lenet_conv1",
        input: [64, 1, 28, 28],
        weight: [16, 1, 5, 5],
        padding: 2,
    },
    ConvCase {
        name: "lenet_conv2",
        input: [64, 16, 14, 14],
        weight: [32, 16, 5, 5],
        padding: 2,
    },
    ConvCase {
        name: "cifar_conv1",
        input: [64, 3, 32, 32],
        weight: [64, 3, 3, 3],
        padding: 1,
    },
    ConvCase {
        name: "cifar_conv2",
        input: [64, 64, 16, 16],
        weight: [128, 64, 3, 3],
        padding: 1,
    },
];

fn result(
    name: impl Into<String>,
    shape: impl Into<String>,
    device: &str,
    batch_size: usize,
    seconds: f64,
    flop: f64,
) -> BenchResult {
    BenchResult {
        name: name.into(),
        shape: shape.into(),
        device: device.to_string(),
        batch_size,
        median_ms: seconds * 1e3,
        gflop_per_second: flop / seconds / 1e9,
        images_per_second: None,
    }
}

/// Times every op at the shapes of the default model and of a CIFAR-sized model. Only the
/// benchmarks whose name contains `filter` run.
pub fn bench_ops<B: Backend>(
    backend: &B,
    device: &str,
    filter: &str,
    config: &BenchConfig,
) -> Result<Vec<BenchResult>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut results = Vec::new();
    let wanted = |name: &str| name.contains(filter);

    if wanted("matmul_512") {
        let a = random_tensor(backend, &mut rng, &[512, 512])?;
        let b = random_tensor(backend, &mut rng, &[512, 512])?;
        let mut c = backend.zeros("c", &[512, 512])?;
        let seconds = time(backend, config, || {
            backend.linear_forward(&a, &b, None, &mut c)
        })?;
        results.push(result(
            "matmul_512",
            "512x512x512",
            device,
            512,
            seconds,
            2.0 * 512f64.powi(3),
        ));
    }

    for case in &CONV_CASES {
        let [n, c, h, w] = case.input;
        let [oc, _, kh, kw] = case.weight;
        let params = Conv2dParams {
            padding: [case.padding, case.padding],
            ..Conv2dParams::default()
        };
        let shape = params.shape(&case.input, &case.weight)?;
        let flop = 2.0 * (n * oc * shape.out_height * shape.out_width * c * kh * kw) as f64;
        let label = format!("x {:?} w {:?} p {}", case.input, case.weight, case.padding);
        let x = random_tensor(backend, &mut rng, &case.input)?;
        let weight = random_tensor(backend, &mut rng, &case.weight)?;
        let bias = random_tensor(backend, &mut rng, &[oc])?;
        let dy = random_tensor(backend, &mut rng, &shape.output())?;
        let mut y = backend.zeros("y", &shape.output())?;
        let mut dx = backend.zeros("dx", &[n, c, h, w])?;
        let mut dweight = backend.zeros("dweight", &case.weight)?;
        let name = format!("{}_forward", case.name);
        if wanted(&name) {
            let s = time(backend, config, || {
                backend.conv2d_forward(&x, &weight, Some(&bias), &params, &mut y)
            })?;
            results.push(result(name, label.clone(), device, n, s, flop));
        }
        let name = format!("{}_backward_input", case.name);
        if wanted(&name) {
            let s = time(backend, config, || {
                backend.conv2d_backward_input(&dy, &weight, &params, &mut dx)
            })?;
            results.push(result(name, label.clone(), device, n, s, flop));
        }
        let name = format!("{}_backward_weight", case.name);
        if wanted(&name) {
            let s = time(backend, config, || {
                backend.conv2d_backward_weight(&x, &dy, &params, &mut dweight)
            })?;
            results.push(result(name, label.clone(), device, n, s, flop));
        }
    }

    for (name, input) in [
        ("lenet_pool1", [64, 16, 28, 28]),
        ("cifar_pool1", [64, 64, 32, 32]),
    ] {
        if !wanted(name) {
            continue;
        }
        let params = Pool2dParams::square(2);
        let output = params.output_shape("max_pool2d", &input)?;
        let x = random_tensor(backend, &mut rng, &input)?;
        let dy = random_tensor(backend, &mut rng, &output)?;
        let mut y = backend.zeros("y", &output)?;
        let mut dx = backend.zeros("dx", &input)?;
        let len = input.iter().product::<usize>() as f64;
        let s = time(backend, config, || {
            backend.max_pool2d_forward(&x, &params, &mut y)
        })?;
        results.push(result(
            format!("{name}_max_forward"),
            format!("{input:?}"),
            device,
            64,
            s,
            len,
        ));
        let s = time(backend, config, || {
            backend.max_pool2d_backward(&x, &dy, &params, &mut dx)
        })?;
        results.push(result(
            format!("{name}_max_backward"),
            format!("{input:?}"),
            device,
            64,
            s,
            len,
        ));
    }

    if wanted("relu") {
        let shape = [64, 16, 28, 28];
        let x = random_tensor(backend, &mut rng, &shape)?;
        let mut y = backend.zeros("y", &shape)?;
        let len = shape.iter().product::<usize>() as f64;
        let s = time(backend, config, || {
            backend.activation_forward(Activation::Relu, &x, &mut y)
        })?;
        results.push(result(
            "relu_forward",
            format!("{shape:?}"),
            device,
            64,
            s,
            len,
        ));
    }

    for (name, n, input, output) in [("lenet_fc1", 64, 1568, 128), ("cifar_fc1", 64, 8192, 256)] {
        if !wanted(name) {
            continue;
        }
        let flop = 2.0 * (n * input * output) as f64;
        let label = format!("{n}x{input} -> {output}");
        let x = random_tensor(backend, &mut rng, &[n, input])?;
        let weight = random_tensor(backend, &mut rng, &[output, input])?;
        let bias = random_tensor(backend, &mut rng, &[output])?;
        let dy = random_tensor(backend, &mut rng, &[n, output])?;
        let mut y = backend.zeros("y", &[n, output])?;
        let mut dx = backend.zeros("dx", &[n, input])?;
        let mut dweight = backend.zeros("dweight", &[output, input])?;
        let s = time(backend, config, || {
            backend.linear_forward(&x, &weight, Some(&bias), &mut y)
        })?;
        results.push(result(
            format!("{name}_forward"),
            label.clone(),
            device,
            n,
            s,
            flop,
        ));
        let s = time(backend, config, || {
            backend.linear_backward_input(&dy, &weight, &mut dx)
        })?;
        results.push(result(
            format!("{name}_backward_input"),
            label.clone(),
            device,
            n,
            s,
            flop,
        ));
        let s = time(backend, config, || {
            backend.linear_backward_weight(&x, &dy, &mut dweight)
        })?;
        results.push(result(
            format!("{name}_backward_weight"),
            label,
            device,
            n,
            s,
            flop,
        ));
    }

    if wanted("cross_entropy") {
        let logits = random_tensor(backend, &mut rng, &[64, 10])?;
        let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
        let labels = backend.labels("labels", &labels, 10)?;
        let mut loss = backend.zeros("loss", &[1])?;
        let mut dlogits = backend.zeros("dlogits", &[64, 10])?;
        let s = time(backend, config, || {
            backend.softmax_cross_entropy(&logits, &labels, &mut loss, &mut dlogits)
        })?;
        results.push(result(
            "cross_entropy",
            "64x10",
            device,
            64,
            s,
            64.0 * 10.0 * 4.0,
        ));
    }

    if wanted("sgd_update") {
        // Every parameter of the default model in one tensor.
        let len = 215_370;
        let mut param = random_tensor(backend, &mut rng, &[len])?;
        let grad = random_tensor(backend, &mut rng, &[len])?;
        let mut velocity = backend.zeros("velocity", &[len])?;
        let sgd = SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        };
        let mut step = 1;
        let s = time(backend, config, || {
            step += 1;
            backend.sgd_step(&mut param, &grad, &mut velocity, &sgd, 0.01, step)
        })?;
        results.push(result(
            "sgd_update",
            format!("[{len}]"),
            device,
            64,
            s,
            4.0 * len as f64,
        ));
    }
    Ok(results)
}

/// Training FLOPs per image of the default model on 1x28x28 inputs: three times the forward
/// multiply-adds of its convolutions and linear layers, two FLOPs each.
pub const LENET_TRAIN_FLOP_PER_IMAGE: f64 = 3.0 * 2.0 * 3_024_384.0;

/// Times whole training steps of the default model on random 1x28x28 images: batch upload,
/// forward, loss, backward, SGD with momentum, and reading the loss back, as the peers'
/// harness measures them. `median_ms` is the median step; `images_per_second` is the
/// throughput over all timed steps.
pub fn bench_training_step<B: Backend>(
    backend: &B,
    device: &str,
    batch_size: usize,
    warmup: usize,
    steps: usize,
) -> Result<BenchResult> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let images = 8 * batch_size;
    let values: Vec<f32> = (0..images * 784)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let labels: Vec<u32> = (0..images).map(|_| rng.random_range(0..10)).collect();
    let array = ndarray::Array4::from_shape_vec((images, 1, 28, 28), values).expect("sizes match");
    let data = Dataset::new(array, labels, 10)?;

    let specs: Vec<LayerSpec> = crate::models::lenet(1, 28, 28, 10);
    let mut model = Model::new(backend, &[1, 28, 28], &specs, 0)?;
    let kind = OptimizerKind::Sgd(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    let mut optimizer = Optimizer::new(backend, &model, kind, 0.01, LrSchedule::Constant)?;
    let mut trainer = Trainer::new();
    let mut samples = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let start = (step % 8) * batch_size;
        let indices: Vec<usize> = (start..start + batch_size).collect();
        let started = Instant::now();
        trainer.train_step(backend, &mut model, &mut optimizer, &data, &indices)?;
        if step >= warmup {
            samples.push(started.elapsed().as_secs_f64());
        }
    }
    // Throughput over all timed steps, as the peers' harness measures it: total images over
    // total time. The median step time is reported beside it.
    let total: f64 = samples.iter().sum();
    let images_per_second = (batch_size * samples.len()) as f64 / total;
    let seconds = median(samples);
    let mut row = result(
        format!("lenet_step_b{batch_size}"),
        format!("[{batch_size}, 1, 28, 28]"),
        device,
        batch_size,
        seconds,
        LENET_TRAIN_FLOP_PER_IMAGE * batch_size as f64,
    );
    row.images_per_second = Some(images_per_second);
    Ok(row)
}
