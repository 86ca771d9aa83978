//! Max and average pooling kernels against the CPU reference and PyTorch.

mod common;

use common::{SUM_TOLERANCE, assert_close, cases, gpu_backends, random, rng};
use ndarray::ArrayD;
use rand::Rng;
use wgcnn::{Backend, CpuBackend, Error, Pool2dParams};

/// Max pooling selects values and its gradient adds the same terms in the same window order
/// on both paths, so they agree exactly.
const EXACT: f32 = 0.0;

/// Average pooling divides by the window size once per window on the CPU and once per sum on
/// the GPU; the two roundings differ by an ulp or so.
const AVG_TOLERANCE: f32 = SUM_TOLERANCE;

fn pool(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Pool2dParams {
    Pool2dParams {
        kernel,
        stride,
        padding,
    }
}

/// Input shapes with pooling parameters: batch 1, odd and non-square sizes, channel counts
/// that are not multiples of 4, stride above 1, padding, overlapping windows (kernel 3,
/// stride 2), stride larger than the window (inputs no window covers), windows that leave
/// trailing rows out, windows that tile the input exactly (the GPU's `backward_tiled`
/// kernel, square and not, and the loop-free 2x2 kernels), and element counts that are not multiples of the workgroup size.
fn pool_cases() -> Vec<(Vec<usize>, Pool2dParams)> {
    vec![
        (vec![1, 1, 4, 4], Pool2dParams::square(2)),
        (vec![2, 3, 7, 5], pool([3, 3], [2, 2], [1, 1])),
        (vec![3, 5, 9, 11], pool([3, 2], [1, 2], [1, 0])),
        (vec![1, 3, 6, 6], pool([2, 2], [1, 1], [1, 1])),
        (vec![2, 2, 5, 5], pool([1, 1], [2, 2], [0, 0])),
        (vec![1, 7, 13, 10], pool([3, 3], [3, 3], [0, 0])),
        (vec![4, 6, 28, 28], Pool2dParams::square(2)),
        (vec![2, 3, 15, 17], pool([5, 4], [2, 3], [2, 2])),
        (vec![3, 5, 9, 8], pool([3, 2], [3, 2], [0, 0])),
        // 2x2 windows with stride 2 on odd sizes: the loop-free forward kernel, with the
        // last row and column left out, and the general backward kernel.
        (vec![1, 3, 7, 9], Pool2dParams::square(2)),
    ]
}

struct Pooled {
    y: ArrayD<f32>,
    dx: ArrayD<f32>,
}

/// Max pooling forward and backward into poisoned outputs, on any backend.
fn max_pool<B: Backend>(
    backend: &B,
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Pool2dParams,
) -> Pooled {
    let x_t = backend.tensor("x", x.view()).unwrap();
    let dy_t = backend.tensor("dy", dy.view()).unwrap();
    let mut y = backend.full("y", dy.shape(), f32::NAN).unwrap();
    backend.max_pool2d_forward(&x_t, params, &mut y).unwrap();
    let mut dx = backend.full("dx", x.shape(), f32::NAN).unwrap();
    backend
        .max_pool2d_backward(&x_t, &dy_t, params, &mut dx)
        .unwrap();
    Pooled {
        y: backend.read(&y).unwrap(),
        dx: backend.read(&dx).unwrap(),
    }
}

/// Average pooling forward and backward into poisoned outputs, on any backend.
fn avg_pool<B: Backend>(
    backend: &B,
    x: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Pool2dParams,
) -> Pooled {
    let x_t = backend.tensor("x", x.view()).unwrap();
    let dy_t = backend.tensor("dy", dy.view()).unwrap();
    let mut y = backend.full("y", dy.shape(), f32::NAN).unwrap();
    backend.avg_pool2d_forward(&x_t, params, &mut y).unwrap();
    let mut dx = backend.full("dx", x.shape(), f32::NAN).unwrap();
    backend.avg_pool2d_backward(&dy_t, params, &mut dx).unwrap();
    Pooled {
        y: backend.read(&y).unwrap(),
        dx: backend.read(&dx).unwrap(),
    }
}

/// Small integers, so that many windows hold several equal maxima.
fn random_integers(rng: &mut impl Rng, shape: &[usize]) -> ArrayD<f32> {
    random(rng, shape).mapv(|v| (v * 2.0).round())
}

#[test]
fn max_pool_matches_cpu() {
    let mut rng = rng("max_pool_matches_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for (shape, params) in pool_cases() {
            let out_shape = params.output_shape("test", &shape).unwrap();
            let x = random(&mut rng, &shape);
            let dy = random(&mut rng, &out_shape);
            let what = format!("{shape:?} {params:?} on {}", gpu.device_name());

            let actual = max_pool(&gpu, &x, &dy, &params);
            let expected = max_pool(&cpu, &x, &dy, &params);
            assert_close(&format!("{what} y"), &actual.y, &expected.y, EXACT);
            assert_close(&format!("{what} dx"), &actual.dx, &expected.dx, EXACT);
        }
    }
}

#[test]
fn max_pool_ties_match_cpu() {
    let mut rng = rng("max_pool_ties_match_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for (shape, params) in pool_cases() {
            let out_shape = params.output_shape("test", &shape).unwrap();
            let x = random_integers(&mut rng, &shape);
            let dy = random(&mut rng, &out_shape);
            let what = format!("ties {shape:?} {params:?} on {}", gpu.device_name());

            let actual = max_pool(&gpu, &x, &dy, &params);
            let expected = max_pool(&cpu, &x, &dy, &params);
            assert_close(&format!("{what} y"), &actual.y, &expected.y, EXACT);
            assert_close(&format!("{what} dx"), &actual.dx, &expected.dx, EXACT);
        }
    }
}

#[test]
fn max_pool_sends_tie_gradient_to_first_maximum() {
    // Every window of a constant input ties; PyTorch's rule picks each window's top-left.
    let params = pool([2, 2], [2, 2], [0, 0]);
    let x = ArrayD::from_elem(vec![1, 1, 4, 4], 3.0f32);
    let dy = ArrayD::from_shape_vec(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let mut expected_dx = ArrayD::zeros(vec![1, 1, 4, 4]);
    expected_dx[[0, 0, 0, 0]] = 1.0;
    expected_dx[[0, 0, 0, 2]] = 2.0;
    expected_dx[[0, 0, 2, 0]] = 3.0;
    expected_dx[[0, 0, 2, 2]] = 4.0;

    let cpu = max_pool(&CpuBackend::new(), &x, &dy, &params);
    assert_eq!(cpu.dx, expected_dx);
    for gpu in gpu_backends() {
        let pooled = max_pool(&gpu, &x, &dy, &params);
        assert_eq!(pooled.dx, expected_dx, "on {}", gpu.device_name());
    }
}

#[test]
fn max_pool_padding_never_wins() {
    // All inputs are negative, so a padded zero would win if padding took part.
    let params = pool([3, 3], [2, 2], [1, 1]);
    let x = ArrayD::from_shape_fn(vec![1, 1, 5, 5], |index| -1.0 - index[3] as f32);
    let dy = ArrayD::ones(vec![1, 1, 3, 3]);
    let cpu = max_pool(&CpuBackend::new(), &x, &dy, &params);
    assert!(
        cpu.y.iter().all(|&v| v < 0.0),
        "padding won on the CPU: {:?}",
        cpu.y
    );
    for gpu in gpu_backends() {
        let pooled = max_pool(&gpu, &x, &dy, &params);
        assert_eq!(pooled.y, cpu.y, "on {}", gpu.device_name());
    }
}

#[test]
fn avg_pool_matches_cpu() {
    let mut rng = rng("avg_pool_matches_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for (shape, params) in pool_cases() {
            let out_shape = params.output_shape("test", &shape).unwrap();
            let x = random(&mut rng, &shape);
            let dy = random(&mut rng, &out_shape);
            let what = format!("{shape:?} {params:?} on {}", gpu.device_name());

            let actual = avg_pool(&gpu, &x, &dy, &params);
            let expected = avg_pool(&cpu, &x, &dy, &params);
            assert_close(&format!("{what} y"), &actual.y, &expected.y, AVG_TOLERANCE);
            assert_close(
                &format!("{what} dx"),
                &actual.dx,
                &expected.dx,
                AVG_TOLERANCE,
            );
        }
    }
}

#[test]
fn avg_pool_divides_by_full_window() {
    // A corner window of kernel 3, padding 1 covers 4 inputs but divides by 9.
    let params = pool([3, 3], [2, 2], [1, 1]);
    let x = ArrayD::from_elem(vec![1, 1, 3, 3], 9.0f32);
    let expected_corner = 4.0;
    let dy = ArrayD::ones(vec![1, 1, 2, 2]);
    let cpu = avg_pool(&CpuBackend::new(), &x, &dy, &params);
    assert_eq!(cpu.y[[0, 0, 0, 0]], expected_corner);
    for gpu in gpu_backends() {
        let pooled = avg_pool(&gpu, &x, &dy, &params);
        assert_eq!(
            pooled.y[[0, 0, 0, 0]],
            expected_corner,
            "on {}",
            gpu.device_name()
        );
    }
}

/// Runs each shape error on any backend and checks that it is an `Error::Shape`.
fn check_shape_errors<B: Backend>(backend: &B) {
    let x = backend.zeros("x", &[1, 2, 6, 6]).unwrap();
    let image_3d = backend.zeros("x", &[2, 6, 6]).unwrap();
    let mut y = backend.zeros("y", &[1, 2, 3, 3]).unwrap();
    let mut wrong_y = backend.zeros("y", &[1, 2, 2, 3]).unwrap();
    let dy = backend.zeros("dy", &[1, 2, 3, 3]).unwrap();
    let wrong_dy = backend.zeros("dy", &[1, 2, 4, 3]).unwrap();
    let mut dx = backend.zeros("dx", &[1, 2, 6, 6]).unwrap();
    let mut wrong_dx = backend.zeros("dx", &[1, 2, 6, 5]).unwrap();
    let square = Pool2dParams::square(2);
    let too_large = Pool2dParams::square(7);
    let too_much_padding = pool([2, 2], [2, 2], [2, 2]);
    let zero_stride = pool([2, 2], [0, 2], [0, 0]);

    let results = [
        (
            "max y shape",
            backend.max_pool2d_forward(&x, &square, &mut wrong_y),
        ),
        (
            "max 3-D input",
            backend.max_pool2d_forward(&image_3d, &square, &mut y),
        ),
        (
            "max window too large",
            backend.max_pool2d_forward(&x, &too_large, &mut y),
        ),
        (
            "max padding",
            backend.max_pool2d_forward(&x, &too_much_padding, &mut y),
        ),
        (
            "max zero stride",
            backend.max_pool2d_forward(&x, &zero_stride, &mut y),
        ),
        (
            "max dy shape",
            backend.max_pool2d_backward(&x, &wrong_dy, &square, &mut dx),
        ),
        (
            "max dx shape",
            backend.max_pool2d_backward(&x, &dy, &square, &mut wrong_dx),
        ),
        (
            "avg y shape",
            backend.avg_pool2d_forward(&x, &square, &mut wrong_y),
        ),
        (
            "avg window too large",
            backend.avg_pool2d_forward(&x, &too_large, &mut y),
        ),
        (
            "avg dy shape",
            backend.avg_pool2d_backward(&wrong_dy, &square, &mut dx),
        ),
        (
            "avg dx shape",
            backend.avg_pool2d_backward(&dy, &square, &mut wrong_dx),
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
fn pool_shape_errors() {
    check_shape_errors(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_shape_errors(&gpu);
    }
}

/// Checks every PyTorch case of `op` on one backend.
fn check_pytorch_cases<B: Backend>(backend: &B, op: &str) {
    for case in cases::of_op(op) {
        let name = format!("{} on {}", case["name"], backend.device_name());
        let params = Pool2dParams {
            kernel: cases::pair(&case["params"]["kernel"], 1),
            stride: cases::pair(&case["params"]["stride"], 1),
            padding: cases::pair(&case["params"]["padding"], 0),
        };
        let x = cases::tensor(&case["inputs"]["x"]);
        let dy = cases::tensor(&case["grad_output"]);
        let pooled = match op {
            "max_pool2d" => max_pool(backend, &x, &dy, &params),
            _ => avg_pool(backend, &x, &dy, &params),
        };
        assert_close(
            &format!("{name} y"),
            &pooled.y,
            &cases::tensor(&case["outputs"]["y"]),
            SUM_TOLERANCE,
        );
        assert_close(
            &format!("{name} dx"),
            &pooled.dx,
            &cases::tensor(&case["grads"]["x"]),
            SUM_TOLERANCE,
        );
    }
}

#[test]
fn pool_matches_pytorch() {
    let cpu = CpuBackend::new();
    check_pytorch_cases(&cpu, "max_pool2d");
    check_pytorch_cases(&cpu, "avg_pool2d");
    for gpu in gpu_backends() {
        check_pytorch_cases(&gpu, "max_pool2d");
        check_pytorch_cases(&gpu, "avg_pool2d");
    }
}
