//! The CPU convolution and bias gradient: finite-difference gradient checks, the im2col path
//! against the plain loops, the PyTorch reference cases and shape errors.

mod common;

use common::cases;
use common::{SUM_TOLERANCE, assert_close, random, rng};
use ndarray::{ArrayD, IxDyn};
use wgcnn::cpu::{bias, conv2d};
use wgcnn::{Backend, Conv2dParams, CpuBackend, Error};

/// The convolution is linear in each of its inputs, so central differences carry no
/// truncation error. What remains is the float32 rounding of `y` (relative 6e-8 per element)
/// divided by the step 2h = 0.2, by estimate a few 1e-6 of the gradient. So 1e-4 leaves a
/// margin and still fails on any wrong or missing term.
const FINITE_DIFFERENCE_TOLERANCE: f32 = 1e-4;
const STEP: f32 = 0.1;

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

/// Odd and non-square sizes, strides, padding, dilation, batch 1 and channel counts that are
/// not multiples of 4.
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
            x: [2, 5, 8, 11],
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
            // The dilated kernel exactly fills the padded input: a 1x1 output.
            x: [1, 3, 4, 5],
            weight: [2, 3, 6, 7],
            bias: true,
            params: conv([1, 1], [1, 1], [1, 1]),
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

/// Computes `Σ y · r` for the convolution of `x` and `weight`, in `f64`.
fn weighted_sum(
    x: &ArrayD<f32>,
    weight: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
    params: &Conv2dParams,
    r: &ArrayD<f32>,
) -> f64 {
    let mut y = ArrayD::zeros(r.shape());
    conv2d::forward_reference(x, weight, bias, params, &mut y).unwrap();
    y.iter()
        .zip(r.iter())
        .map(|(&y, &r)| f64::from(y) * f64::from(r))
        .sum()
}

/// Computes the central-difference gradient of `f` with respect to every element of `input`.
fn numerical_gradient(input: &ArrayD<f32>, mut f: impl FnMut(&ArrayD<f32>) -> f64) -> ArrayD<f32> {
    let mut gradient = ArrayD::zeros(input.shape());
    let mut probe = input.clone();
    for (index, g) in gradient.indexed_iter_mut() {
        let original = probe[&index];
        probe[&index] = original + STEP;
        let up = f(&probe);
        probe[&index] = original - STEP;
        let down = f(&probe);
        probe[&index] = original;
        *g = ((up - down) / (2.0 * f64::from(STEP))) as f32;
    }
    gradient
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    let mut rng = rng("conv2d_gradients_match_finite_differences");
    let cpu = CpuBackend::new();
    for case in cases() {
        let what = format!("x {:?} weight {:?} {:?}", case.x, case.weight, case.params);
        let x = random(&mut rng, &case.x);
        let weight = random(&mut rng, &case.weight);
        let bias = random(&mut rng, &[case.weight[0]]);
        let bias = case.bias.then_some(&bias);
        let out_shape = output_shape(&case);
        // The gradient of Σ y · r with respect to y is r.
        let r = random(&mut rng, &out_shape);
        let params = case.params;

        let mut dx = cpu.full("dx", &case.x, f32::NAN).unwrap();
        cpu.conv2d_backward_input(&r, &weight, &params, &mut dx)
            .unwrap();
        let expected = numerical_gradient(&x, |x| weighted_sum(x, &weight, bias, &params, &r));
        assert_close(
            &format!("{what} dx"),
            &dx,
            &expected,
            FINITE_DIFFERENCE_TOLERANCE,
        );

        let mut dweight = cpu.full("dweight", &case.weight, f32::NAN).unwrap();
        cpu.conv2d_backward_weight(&x, &r, &params, &mut dweight)
            .unwrap();
        let expected = numerical_gradient(&weight, |w| weighted_sum(&x, w, bias, &params, &r));
        assert_close(
            &format!("{what} dweight"),
            &dweight,
            &expected,
            FINITE_DIFFERENCE_TOLERANCE,
        );

        if let Some(bias) = bias {
            let mut dbias = cpu.full("dbias", &[case.weight[0]], f32::NAN).unwrap();
            cpu.bias_backward(&r, &mut dbias).unwrap();
            let expected =
                numerical_gradient(bias, |b| weighted_sum(&x, &weight, Some(b), &params, &r));
            assert_close(
                &format!("{what} dbias"),
                &dbias,
                &expected,
                FINITE_DIFFERENCE_TOLERANCE,
            );
        }
    }
}

#[test]
fn bias_gradient_of_2d_dy_matches_finite_differences() {
    let mut rng = rng("bias_gradient_of_2d_dy_matches_finite_differences");
    let x = random(&mut rng, &[5, 7]);
    let b = random(&mut rng, &[7]);
    let r = random(&mut rng, &[5, 7]);
    // f(b) = Σ (x + b) · r, with b broadcast along the batch as a linear layer adds it.
    let f = |b: &ArrayD<f32>| -> f64 {
        let y = &x + b;
        y.iter()
            .zip(r.iter())
            .map(|(&y, &r)| f64::from(y) * f64::from(r))
            .sum()
    };
    let mut dbias = ArrayD::from_elem(IxDyn(&[7]), f32::NAN);
    bias::backward(&r, &mut dbias).unwrap();
    assert_close(
        "dbias of [5, 7]",
        &dbias,
        &numerical_gradient(&b, f),
        FINITE_DIFFERENCE_TOLERANCE,
    );
}

#[test]
fn conv2d_matrix_product_matches_loops() {
    let mut rng = rng("conv2d_matrix_product_matches_loops");
    let mut all = cases();
    all.push(Case {
        x: [3, 16, 14, 14],
        weight: [32, 16, 5, 5],
        bias: true,
        params: conv([1, 1], [2, 2], [1, 1]),
    });
    // More images than one parallel task takes, in a count no task size divides.
    all.push(Case {
        x: [9, 3, 11, 10],
        weight: [5, 3, 3, 4],
        bias: true,
        params: conv([2, 1], [1, 2], [1, 1]),
    });
    for case in all {
        let what = format!("x {:?} weight {:?} {:?}", case.x, case.weight, case.params);
        let x = random(&mut rng, &case.x);
        let weight = random(&mut rng, &case.weight);
        let bias = random(&mut rng, &[case.weight[0]]);
        let bias = case.bias.then_some(&bias);
        let out_shape = output_shape(&case);
        let dy = random(&mut rng, &out_shape);
        let params = case.params;

        let mut fast = ArrayD::from_elem(IxDyn(&out_shape), f32::NAN);
        let mut slow = fast.clone();
        conv2d::forward(&x, &weight, bias, &params, &mut fast).unwrap();
        conv2d::forward_reference(&x, &weight, bias, &params, &mut slow).unwrap();
        assert_close(&format!("{what} y"), &fast, &slow, SUM_TOLERANCE);

        let mut fast = ArrayD::from_elem(IxDyn(&case.x), f32::NAN);
        let mut slow = fast.clone();
        conv2d::backward_input(&dy, &weight, &params, &mut fast).unwrap();
        conv2d::backward_input_reference(&dy, &weight, &params, &mut slow).unwrap();
        assert_close(&format!("{what} dx"), &fast, &slow, SUM_TOLERANCE);

        let mut fast = ArrayD::from_elem(IxDyn(&case.weight), f32::NAN);
        let mut slow = fast.clone();
        conv2d::backward_weight(&x, &dy, &params, &mut fast).unwrap();
        conv2d::backward_weight_reference(&x, &dy, &params, &mut slow).unwrap();
        assert_close(&format!("{what} dweight"), &fast, &slow, SUM_TOLERANCE);
    }
}

#[test]
fn conv2d_accepts_non_standard_layouts() {
    let mut rng = rng("conv2d_accepts_non_standard_layouts");
    let params = conv([1, 2], [1, 0], [1, 1]);
    // Weight and x stored transposed in memory, viewed back in their logical shapes.
    let weight = random(&mut rng, &[3, 2, 3, 4]);
    let weight_t = weight.t().as_standard_layout().into_owned().reversed_axes();
    let x = random(&mut rng, &[2, 2, 6, 7]);
    let x_t = x.t().as_standard_layout().into_owned().reversed_axes();
    assert!(!weight_t.is_standard_layout());
    assert!(!x_t.is_standard_layout());

    let mut expected = ArrayD::zeros(IxDyn(&[2, 3, 6, 2]));
    conv2d::forward_reference(&x, &weight, None, &params, &mut expected).unwrap();
    let mut y = ArrayD::from_elem(IxDyn(&[2, 3, 6, 2]), f32::NAN);
    conv2d::forward(&x_t, &weight_t, None, &params, &mut y).unwrap();
    assert_close("y from transposed layouts", &y, &expected, SUM_TOLERANCE);

    // An output stored transposed is written through a copy.
    let mut y_t = ArrayD::from_elem(IxDyn(&[2, 6, 3, 2]), f32::NAN).reversed_axes();
    assert!(!y_t.is_standard_layout());
    conv2d::forward(&x, &weight, None, &params, &mut y_t).unwrap();
    assert_close("y into a transposed output", &y_t, &expected, SUM_TOLERANCE);

    let mut expected = ArrayD::zeros(IxDyn(&[2, 2, 6, 7]));
    conv2d::backward_input_reference(&y, &weight, &params, &mut expected).unwrap();
    let mut dx_t = ArrayD::from_elem(IxDyn(&[7, 6, 2, 2]), f32::NAN).reversed_axes();
    conv2d::backward_input(&y, &weight_t, &params, &mut dx_t).unwrap();
    assert_close(
        "dx into a transposed output",
        &dx_t,
        &expected,
        SUM_TOLERANCE,
    );
}

#[test]
fn conv2d_weight_gradient_repeats_bits() {
    let mut rng = rng("conv2d_weight_gradient_repeats_bits");
    let params = conv([1, 1], [2, 2], [1, 1]);
    let x = random(&mut rng, &[13, 3, 9, 9]);
    let dy = random(&mut rng, &[13, 4, 9, 9]);

    let mut first = ArrayD::from_elem(IxDyn(&[4, 3, 5, 5]), f32::NAN);
    let mut second = first.clone();
    conv2d::backward_weight(&x, &dy, &params, &mut first).unwrap();
    conv2d::backward_weight(&x, &dy, &params, &mut second).unwrap();
    let bits = |a: &ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&first),
        bits(&second),
        "dweight differs between two runs"
    );
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

#[test]
fn conv2d_matches_pytorch_on_cpu() {
    let cpu = CpuBackend::new();
    for case in cases::of_op("conv2d") {
        run_pytorch_case(&cpu, &case);
    }
}

#[test]
fn conv2d_loops_match_pytorch() {
    for case in cases::of_op("conv2d") {
        let name = case["name"].as_str().unwrap();
        let params = Conv2dParams {
            stride: cases::pair(&case["params"]["stride"], 1),
            padding: cases::pair(&case["params"]["padding"], 0),
            dilation: cases::pair(&case["params"]["dilation"], 1),
        };
        let x = cases::tensor(&case["inputs"]["x"]);
        let weight = cases::tensor(&case["inputs"]["weight"]);
        let bias = case["inputs"].get("bias").map(cases::tensor);
        let dy = cases::tensor(&case["grad_output"]);

        let mut y = ArrayD::from_elem(dy.raw_dim(), f32::NAN);
        conv2d::forward_reference(&x, &weight, bias.as_ref(), &params, &mut y).unwrap();
        let expected = cases::tensor(&case["outputs"]["y"]);
        assert_close(&format!("{name} y"), &y, &expected, SUM_TOLERANCE);

        let mut dx = ArrayD::from_elem(x.raw_dim(), f32::NAN);
        conv2d::backward_input_reference(&dy, &weight, &params, &mut dx).unwrap();
        let expected = cases::tensor(&case["grads"]["x"]);
        assert_close(&format!("{name} dx"), &dx, &expected, SUM_TOLERANCE);

        let mut dweight = ArrayD::from_elem(weight.raw_dim(), f32::NAN);
        conv2d::backward_weight_reference(&x, &dy, &params, &mut dweight).unwrap();
        let expected = cases::tensor(&case["grads"]["weight"]);
        assert_close(
            &format!("{name} dweight"),
            &dweight,
            &expected,
            SUM_TOLERANCE,
        );
    }
}

fn is_shape_error<T>(result: wgcnn::Result<T>) -> bool {
    matches!(result, Err(Error::Shape { .. }))
}

#[test]
fn conv2d_rejects_mismatched_shapes() {
    let mut rng = rng("conv2d_rejects_mismatched_shapes");
    let cpu = CpuBackend::new();
    let params = conv([1, 1], [1, 1], [1, 1]);
    let x = random(&mut rng, &[1, 3, 8, 8]);
    let weight = random(&mut rng, &[4, 3, 3, 3]);
    let bias = random(&mut rng, &[4]);
    let mut y = ArrayD::zeros(IxDyn(&[1, 4, 8, 8]));

    // Weight for 2 input channels, input with 3: the error names both shapes.
    let wrong_weight = random(&mut rng, &[4, 2, 3, 3]);
    let error = cpu
        .conv2d_forward(&x, &wrong_weight, None, &params, &mut y)
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Shape { .. }), "{message}");
    assert!(
        message.contains("[4, 2, 3, 3]") && message.contains("[1, 3, 8, 8]"),
        "{message}"
    );

    let wrong_bias = random(&mut rng, &[5]);
    assert!(is_shape_error(cpu.conv2d_forward(
        &x,
        &weight,
        Some(&wrong_bias),
        &params,
        &mut y
    )));
    let mut wrong_y = ArrayD::zeros(IxDyn(&[1, 4, 6, 6]));
    assert!(is_shape_error(cpu.conv2d_forward(
        &x,
        &weight,
        Some(&bias),
        &params,
        &mut wrong_y
    )));
    let x3 = random(&mut rng, &[3, 8, 8]);
    assert!(is_shape_error(
        cpu.conv2d_forward(&x3, &weight, None, &params, &mut y)
    ));

    // dy of the wrong size for dx, and dweight of the wrong size for x.
    let dy = random(&mut rng, &[1, 4, 7, 8]);
    let mut dx = ArrayD::zeros(IxDyn(&[1, 3, 8, 8]));
    assert!(is_shape_error(
        cpu.conv2d_backward_input(&dy, &weight, &params, &mut dx)
    ));
    let mut wrong_dx = ArrayD::zeros(IxDyn(&[1, 2, 8, 8]));
    let dy = random(&mut rng, &[1, 4, 8, 8]);
    assert!(is_shape_error(cpu.conv2d_backward_input(
        &dy,
        &weight,
        &params,
        &mut wrong_dx
    )));
    let mut wrong_dweight = ArrayD::zeros(IxDyn(&[4, 3, 3, 2]));
    let dy_other = random(&mut rng, &[1, 5, 8, 8]);
    assert!(is_shape_error(cpu.conv2d_backward_weight(
        &x,
        &dy_other,
        &params,
        &mut wrong_dweight
    )));
    let mut dweight = ArrayD::zeros(IxDyn(&[4, 3, 3, 3]));
    assert!(is_shape_error(cpu.conv2d_backward_weight(
        &x,
        &dy_other,
        &params,
        &mut dweight
    )));

    let mut wrong_dbias = ArrayD::zeros(IxDyn(&[3]));
    assert!(is_shape_error(cpu.bias_backward(&dy, &mut wrong_dbias)));
    let dy3 = random(&mut rng, &[1, 4, 8]);
    let mut dbias = ArrayD::zeros(IxDyn(&[4]));
    assert!(is_shape_error(cpu.bias_backward(&dy3, &mut dbias)));
}

#[test]
fn conv2d_rejects_kernel_larger_than_padded_input() {
    let mut rng = rng("conv2d_rejects_kernel_larger_than_padded_input");
    let cpu = CpuBackend::new();
    let x = random(&mut rng, &[1, 1, 4, 4]);
    let weight = random(&mut rng, &[1, 1, 7, 7]);
    let mut y = ArrayD::zeros(IxDyn(&[1, 1, 1, 1]));
    let params = conv([1, 1], [1, 1], [1, 1]);
    assert!(is_shape_error(
        cpu.conv2d_forward(&x, &weight, None, &params, &mut y)
    ));
    // A 3x3 kernel with dilation 3 spans 7 pixels, also more than 4 + 2 * 1.
    let weight = random(&mut rng, &[1, 1, 3, 3]);
    let dilated = conv([1, 1], [1, 1], [3, 3]);
    assert!(is_shape_error(
        cpu.conv2d_forward(&x, &weight, None, &dilated, &mut y)
    ));
    let mut dx = ArrayD::zeros(IxDyn(&[1, 1, 4, 4]));
    assert!(is_shape_error(
        cpu.conv2d_backward_input(&y, &weight, &dilated, &mut dx)
    ));
    let zero_stride = conv([0, 1], [1, 1], [1, 1]);
    assert!(is_shape_error(cpu.conv2d_forward(
        &x,
        &weight,
        None,
        &zero_stride,
        &mut y
    )));
}
