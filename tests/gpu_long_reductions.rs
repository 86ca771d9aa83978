//! Reductions long enough to pass the loop limit of Mesa's llvmpipe and lavapipe.
//!
//! gallivm (Mesa 22.3) ends an invocation's loops after 65,535 iterations in total, counted
//! across every loop of the invocation, and reports nothing: the sum is just short. Each case
//! here sums more terms than that per output, at the LeNet shapes at batch 256 and at a
//! matrix product with 70,000 rows in its reduction, and compares with the CPU path.

mod common;

use common::{assert_close, gpu_backends, random, rng};
use ndarray::{ArrayD, Axis, IxDyn};
use wgcnn::gpu::Conv2dVariant;
use wgcnn::{Backend, Conv2dParams, CpuBackend};

/// Sums of up to 200,000 products in f32, in another order than the CPU, drift by a few
/// ulp per term more than the short sums of `SUM_TOLERANCE` allow; a missing chunk of terms
/// is still a relative error near 1.
const LONG_SUM_TOLERANCE: f32 = 1e-4;

const SAME_5X5: Conv2dParams = Conv2dParams {
    stride: [1, 1],
    padding: [2, 2],
    dilation: [1, 1],
};

#[test]
fn conv2d_backward_weight_batch_256() {
    let mut rng = rng("conv2d_backward_weight_batch_256");
    let cpu = CpuBackend;
    // The two LeNet convolutions: 256 · 28 · 28 and 256 · 14 · 14 terms per weight.
    let layers = [
        ([256, 1, 28, 28], [16, 1, 5, 5]),
        ([256, 16, 14, 14], [32, 16, 5, 5]),
    ];
    for gpu in gpu_backends() {
        for (variant, (x_shape, weight_shape)) in [
            Conv2dVariant::Direct,
            Conv2dVariant::Gemm,
            Conv2dVariant::Slide,
        ]
        .into_iter()
        .flat_map(|variant| layers.map(|layer| (variant, layer)))
        {
            gpu.force_conv2d_variant(Some(variant));
            let dy_shape = [x_shape[0], weight_shape[0], x_shape[2], x_shape[3]];
            let x = random(&mut rng, &x_shape);
            let dy = random(&mut rng, &dy_shape);
            let mut expected = ArrayD::zeros(IxDyn(&weight_shape));
            cpu.conv2d_backward_weight(&x, &dy, &SAME_5X5, &mut expected)
                .unwrap();

            let x = gpu.tensor("x", x.view()).unwrap();
            let dy = gpu.tensor("dy", dy.view()).unwrap();
            let mut dweight = gpu.full("dweight", &weight_shape, f32::NAN).unwrap();
            gpu.conv2d_backward_weight(&x, &dy, &SAME_5X5, &mut dweight)
                .unwrap();
            assert_close(
                &format!(
                    "{variant:?} dweight for x {x_shape:?} on {}",
                    gpu.device_name()
                ),
                &gpu.read(&dweight).unwrap(),
                &expected,
                LONG_SUM_TOLERANCE,
            );
        }
    }
}

#[test]
fn conv2d_backward_input_many_channels() {
    let mut rng = rng("conv2d_backward_input_many_channels");
    let cpu = CpuBackend;
    // 288 · 5 · 5 terms per input pixel: the implicit product's loop over them, 4 at a time,
    // with its inner loops would pass the loop limit unless they are unrolled.
    let (x_shape, weight_shape) = ([2, 3, 6, 7], [288, 3, 5, 5]);
    let dy_shape = [x_shape[0], weight_shape[0], x_shape[2], x_shape[3]];
    for gpu in gpu_backends() {
        for variant in [
            Conv2dVariant::Direct,
            Conv2dVariant::Gemm,
            Conv2dVariant::Slide,
        ] {
            gpu.force_conv2d_variant(Some(variant));
            let weight = random(&mut rng, &weight_shape);
            let dy = random(&mut rng, &dy_shape);
            let mut expected = ArrayD::zeros(IxDyn(&x_shape));
            cpu.conv2d_backward_input(&dy, &weight, &SAME_5X5, &mut expected)
                .unwrap();

            let weight = gpu.tensor("weight", weight.view()).unwrap();
            let dy = gpu.tensor("dy", dy.view()).unwrap();
            let mut dx = gpu.full("dx", &x_shape, f32::NAN).unwrap();
            gpu.conv2d_backward_input(&dy, &weight, &SAME_5X5, &mut dx)
                .unwrap();
            assert_close(
                &format!("{variant:?} dx on {}", gpu.device_name()),
                &gpu.read(&dx).unwrap(),
                &expected,
                LONG_SUM_TOLERANCE,
            );
        }
    }
}

#[test]
fn bias_backward_batch_256() {
    let mut rng = rng("bias_backward_batch_256");
    let cpu = CpuBackend;
    for gpu in gpu_backends() {
        for shape in [[256, 16, 28, 28], [256, 32, 14, 14]] {
            let dy = random(&mut rng, &shape);
            let mut expected = ArrayD::zeros(IxDyn(&[shape[1]]));
            cpu.bias_backward(&dy, &mut expected).unwrap();

            let dy = gpu.tensor("dy", dy.view()).unwrap();
            let mut dbias = gpu.full("dbias", &[shape[1]], f32::NAN).unwrap();
            gpu.bias_backward(&dy, &mut dbias).unwrap();
            assert_close(
                &format!("dbias for dy {shape:?} on {}", gpu.device_name()),
                &gpu.read(&dbias).unwrap(),
                &expected,
                LONG_SUM_TOLERANCE,
            );
        }
    }
}

#[test]
fn linear_backward_weight_batch_256() {
    let mut rng = rng("linear_backward_weight_batch_256");
    let cpu = CpuBackend;
    for gpu in gpu_backends() {
        let x = random(&mut rng, &[256, 1568]);
        let dy = random(&mut rng, &[256, 128]);
        let mut expected = ArrayD::zeros(IxDyn(&[128, 1568]));
        cpu.linear_backward_weight(&x, &dy, &mut expected).unwrap();

        let x = gpu.tensor("x", x.view()).unwrap();
        let dy = gpu.tensor("dy", dy.view()).unwrap();
        let mut dweight = gpu.full("dweight", &[128, 1568], f32::NAN).unwrap();
        gpu.linear_backward_weight(&x, &dy, &mut dweight).unwrap();
        assert_close(
            &format!("linear dweight on {}", gpu.device_name()),
            &gpu.read(&dweight).unwrap(),
            &expected,
            LONG_SUM_TOLERANCE,
        );
    }
}

/// `op(a) op(b)` in f64 by ndarray, rounded to f32.
fn reference_product(a: &ArrayD<f32>, b: &ArrayD<f32>, transposes: (bool, bool)) -> ArrayD<f32> {
    let a = a
        .mapv(f64::from)
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let b = b
        .mapv(f64::from)
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let a = if transposes.0 { a.reversed_axes() } else { a };
    let b = if transposes.1 { b.reversed_axes() } else { b };
    a.dot(&b).mapv(|v| v as f32).into_dyn()
}

#[test]
fn matmul_k_70000() {
    let mut rng = rng("matmul_k_70000");
    const K: usize = 70_000;
    // Each layout, aligned to the vec4 kernels, and n = 7 for the general kernel.
    for gpu in gpu_backends() {
        for (transposes, n) in [
            ((true, false), 12),
            ((false, false), 12),
            ((false, true), 12),
            ((true, false), 7),
        ] {
            let m = 8;
            let a_shape = if transposes.0 { [K, m] } else { [m, K] };
            let b_shape = if transposes.1 { [n, K] } else { [K, n] };
            let a = random(&mut rng, &a_shape);
            let b = random(&mut rng, &b_shape);
            let expected = reference_product(&a, &b, transposes);

            let a = gpu.tensor("a", a.view()).unwrap();
            let b = gpu.tensor("b", b.view()).unwrap();
            let mut c = gpu.full("c", &[m, n], f32::NAN).unwrap();
            gpu.matmul(&a, &b, transposes.0, transposes.1, &mut c)
                .unwrap();
            assert_close(
                &format!("{m}x{K}x{n} {transposes:?} on {}", gpu.device_name()),
                &gpu.read(&c).unwrap(),
                &expected,
                LONG_SUM_TOLERANCE,
            );
        }
    }
}

/// The column sums that the bias gradient of a `[rows, columns]` dy takes.
#[test]
fn bias_backward_100000_rows() {
    let mut rng = rng("bias_backward_100000_rows");
    for gpu in gpu_backends() {
        let dy = random(&mut rng, &[100_000, 3]);
        let expected = dy.sum_axis(Axis(0));
        let dy = gpu.tensor("dy", dy.view()).unwrap();
        let mut dbias = gpu.full("dbias", &[3], f32::NAN).unwrap();
        gpu.bias_backward(&dy, &mut dbias).unwrap();
        assert_close(
            &format!("dbias of 100000 rows on {}", gpu.device_name()),
            &gpu.read(&dbias).unwrap(),
            &expected,
            LONG_SUM_TOLERANCE,
        );
    }
}

/// The split sums add their chunks in a fixed order, so a rerun gives the same bits, and
/// the second run reuses the cached partial-sum buffers instead of creating new ones.
#[test]
fn split_sums_rerun_identically() {
    let mut rng = rng("split_sums_rerun_identically");
    for gpu in gpu_backends() {
        let x = gpu
            .tensor("x", random(&mut rng, &[256, 1, 28, 28]).view())
            .unwrap();
        let dy = gpu
            .tensor("dy", random(&mut rng, &[256, 16, 28, 28]).view())
            .unwrap();
        let a = gpu
            .tensor("a", random(&mut rng, &[70_000, 8]).view())
            .unwrap();
        let mut dweight = gpu.full("dweight", &[16, 1, 5, 5], f32::NAN).unwrap();
        let mut dbias = gpu.full("dbias", &[16], f32::NAN).unwrap();
        let mut c = gpu.full("c", &[8, 8], f32::NAN).unwrap();
        let mut run = || {
            gpu.conv2d_backward_weight(&x, &dy, &SAME_5X5, &mut dweight)
                .unwrap();
            gpu.bias_backward(&dy, &mut dbias).unwrap();
            gpu.matmul(&a, &a, true, false, &mut c).unwrap();
            [&dweight, &dbias, &c].map(|t| {
                let values = gpu.read(t).unwrap();
                values.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            })
        };
        let first = run();
        let counters = gpu.resource_counters();
        let second = run();
        assert_eq!(first, second, "bits of a rerun on {}", gpu.device_name());
        assert_eq!(
            gpu.resource_counters(),
            counters,
            "GPU objects created by a rerun on {}",
            gpu.device_name()
        );
    }
}
