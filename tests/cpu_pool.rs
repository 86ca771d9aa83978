//! The CPU max pooling's slice loops against its plain indexing loops, on random sizes with
//! strides, padding, overlapping windows and tied maxima.

mod common;

use common::rng;
use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use wgcnn::Pool2dParams;
use wgcnn::cpu::pool;

/// One pooling to test: the input shape and the window.
struct Case {
    x: [usize; 4],
    params: Pool2dParams,
}

fn pool(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Pool2dParams {
    Pool2dParams {
        kernel,
        stride,
        padding,
    }
}

/// Odd and non-square sizes, batch 1, channel counts not multiples of 4, more planes than
/// one parallel task takes, strides below and above the window, and padding.
fn cases() -> Vec<Case> {
    vec![
        Case {
            x: [1, 3, 7, 9],
            params: pool([2, 2], [2, 2], [0, 0]),
        },
        Case {
            x: [3, 5, 28, 28],
            params: pool([2, 2], [2, 2], [0, 0]),
        },
        Case {
            x: [2, 7, 9, 8],
            params: pool([3, 3], [2, 2], [1, 1]),
        },
        Case {
            x: [2, 3, 8, 11],
            params: pool([3, 2], [1, 2], [1, 0]),
        },
        Case {
            x: [1, 6, 10, 7],
            params: pool([2, 3], [3, 4], [1, 1]),
        },
    ]
}

/// Values from a handful of levels, so that many windows hold tied maxima and the first one
/// must win.
fn tied_values(rng: &mut impl Rng, shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        f32::from(rng.random_range(-3i8..=3)) * 0.5
    })
}

fn bits(array: &ArrayD<f32>) -> Vec<u32> {
    array.iter().map(|v| v.to_bits()).collect()
}

/// Both versions pick the same element of each window and add in the same order, so they
/// agree bit for bit.
#[test]
fn max_pool_slices_match_loops() {
    let mut rng = rng("max_pool_slices_match_loops");
    for case in cases() {
        let what = format!("x {:?} {:?}", case.x, case.params);
        let params = case.params;
        let out_shape = params.output_shape("test", &case.x).unwrap();
        let x = tied_values(&mut rng, &case.x);
        let dy = ArrayD::from_shape_fn(IxDyn(&out_shape), |_| rng.random_range(-1.0..1.0));

        let mut fast = ArrayD::from_elem(IxDyn(&out_shape), f32::NAN);
        let mut slow = fast.clone();
        pool::max_forward(&x, &params, &mut fast).unwrap();
        pool::max_forward_reference(&x, &params, &mut slow).unwrap();
        assert_eq!(bits(&fast), bits(&slow), "{what} y");

        let mut fast = ArrayD::from_elem(IxDyn(&case.x), f32::NAN);
        let mut slow = fast.clone();
        pool::max_backward(&x, &dy, &params, &mut fast).unwrap();
        pool::max_backward_reference(&x, &dy, &params, &mut slow).unwrap();
        assert_eq!(bits(&fast), bits(&slow), "{what} dx");
    }
}

#[test]
fn max_pool_writes_transposed_outputs() {
    let mut rng = rng("max_pool_writes_transposed_outputs");
    let params = pool([2, 2], [2, 2], [0, 0]);
    let x = tied_values(&mut rng, &[2, 3, 6, 4]);
    let dy = tied_values(&mut rng, &[2, 3, 3, 2]);

    let mut expected = ArrayD::zeros(IxDyn(&[2, 3, 3, 2]));
    pool::max_forward_reference(&x, &params, &mut expected).unwrap();
    // [2, 3, 3, 2] reversed is itself, stored with the axes in reverse order.
    let mut y_t = ArrayD::from_elem(IxDyn(&[2, 3, 3, 2]), f32::NAN).reversed_axes();
    assert!(!y_t.is_standard_layout());
    pool::max_forward(&x, &params, &mut y_t).unwrap();
    assert_eq!(bits(&y_t), bits(&expected), "y");

    let mut expected = ArrayD::zeros(IxDyn(&[2, 3, 6, 4]));
    pool::max_backward_reference(&x, &dy, &params, &mut expected).unwrap();
    let mut dx_t = ArrayD::from_elem(IxDyn(&[4, 6, 3, 2]), f32::NAN).reversed_axes();
    assert!(!dx_t.is_standard_layout());
    pool::max_backward(&x, &dy, &params, &mut dx_t).unwrap();
    assert_eq!(bits(&dx_t), bits(&expected), "dx");
}
