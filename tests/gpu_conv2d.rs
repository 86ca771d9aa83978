//! Convolution and bias gradient kernels against the CPU reference and PyTorch.

mod common;

use std::time::Instant;

use common::cases;
use common::{SUM_TOLERANCE, assert_close, gpu_backends, random, rng};
use ndarray::{ArrayD, IxDyn};
use rand_chacha::ChaCha8Rng;
use wgcnn::cpu::{bias, conv2d};
use wgcnn::gpu::{Conv2dVariant, GpuTensor};
use wgcnn::{Backend, Conv2dParams, CpuBackend, Error, GpuBackend};

/// One convolution to test: input, weight, whether it has a bias, and its parameters.
struct Case {
    x: [usize; 4],
    weight: [usize; 4],
    bias: bool,
    params: Conv2dParams,
}

fn conv(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2]) -> Conv2dParams {
    Conv2dParams {
        stride,
        padding,
        dilation,
    }
}

/// Odd and non-square sizes, strides, padding, dilation, batch 1, channel counts that are not
/// multiples of the channel tiles (4 or 8), and rows that are not multiples of the pixel
/// tiles (4 or 16). Cases with stride and dilation 1 along w run the sliding-window `*_row`
/// kernels, the others the general ones. Several cases need more than one 64-invocation
/// workgroup.
fn cases() -> Vec<Case> {
    vec![
        Case {
            x: [1, 3, 7, 9],
            weight: [5, 3, 2, 3],
            bias: true,
            params: conv([1, 1], [0, 0], [1, 1]),
        },
        Case {
            x: [2, 1, 9, 8],
            weight: [6, 1, 3, 3],
            bias: true,
            params: conv([2, 2], [1, 1], [1, 1]),
        },
        Case {
            x: [3, 5, 10, 11],
            weight: [3, 5, 3, 2],
            bias: false,
            params: conv([1, 2], [2, 1], [1, 1]),
        },
        Case {
            x: [1, 6, 9, 9],
            weight: [5, 6, 3, 3],
            bias: true,
            params: conv([1, 1], [2, 2], [2, 2]),
        },
        Case {
            x: [2, 3, 8, 7],
            weight: [4, 3, 2, 5],
            bias: false,
            params: conv([2, 3], [0, 2], [2, 1]),
        },
        Case {
            // The kernel exactly fills the padded input: a 1x1 output.
            x: [1, 3, 4, 5],
            weight: [2, 3, 6, 7],
            bias: true,
            params: conv([1, 1], [1, 1], [1, 1]),
        },
        Case {
            x: [2, 6, 5, 4],
            weight: [7, 6, 1, 1],
            bias: false,
            params: conv([1, 1], [0, 0], [1, 1]),
        },
        Case {
            // LeNet's second convolution on a small batch: 168 row tiles, 8 channel tiles.
            x: [3, 16, 14, 14],
            weight: [32, 16, 5, 5],
            bias: true,
            params: conv([1, 1], [2, 2], [1, 1]),
        },
        Case {
            // LeNet's first convolution: one input channel, 28-pixel rows.
            x: [2, 1, 28, 28],
            weight: [16, 1, 5, 5],
            bias: true,
            params: conv([1, 1], [2, 2], [1, 1]),
        },
        Case {
            // Row kernels with stride and dilation along h only, rows of two 16-pixel tiles.
            x: [2, 3, 11, 19],
            weight: [5, 3, 3, 4],
            bias: true,
            params: conv([2, 1], [1, 2], [2, 1]),
        },
        Case {
            // A kernel 10 columns wide: two 8-column tiles of the weight gradient.
            x: [1, 2, 5, 21],
            weight: [3, 2, 2, 10],
            bias: false,
            params: conv([1, 1], [0, 3], [1, 1]),
        },
        Case {
            // Stride 3 with dilation 2 leaves input pixels that no tap reads.
            x: [2, 5, 13, 17],
            weight: [9, 5, 3, 3],
            bias: true,
            params: conv([3, 3], [1, 2], [2, 2]),
        },
        Case {
            // The implicit product with 36 taps per weight row, 13 output channels (a
            // partial block of 8) and 12 pixels (a partial cluster), stride 2 and dilation.
            x: [1, 4, 6, 5],
            weight: [13, 4, 3, 3],
            bias: true,
            params: conv([2, 1], [1, 2], [1, 2]),
        },
        Case {
            // The weight gradient's implicit product with 21 output channels (a partial
            // second block of 16) and dilation along h.
            x: [2, 3, 7, 9],
            weight: [21, 3, 3, 2],
            bias: false,
            params: conv([1, 1], [1, 0], [2, 1]),
        },
        Case {
            // The input gradient as the implicit product of the flipped weights: stride 1,
            // unequal padding, 12 · 3 · 5 taps per flipped weight row, and 5 input channels
            // (a partial block of 8).
            x: [3, 5, 9, 11],
            weight: [12, 5, 3, 5],
            bias: false,
            params: conv([1, 1], [2, 1], [1, 1]),
        },
    ]
}

fn output_shape(case: &Case) -> Vec<usize> {
    case.params
        .shape(&case.x, &case.weight)
        .unwrap()
        .output()
        .to_vec()
}

#[test]
fn conv2d_matches_cpu() {
    let mut rng = rng("conv2d_matches_cpu");
    // The implicit product applies to the cases with in_channels · kh · kw a multiple of 4,
    // on adapters with subgroups; elsewhere forcing it runs the direct kernels.
    let variants = [
        Conv2dVariant::Direct,
        Conv2dVariant::Gemm,
        Conv2dVariant::Slide,
    ];
    for gpu in gpu_backends() {
        let runs = variants
            .into_iter()
            .flat_map(|variant| cases().into_iter().map(move |case| (variant, case)));
        for (variant, case) in runs {
            gpu.force_conv2d_variant(Some(variant));
            let what = format!(
                "{variant:?} x {:?} weight {:?} {:?} on {}",
                case.x,
                case.weight,
                case.params,
                gpu.device_name()
            );
            let params = case.params;
            let out_shape = output_shape(&case);
            let x = random(&mut rng, &case.x);
            let weight = random(&mut rng, &case.weight);
            let bias = random(&mut rng, &[case.weight[0]]);
            let bias = case.bias.then_some(bias);
            let dy = random(&mut rng, &out_shape);

            let mut y_cpu = ArrayD::zeros(IxDyn(&out_shape));
            conv2d::forward_reference(&x, &weight, bias.as_ref(), &params, &mut y_cpu).unwrap();
            let mut dx_cpu = ArrayD::zeros(IxDyn(&case.x));
            conv2d::backward_input_reference(&dy, &weight, &params, &mut dx_cpu).unwrap();
            let mut dweight_cpu = ArrayD::zeros(IxDyn(&case.weight));
            conv2d::backward_weight_reference(&x, &dy, &params, &mut dweight_cpu).unwrap();
            let mut dbias_cpu = ArrayD::zeros(IxDyn(&[case.weight[0]]));
            bias::backward(&dy, &mut dbias_cpu).unwrap();

            let x_gpu = gpu.tensor("x", x.view()).unwrap();
            let weight_gpu = gpu.tensor("weight", weight.view()).unwrap();
            let bias_gpu = bias.map(|b| gpu.tensor("bias", b.view()).unwrap());
            let dy_gpu = gpu.tensor("dy", dy.view()).unwrap();

            let mut y = gpu.full("y", &out_shape, f32::NAN).unwrap();
            gpu.conv2d_forward(&x_gpu, &weight_gpu, bias_gpu.as_ref(), &params, &mut y)
                .unwrap();
            let mut dx = gpu.full("dx", &case.x, f32::NAN).unwrap();
            gpu.conv2d_backward_input(&dy_gpu, &weight_gpu, &params, &mut dx)
                .unwrap();
            let mut dweight = gpu.full("dweight", &case.weight, f32::NAN).unwrap();
            gpu.conv2d_backward_weight(&x_gpu, &dy_gpu, &params, &mut dweight)
                .unwrap();
            let mut dbias = gpu.full("dbias", &[case.weight[0]], f32::NAN).unwrap();
            gpu.bias_backward(&dy_gpu, &mut dbias).unwrap();

            let tolerance = SUM_TOLERANCE;
            assert_close(
                &format!("{what} y"),
                &gpu.read(&y).unwrap(),
                &y_cpu,
                tolerance,
            );
            assert_close(
                &format!("{what} dx"),
                &gpu.read(&dx).unwrap(),
                &dx_cpu,
                tolerance,
            );
            assert_close(
                &format!("{what} dweight"),
                &gpu.read(&dweight).unwrap(),
                &dweight_cpu,
                tolerance,
            );
            assert_close(
                &format!("{what} dbias"),
                &gpu.read(&dbias).unwrap(),
                &dbias_cpu,
                tolerance,
            );
        }
    }
}

#[test]
fn conv2d_overwrites_output_on_repeat() {
    // A second call with other data must replace every element, not add to it.
    let mut rng = rng("conv2d_overwrites_output_on_repeat");
    let params = conv([1, 1], [1, 1], [1, 1]);
    for gpu in gpu_backends() {
        let mut y = gpu.full("y", &[2, 5, 6, 7], f32::NAN).unwrap();
        let mut expected = ArrayD::zeros(IxDyn(&[2, 5, 6, 7]));
        for _ in 0..2 {
            let x = random(&mut rng, &[2, 3, 6, 7]);
            let weight = random(&mut rng, &[5, 3, 3, 3]);
            conv2d::forward_reference(&x, &weight, None, &params, &mut expected).unwrap();
            let x = gpu.tensor("x", x.view()).unwrap();
            let weight = gpu.tensor("weight", weight.view()).unwrap();
            gpu.conv2d_forward(&x, &weight, None, &params, &mut y)
                .unwrap();
        }
        assert_close(
            &format!("second y on {}", gpu.device_name()),
            &gpu.read(&y).unwrap(),
            &expected,
            SUM_TOLERANCE,
        );
    }
}

#[test]
fn bias_backward_matches_cpu() {
    let mut rng = rng("bias_backward_matches_cpu");
    for gpu in gpu_backends() {
        // 67 channels need two workgroups, and [7, 3] is the 2-D dy of a linear layer.
        for shape in [
            vec![3, 5, 7, 9],
            vec![1, 6, 1, 1],
            vec![7, 3],
            vec![130, 67],
        ] {
            let what = format!("dy {shape:?} on {}", gpu.device_name());
            let dy = random(&mut rng, &shape);
            let mut expected = ArrayD::zeros(IxDyn(&[shape[1]]));
            bias::backward(&dy, &mut expected).unwrap();

            let dy = gpu.tensor("dy", dy.view()).unwrap();
            let mut dbias = gpu.full("dbias", &[shape[1]], f32::NAN).unwrap();
            gpu.bias_backward(&dy, &mut dbias).unwrap();
            assert_close(&what, &gpu.read(&dbias).unwrap(), &expected, SUM_TOLERANCE);
        }
    }
}

#[test]
fn conv2d_matches_pytorch() {
    for gpu in gpu_backends() {
        for case in cases::of_op("conv2d") {
            run_pytorch_case(&gpu, &case);
        }
    }
}

/// Runs one PyTorch case on `backend`: y, and the gradients of x, weight and bias.
fn run_pytorch_case<B: Backend>(backend: &B, case: &serde_json::Value) {
    let name = case["name"].as_str().unwrap();
    let what = format!("{name} on {}", backend.device_name());
    let params = Conv2dParams {
        stride: cases::pair(&case["params"]["stride"], 1),
        padding: cases::pair(&case["params"]["padding"], 0),
        dilation: cases::pair(&case["params"]["dilation"], 1),
    };
    let inputs = &case["inputs"];
    let x = cases::tensor(&inputs["x"]);
    let weight = cases::tensor(&inputs["weight"]);
    let bias = inputs.get("bias").map(cases::tensor);
    let dy = cases::tensor(&case["grad_output"]);

    let x_t = backend.tensor("x", x.view()).unwrap();
    let weight_t = backend.tensor("weight", weight.view()).unwrap();
    let bias_t = bias.map(|b| backend.tensor("bias", b.view()).unwrap());
    let dy_t = backend.tensor("dy", dy.view()).unwrap();

    let mut y = backend.full("y", dy.shape(), f32::NAN).unwrap();
    backend
        .conv2d_forward(&x_t, &weight_t, bias_t.as_ref(), &params, &mut y)
        .unwrap();
    let expected = cases::tensor(&case["outputs"]["y"]);
    assert_close(
        &format!("{what} y"),
        &backend.read(&y).unwrap(),
        &expected,
        SUM_TOLERANCE,
    );

    let mut dx = backend.full("dx", x.shape(), f32::NAN).unwrap();
    backend
        .conv2d_backward_input(&dy_t, &weight_t, &params, &mut dx)
        .unwrap();
    let expected = cases::tensor(&case["grads"]["x"]);
    assert_close(
        &format!("{what} dx"),
        &backend.read(&dx).unwrap(),
        &expected,
        SUM_TOLERANCE,
    );

    let mut dweight = backend.full("dweight", weight.shape(), f32::NAN).unwrap();
    backend
        .conv2d_backward_weight(&x_t, &dy_t, &params, &mut dweight)
        .unwrap();
    let expected = cases::tensor(&case["grads"]["weight"]);
    assert_close(
        &format!("{what} dweight"),
        &backend.read(&dweight).unwrap(),
        &expected,
        SUM_TOLERANCE,
    );

    if bias_t.is_some() {
        let mut dbias = backend
            .full("dbias", &[weight.shape()[0]], f32::NAN)
            .unwrap();
        backend.bias_backward(&dy_t, &mut dbias).unwrap();
        let expected = cases::tensor(&case["grads"]["bias"]);
        assert_close(
            &format!("{what} dbias"),
            &backend.read(&dbias).unwrap(),
            &expected,
            SUM_TOLERANCE,
        );
    }
}

fn bits(values: &ArrayD<f32>) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn weight_and_bias_gradients_are_deterministic() {
    let mut rng = rng("weight_and_bias_gradients_are_deterministic");
    let params = conv([1, 1], [2, 2], [1, 1]);
    let x = random(&mut rng, &[8, 16, 14, 14]);
    let dy = random(&mut rng, &[8, 32, 14, 14]);
    for gpu in gpu_backends() {
        let x = gpu.tensor("x", x.view()).unwrap();
        let dy = gpu.tensor("dy", dy.view()).unwrap();
        let mut runs = Vec::new();
        for _ in 0..2 {
            let mut dweight = gpu.full("dweight", &[32, 16, 5, 5], f32::NAN).unwrap();
            gpu.conv2d_backward_weight(&x, &dy, &params, &mut dweight)
                .unwrap();
            let mut dbias = gpu.full("dbias", &[32], f32::NAN).unwrap();
            gpu.bias_backward(&dy, &mut dbias).unwrap();
            runs.push((
                bits(&gpu.read(&dweight).unwrap()),
                bits(&gpu.read(&dbias).unwrap()),
            ));
        }
        let name = gpu.device_name();
        assert!(
            runs[0].0 == runs[1].0,
            "dweight bits differ between runs on {name}"
        );
        assert!(
            runs[0].1 == runs[1].1,
            "dbias bits differ between runs on {name}"
        );
    }
}

fn random_tensor(gpu: &GpuBackend, rng: &mut ChaCha8Rng, shape: &[usize]) -> GpuTensor {
    gpu.tensor("random", random(rng, shape).view()).unwrap()
}

fn is_shape_error<T>(result: wgcnn::Result<T>) -> bool {
    matches!(result, Err(Error::Shape { .. }))
}

#[test]
fn conv2d_rejects_bad_shapes_on_gpu() {
    let mut rng = rng("conv2d_rejects_bad_shapes_on_gpu");
    let params = conv([1, 1], [1, 1], [1, 1]);
    for gpu in gpu_backends() {
        let mut tensor = |shape: &[usize]| random_tensor(&gpu, &mut rng, shape);
        let x = tensor(&[1, 3, 8, 8]);
        let weight = tensor(&[4, 3, 3, 3]);
        let mut y = gpu.zeros("y", &[1, 4, 8, 8]).unwrap();

        let wrong_weight = tensor(&[4, 2, 3, 3]);
        let error = gpu
            .conv2d_forward(&x, &wrong_weight, None, &params, &mut y)
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Shape { .. }), "{message}");
        assert!(
            message.contains("[4, 2, 3, 3]") && message.contains("[1, 3, 8, 8]"),
            "{message}"
        );
        let wrong_bias = tensor(&[3]);
        assert!(is_shape_error(gpu.conv2d_forward(
            &x,
            &weight,
            Some(&wrong_bias),
            &params,
            &mut y
        )));

        let small = tensor(&[1, 1, 4, 4]);
        let large_kernel = tensor(&[1, 1, 7, 7]);
        let mut y_small = gpu.zeros("y", &[1, 1, 1, 1]).unwrap();
        assert!(is_shape_error(gpu.conv2d_forward(
            &small,
            &large_kernel,
            None,
            &params,
            &mut y_small
        )));

        let wrong_dy = tensor(&[1, 4, 7, 8]);
        let mut dx = gpu.zeros("dx", &[1, 3, 8, 8]).unwrap();
        assert!(is_shape_error(
            gpu.conv2d_backward_input(&wrong_dy, &weight, &params, &mut dx)
        ));
        let mut dweight = gpu.zeros("dweight", &[4, 3, 3, 3]).unwrap();
        assert!(is_shape_error(gpu.conv2d_backward_weight(
            &x,
            &wrong_dy,
            &params,
            &mut dweight
        )));
        let mut dbias = gpu.zeros("dbias", &[5]).unwrap();
        assert!(is_shape_error(gpu.bias_backward(&wrong_dy, &mut dbias)));
    }
}

/// Times LeNet's second convolution (x [64, 16, 14, 14], weight [32, 16, 5, 5], padding 2)
/// on every test adapter and on the CPU path. It prints milliseconds and GFLOP/s and asserts
/// nothing. Run it with
/// `cargo test --test gpu_conv2d lenet_conv2_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn lenet_conv2_timing() {
    let mut rng = rng("lenet_conv2_timing");
    let params = conv([1, 1], [2, 2], [1, 1]);
    let x = random(&mut rng, &[64, 16, 14, 14]);
    let weight = random(&mut rng, &[32, 16, 5, 5]);
    let bias = random(&mut rng, &[32]);
    let dy = random(&mut rng, &[64, 32, 14, 14]);
    // Multiply-adds of one pass, the same for forward, dx and dweight.
    let flops = 2.0 * 64.0 * 32.0 * 14.0 * 14.0 * 16.0 * 25.0;

    for gpu in gpu_backends() {
        time_passes(&gpu, &x, &weight, &bias, &dy, &params, flops);
    }
    time_passes(&CpuBackend::new(), &x, &weight, &bias, &dy, &params, flops);
}

fn time_passes<B: Backend>(
    backend: &B,
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    bias: &ArrayD<f32>,
    dy: &ArrayD<f32>,
    params: &Conv2dParams,
    flops: f64,
) {
    const REPEATS: u32 = 5;
    let x = backend.tensor("x", x.view()).unwrap();
    let weight_t = backend.tensor("weight", weight.view()).unwrap();
    let bias = backend.tensor("bias", bias.view()).unwrap();
    let dy = backend.tensor("dy", dy.view()).unwrap();
    let mut y = backend.zeros("y", backend.shape(&dy)).unwrap();
    let mut dx = backend.zeros("dx", backend.shape(&x)).unwrap();
    let mut dweight = backend.zeros("dweight", weight.shape()).unwrap();

    let time = |pass: &str, run: &mut dyn FnMut()| {
        // The first run builds the pipeline; reading a result waits for the GPU.
        run();
        backend.read(&bias).unwrap();
        let start = Instant::now();
        for _ in 0..REPEATS {
            run();
        }
        backend.read(&bias).unwrap();
        let seconds = start.elapsed().as_secs_f64() / f64::from(REPEATS);
        eprintln!(
            "{:<40} {pass:<16} {:8.2} ms {:7.2} GFLOP/s",
            backend.device_name(),
            seconds * 1e3,
            flops / seconds / 1e9
        );
    };
    time("forward", &mut || {
        backend
            .conv2d_forward(&x, &weight_t, Some(&bias), params, &mut y)
            .unwrap()
    });
    time("backward_input", &mut || {
        backend
            .conv2d_backward_input(&dy, &weight_t, params, &mut dx)
            .unwrap()
    });
    time("backward_weight", &mut || {
        backend
            .conv2d_backward_weight(&x, &dy, params, &mut dweight)
            .unwrap()
    });
}
