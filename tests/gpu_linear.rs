//! Linear layer and matrix product kernels against the CPU reference and PyTorch.

mod common;

use common::{SUM_TOLERANCE, assert_close, cases, gpu_backends, random, rng};
use ndarray::{Array2, ArrayD, Ix2};
use wgcnn::{Backend, CpuBackend, Error, GpuBackend};

/// Batch size, input features and output features. Odd sizes and sizes that are not
/// multiples of the output blocks or of the 64-invocation workgroup run on the general
/// kernel; multiples of 4 reach the vec4 kernels, with full and partial blocks.
const SIZES: [(usize, usize, usize); 11] = [
    (3, 7, 5),
    (37, 12, 20),
    (5, 516, 84),
    (70, 40, 10),
    (1, 1, 1),
    (1, 37, 13),
    (5, 37, 13),
    (65, 130, 17),
    (2, 33, 130),
    (64, 128, 32),
    (300, 9, 257),
];

/// Runs the linear forward pass into a poisoned output, on any backend.
fn linear_forward<B: Backend>(
    backend: &B,
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
) -> ArrayD<f32> {
    let x = backend.tensor("x", x.view()).unwrap();
    let weight_t = backend.tensor("weight", weight.view()).unwrap();
    let bias = bias.map(|b| backend.tensor("bias", b.view()).unwrap());
    let shape = [backend.shape(&x)[0], weight.shape()[0]];
    let mut y = backend.full("y", &shape, f32::NAN).unwrap();
    backend
        .linear_forward(&x, &weight_t, bias.as_ref(), &mut y)
        .unwrap();
    backend.read(&y).unwrap()
}

/// Runs both gradients of the linear layer into poisoned outputs, on any backend.
fn linear_backward<B: Backend>(
    backend: &B,
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    dy: &ArrayD<f32>,
) -> (ArrayD<f32>, ArrayD<f32>) {
    let x_t = backend.tensor("x", x.view()).unwrap();
    let weight_t = backend.tensor("weight", weight.view()).unwrap();
    let dy_t = backend.tensor("dy", dy.view()).unwrap();
    let mut dx = backend.full("dx", x.shape(), f32::NAN).unwrap();
    backend
        .linear_backward_input(&dy_t, &weight_t, &mut dx)
        .unwrap();
    let mut dweight = backend.full("dweight", weight.shape(), f32::NAN).unwrap();
    backend
        .linear_backward_weight(&x_t, &dy_t, &mut dweight)
        .unwrap();
    (backend.read(&dx).unwrap(), backend.read(&dweight).unwrap())
}

/// `op(a) op(b)` by the definition, as the independent reference for the kernels.
fn naive_product(
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    transpose_a: bool,
    transpose_b: bool,
) -> ArrayD<f32> {
    let a = a.view().into_dimensionality::<Ix2>().unwrap();
    let b = b.view().into_dimensionality::<Ix2>().unwrap();
    let a = if transpose_a { a.t() } else { a };
    let b = if transpose_b { b.t() } else { b };
    let (m, k) = a.dim();
    let n = b.ncols();
    Array2::from_shape_fn((m, n), |(i, j)| {
        (0..k)
            .map(|kk| f64::from(a[[i, kk]]) * f64::from(b[[kk, j]]))
            .sum::<f64>() as f32
    })
    .into_dyn()
}

#[test]
fn cpu_linear_matches_naive_product() {
    let mut rng = rng("cpu_linear_matches_naive_product");
    let cpu = CpuBackend::new();
    for (batch_size, in_features, out_features) in SIZES {
        let x = random(&mut rng, &[batch_size, in_features]);
        let weight = random(&mut rng, &[out_features, in_features]);
        let bias = random(&mut rng, &[out_features]);
        let dy = random(&mut rng, &[batch_size, out_features]);
        let what = format!("{batch_size}x{in_features}->{out_features}");

        let y = linear_forward(&cpu, &x, &weight, Some(&bias));
        let expected = naive_product(&x, &weight, false, true) + &bias;
        assert_close(&format!("{what} forward"), &y, &expected, SUM_TOLERANCE);

        let (dx, dweight) = linear_backward(&cpu, &x, &weight, &dy);
        let expected_dx = naive_product(&dy, &weight, false, false);
        assert_close(&format!("{what} dx"), &dx, &expected_dx, SUM_TOLERANCE);
        let expected_dweight = naive_product(&dy, &x, true, false);
        assert_close(
            &format!("{what} dweight"),
            &dweight,
            &expected_dweight,
            SUM_TOLERANCE,
        );
    }
}

#[test]
fn linear_matches_cpu() {
    let mut rng = rng("linear_matches_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for (batch_size, in_features, out_features) in SIZES {
            let x = random(&mut rng, &[batch_size, in_features]);
            let weight = random(&mut rng, &[out_features, in_features]);
            let bias = random(&mut rng, &[out_features]);
            let dy = random(&mut rng, &[batch_size, out_features]);
            let what = format!(
                "{batch_size}x{in_features}->{out_features} on {}",
                gpu.device_name()
            );

            for bias in [Some(&bias), None] {
                let y = linear_forward(&gpu, &x, &weight, bias);
                let expected = linear_forward(&cpu, &x, &weight, bias);
                let with = if bias.is_some() { "with" } else { "without" };
                assert_close(
                    &format!("{what} forward {with} bias"),
                    &y,
                    &expected,
                    SUM_TOLERANCE,
                );
            }

            let (dx, dweight) = linear_backward(&gpu, &x, &weight, &dy);
            let (expected_dx, expected_dweight) = linear_backward(&cpu, &x, &weight, &dy);
            assert_close(&format!("{what} dx"), &dx, &expected_dx, SUM_TOLERANCE);
            assert_close(
                &format!("{what} dweight"),
                &dweight,
                &expected_dweight,
                SUM_TOLERANCE,
            );
        }
    }
}

/// Runs `c = op(a) op(b)` on the GPU into a poisoned output.
fn gpu_matmul(
    gpu: &GpuBackend,
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    transpose_a: bool,
    transpose_b: bool,
) -> ArrayD<f32> {
    let m = if transpose_a {
        a.shape()[1]
    } else {
        a.shape()[0]
    };
    let n = if transpose_b {
        b.shape()[0]
    } else {
        b.shape()[1]
    };
    let a = gpu.tensor("a", a.view()).unwrap();
    let b = gpu.tensor("b", b.view()).unwrap();
    let mut c = gpu.full("c", &[m, n], f32::NAN).unwrap();
    gpu.matmul(&a, &b, transpose_a, transpose_b, &mut c)
        .unwrap();
    gpu.read(&c).unwrap()
}

#[test]
fn matmul_transposes_match_naive_product() {
    let mut rng = rng("matmul_transposes_match_naive_product");
    for gpu in gpu_backends() {
        for (m, k, n) in [
            (1, 1, 1),
            (7, 5, 3),
            (65, 130, 33),
            (64, 64, 64),
            (9, 260, 70),
        ] {
            for (transpose_a, transpose_b) in
                [(false, false), (false, true), (true, false), (true, true)]
            {
                let a_shape = if transpose_a { [k, m] } else { [m, k] };
                let b_shape = if transpose_b { [n, k] } else { [k, n] };
                let a = random(&mut rng, &a_shape);
                let b = random(&mut rng, &b_shape);
                let c = gpu_matmul(&gpu, &a, &b, transpose_a, transpose_b);
                let expected = naive_product(&a, &b, transpose_a, transpose_b);
                assert_close(
                    &format!(
                        "{m}x{k}x{n} transpose_a={transpose_a} transpose_b={transpose_b} on {}",
                        gpu.device_name()
                    ),
                    &c,
                    &expected,
                    SUM_TOLERANCE,
                );
            }
        }
    }
}

#[test]
fn linear_backward_weight_is_deterministic() {
    let mut rng = rng("linear_backward_weight_is_deterministic");
    for gpu in gpu_backends() {
        let x = random(&mut rng, &[1000, 37]);
        let weight = random(&mut rng, &[13, 37]);
        let dy = random(&mut rng, &[1000, 13]);
        let (_, first) = linear_backward(&gpu, &x, &weight, &dy);
        let (_, second) = linear_backward(&gpu, &x, &weight, &dy);
        let first_bits: Vec<u32> = first.iter().map(|v| v.to_bits()).collect();
        let second_bits: Vec<u32> = second.iter().map(|v| v.to_bits()).collect();
        assert_eq!(first_bits, second_bits, "on {}", gpu.device_name());
    }
}

/// Runs each shape error on any backend and checks that it is an `Error::Shape`.
fn check_shape_errors<B: Backend>(backend: &B) {
    let x = backend.zeros("x", &[3, 7]).unwrap();
    let weight = backend.zeros("weight", &[5, 7]).unwrap();
    let wrong_weight = backend.zeros("weight", &[5, 6]).unwrap();
    let wrong_bias = backend.zeros("bias", &[4]).unwrap();
    let mut y = backend.zeros("y", &[3, 5]).unwrap();
    let mut wrong_y = backend.zeros("y", &[3, 4]).unwrap();
    let dy = backend.zeros("dy", &[3, 5]).unwrap();
    let wrong_dy = backend.zeros("dy", &[2, 5]).unwrap();
    let mut dx = backend.zeros("dx", &[3, 7]).unwrap();
    let mut dweight = backend.zeros("dweight", &[5, 7]).unwrap();
    let mut wrong_dweight = backend.zeros("dweight", &[7, 5]).unwrap();
    let image = backend.zeros("image", &[3, 7, 1, 1]).unwrap();

    let results = [
        (
            "weight width",
            backend.linear_forward(&x, &wrong_weight, None, &mut y),
        ),
        (
            "bias length",
            backend.linear_forward(&x, &weight, Some(&wrong_bias), &mut y),
        ),
        (
            "y shape",
            backend.linear_forward(&x, &weight, None, &mut wrong_y),
        ),
        (
            "4-D x",
            backend.linear_forward(&image, &weight, None, &mut y),
        ),
        (
            "dx weight",
            backend.linear_backward_input(&dy, &wrong_weight, &mut dx),
        ),
        (
            "dy batch",
            backend.linear_backward_weight(&x, &wrong_dy, &mut dweight),
        ),
        (
            "dweight shape",
            backend.linear_backward_weight(&x, &dy, &mut wrong_dweight),
        ),
    ];
    for (what, result) in results {
        assert!(
            matches!(result, Err(Error::Shape { .. })),
            "{what} on {}: expected a shape error, got {result:?}",
            backend.device_name()
        );
    }
}

#[test]
fn linear_shape_errors() {
    check_shape_errors(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_shape_errors(&gpu);
    }
}

/// Checks every PyTorch linear case on one backend.
fn check_pytorch_cases<B: Backend>(backend: &B) {
    for case in cases::of_op("linear") {
        let name = format!("{} on {}", case["name"], backend.device_name());
        let x = cases::tensor(&case["inputs"]["x"]);
        let weight = cases::tensor(&case["inputs"]["weight"]);
        let bias = cases::tensor(&case["inputs"]["bias"]);
        let dy = cases::tensor(&case["grad_output"]);

        let y = linear_forward(backend, &x, &weight, Some(&bias));
        assert_close(
            &format!("{name} y"),
            &y,
            &cases::tensor(&case["outputs"]["y"]),
            SUM_TOLERANCE,
        );
        let (dx, dweight) = linear_backward(backend, &x, &weight, &dy);
        assert_close(
            &format!("{name} dx"),
            &dx,
            &cases::tensor(&case["grads"]["x"]),
            SUM_TOLERANCE,
        );
        assert_close(
            &format!("{name} dweight"),
            &dweight,
            &cases::tensor(&case["grads"]["weight"]),
            SUM_TOLERANCE,
        );
        // The bias gradient is `bias_backward`'s sum of dy over the batch.
        let expected_dbias = cases::tensor(&case["grads"]["bias"]);
        assert_close(
            &format!("{name} dbias"),
            &dy.sum_axis(ndarray::Axis(0)),
            &expected_dbias,
            SUM_TOLERANCE,
        );
    }
}

#[test]
fn linear_matches_pytorch() {
    check_pytorch_cases(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_pytorch_cases(&gpu);
    }
}

/// Times the 512x512x512 product for each transpose combination and prints GFLOP/s. Each of
/// 15 runs is timed from recording to the end of reading `c` back (1 MiB). The best run
/// shows the speed without load from other processes, the median shows that load.
/// Run with `cargo test --test gpu_linear matmul_512_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn matmul_512_throughput() {
    const SIZE: usize = 512;
    const RUNS: usize = 15;
    let mut rng = rng("matmul_512_throughput");
    for gpu in gpu_backends() {
        let subgroups = gpu.context().features.contains(wgpu::Features::SUBGROUP);
        let a = gpu
            .tensor("a", random(&mut rng, &[SIZE, SIZE]).view())
            .unwrap();
        let b = gpu
            .tensor("b", random(&mut rng, &[SIZE, SIZE]).view())
            .unwrap();
        let mut c = gpu.zeros("c", &[SIZE, SIZE]).unwrap();
        for (transpose_a, transpose_b) in
            [(false, false), (false, true), (true, false), (true, true)]
        {
            gpu.matmul(&a, &b, transpose_a, transpose_b, &mut c)
                .unwrap();
            gpu.read(&c).unwrap();
            let mut seconds: Vec<f64> = (0..RUNS)
                .map(|_| {
                    let start = std::time::Instant::now();
                    gpu.matmul(&a, &b, transpose_a, transpose_b, &mut c)
                        .unwrap();
                    gpu.read(&c).unwrap();
                    start.elapsed().as_secs_f64()
                })
                .collect();
            seconds.sort_by(f64::total_cmp);
            let gflops = |s: f64| 2.0 * (SIZE as f64).powi(3) / s / 1e9;
            eprintln!(
                "{} (subgroups: {subgroups}): 512^3 transpose_a={transpose_a} transpose_b={transpose_b}: \
                 best {:.1} GFLOP/s ({:.1} ms), median {:.1} GFLOP/s",
                gpu.device_name(),
                gflops(seconds[0]),
                seconds[0] * 1e3,
                gflops(seconds[RUNS / 2]),
            );
        }
    }
}
