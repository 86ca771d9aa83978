//! Loss kernels against the CPU reference and PyTorch.

mod common;

use common::{SUM_TOLERANCE, assert_close, cases, gpu_backends, random, rng};
use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use wgcnn::{Backend, CpuBackend, Error};

/// Batch sizes and class counts: a single row, a single class, odd sizes, and more rows than
/// the 64 invocations of the reducing workgroup, so each invocation sums several rows.
const CLASS_SHAPES: [(usize, usize); 6] = [(1, 10), (4, 10), (3, 1), (65, 7), (300, 13), (2000, 3)];

/// Random logits in [-4, 4) and labels, as the test inputs of one shape.
fn random_batch(rng: &mut impl Rng, rows: usize, classes: usize) -> (ArrayD<f32>, Vec<u32>) {
    let logits = random(rng, &[rows, classes]).mapv(|v| 4.0 * v);
    let labels = (0..rows)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    (logits, labels)
}

/// The loss and its gradient, written into poisoned outputs, on any backend.
fn cross_entropy<B: Backend>(
    backend: &B,
    logits: &ArrayD<f32>,
    labels: &[u32],
) -> (f32, ArrayD<f32>) {
    let classes = logits.shape()[1];
    let logits_t = backend.tensor("logits", logits.view()).unwrap();
    let labels_t = backend.labels("labels", labels, classes).unwrap();
    let mut loss = backend.full("loss", &[1], f32::NAN).unwrap();
    let mut dlogits = backend.full("dlogits", logits.shape(), f32::NAN).unwrap();
    backend
        .softmax_cross_entropy(&logits_t, &labels_t, &mut loss, &mut dlogits)
        .unwrap();
    (
        backend.read(&loss).unwrap()[[0]],
        backend.read(&dlogits).unwrap(),
    )
}

fn count_correct<B: Backend>(backend: &B, logits: &ArrayD<f32>, labels: &[u32]) -> f32 {
    let classes = logits.shape()[1];
    let logits_t = backend.tensor("logits", logits.view()).unwrap();
    let labels_t = backend.labels("labels", labels, classes).unwrap();
    let mut correct = backend.full("correct", &[1], f32::NAN).unwrap();
    backend
        .count_correct(&logits_t, &labels_t, &mut correct)
        .unwrap();
    backend.read(&correct).unwrap()[[0]]
}

fn mse<B: Backend>(backend: &B, pred: &ArrayD<f32>, target: &ArrayD<f32>) -> (f32, ArrayD<f32>) {
    let pred_t = backend.tensor("pred", pred.view()).unwrap();
    let target_t = backend.tensor("target", target.view()).unwrap();
    let mut loss = backend.full("loss", &[1], f32::NAN).unwrap();
    let mut dpred = backend.full("dpred", pred.shape(), f32::NAN).unwrap();
    backend
        .mse_loss(&pred_t, &target_t, &mut loss, &mut dpred)
        .unwrap();
    (
        backend.read(&loss).unwrap()[[0]],
        backend.read(&dpred).unwrap(),
    )
}

fn scalar(value: f32) -> ArrayD<f32> {
    ArrayD::from_elem(IxDyn(&[1]), value)
}

#[test]
fn cross_entropy_matches_cpu() {
    let mut rng = rng("cross_entropy_matches_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for (rows, classes) in CLASS_SHAPES {
            let (logits, labels) = random_batch(&mut rng, rows, classes);
            let what = format!("{rows}x{classes} on {}", gpu.device_name());
            let (loss, dlogits) = cross_entropy(&gpu, &logits, &labels);
            let (expected_loss, expected_dlogits) = cross_entropy(&cpu, &logits, &labels);
            assert_close(
                &format!("{what} loss"),
                &scalar(loss),
                &scalar(expected_loss),
                SUM_TOLERANCE,
            );
            assert_close(
                &format!("{what} dlogits"),
                &dlogits,
                &expected_dlogits,
                SUM_TOLERANCE,
            );
        }
    }
}

#[test]
fn count_correct_matches_cpu() {
    let mut rng = rng("count_correct_matches_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for (rows, classes) in CLASS_SHAPES {
            // Integer logits in -2..=2 tie often, which tests that the first maximum wins.
            let (logits, labels) = random_batch(&mut rng, rows, classes);
            let logits = logits.mapv(|v| (v / 2.0).round());
            let what = format!("{rows}x{classes} on {}", gpu.device_name());
            let correct = count_correct(&gpu, &logits, &labels);
            assert_eq!(correct, count_correct(&cpu, &logits, &labels), "{what}");
        }
    }
}

#[test]
fn count_correct_first_maximum_wins() {
    // Rows 0 and 1 tie between classes 0 and 2; only label 0 counts as correct.
    let logits = ArrayD::from_shape_vec(
        vec![3, 3],
        vec![5.0, 1.0, 5.0, 5.0, 1.0, 5.0, 0.0, 9.0, 1.0],
    )
    .unwrap();
    let labels = [0, 2, 1];
    assert_eq!(count_correct(&CpuBackend::new(), &logits, &labels), 2.0);
    for gpu in gpu_backends() {
        assert_eq!(
            count_correct(&gpu, &logits, &labels),
            2.0,
            "on {}",
            gpu.device_name()
        );
    }
}

#[test]
fn cross_entropy_huge_logits_are_exact() {
    // The row max is shifted out before exp, so ±1e8 neither overflows nor loses the loss:
    // row 0 costs exactly 1e8 (label 1 sits 1e8 below the max) and row 1 costs 0.
    let logits = ArrayD::from_shape_vec(vec![2, 3], vec![1e8, 0.0, -1e8, -1e8, 1e8, 0.0]).unwrap();
    let labels = [1, 1];
    let expected_loss = 5e7;
    let expected_dlogits =
        ArrayD::from_shape_vec(vec![2, 3], vec![0.5, -0.5, 0.0, 0.0, 0.0, 0.0]).unwrap();

    let (loss, dlogits) = cross_entropy(&CpuBackend::new(), &logits, &labels);
    assert_eq!(loss, expected_loss, "on the CPU");
    assert_eq!(dlogits, expected_dlogits, "on the CPU");
    for gpu in gpu_backends() {
        let (loss, dlogits) = cross_entropy(&gpu, &logits, &labels);
        assert_eq!(loss, expected_loss, "on {}", gpu.device_name());
        assert_eq!(dlogits, expected_dlogits, "on {}", gpu.device_name());
    }
}

#[test]
fn mse_matches_cpu() {
    let mut rng = rng("mse_matches_cpu");
    let cpu = CpuBackend::new();
    for gpu in gpu_backends() {
        for shape in [
            vec![1],
            vec![3, 4],
            vec![5, 7, 9],
            vec![70, 33],
            vec![2, 1, 3, 3],
        ] {
            let pred = random(&mut rng, &shape);
            let target = random(&mut rng, &shape);
            let what = format!("{shape:?} on {}", gpu.device_name());
            let (loss, dpred) = mse(&gpu, &pred, &target);
            let (expected_loss, expected_dpred) = mse(&cpu, &pred, &target);
            assert_close(
                &format!("{what} loss"),
                &scalar(loss),
                &scalar(expected_loss),
                SUM_TOLERANCE,
            );
            assert_close(
                &format!("{what} dpred"),
                &dpred,
                &expected_dpred,
                SUM_TOLERANCE,
            );
        }
    }
}

#[test]
fn losses_are_deterministic() {
    let mut rng = rng("losses_are_deterministic");
    for gpu in gpu_backends() {
        let (logits, labels) = random_batch(&mut rng, 1999, 10);
        let first = cross_entropy(&gpu, &logits, &labels);
        let second = cross_entropy(&gpu, &logits, &labels);
        assert_eq!(
            first.0.to_bits(),
            second.0.to_bits(),
            "cross-entropy on {}",
            gpu.device_name()
        );

        let pred = random(&mut rng, &[1999, 10]);
        let target = random(&mut rng, &[1999, 10]);
        let first = mse(&gpu, &pred, &target);
        let second = mse(&gpu, &pred, &target);
        assert_eq!(
            first.0.to_bits(),
            second.0.to_bits(),
            "mse on {}",
            gpu.device_name()
        );
    }
}

/// Runs each shape error on any backend and checks that it is an `Error::Shape`.
fn check_shape_errors<B: Backend>(backend: &B) {
    let logits = backend.zeros("logits", &[4, 3]).unwrap();
    let logits_3d = backend.zeros("logits", &[4, 3, 1]).unwrap();
    let labels = backend.labels("labels", &[0, 1, 2, 0], 3).unwrap();
    let short_labels = backend.labels("labels", &[0, 1, 2], 3).unwrap();
    let mut loss = backend.zeros("loss", &[1]).unwrap();
    let mut wrong_loss = backend.zeros("loss", &[2]).unwrap();
    let mut dlogits = backend.zeros("dlogits", &[4, 3]).unwrap();
    let mut wrong_dlogits = backend.zeros("dlogits", &[3, 4]).unwrap();
    let pred = backend.zeros("pred", &[2, 5]).unwrap();
    let wrong_target = backend.zeros("target", &[5, 2]).unwrap();
    let mut dpred = backend.zeros("dpred", &[2, 5]).unwrap();
    let mut correct = backend.zeros("correct", &[1]).unwrap();

    let results = [
        (
            "label count",
            backend.softmax_cross_entropy(&logits, &short_labels, &mut loss, &mut dlogits),
        ),
        (
            "3-D logits",
            backend.softmax_cross_entropy(&logits_3d, &labels, &mut loss, &mut dlogits),
        ),
        (
            "loss shape",
            backend.softmax_cross_entropy(&logits, &labels, &mut wrong_loss, &mut dlogits),
        ),
        (
            "dlogits shape",
            backend.softmax_cross_entropy(&logits, &labels, &mut loss, &mut wrong_dlogits),
        ),
        (
            "count label count",
            backend.count_correct(&logits, &short_labels, &mut correct),
        ),
        (
            "correct shape",
            backend.count_correct(&logits, &labels, &mut wrong_loss),
        ),
        (
            "mse target shape",
            backend.mse_loss(&pred, &wrong_target, &mut loss, &mut dpred),
        ),
        (
            "mse loss shape",
            backend.mse_loss(&pred, &pred, &mut wrong_loss, &mut dpred),
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
fn loss_shape_errors() {
    check_shape_errors(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_shape_errors(&gpu);
    }
}

/// Checks that a label not below the class count is an error on any backend.
fn check_label_range<B: Backend>(backend: &B) {
    let result = backend.labels("labels", &[0, 3, 1], 3);
    assert!(
        matches!(
            result,
            Err(Error::LabelOutOfRange {
                label: 3,
                index: 1,
                classes: 3
            })
        ),
        "on {}: got {result:?}",
        backend.device_name()
    );
    let mut labels = backend.labels("labels", &[0, 1, 1], 3).unwrap();
    let result = backend.write_labels(&mut labels, &[0, 1, 7], 3);
    assert!(
        matches!(
            result,
            Err(Error::LabelOutOfRange {
                label: 7,
                index: 2,
                classes: 3
            })
        ),
        "on {}: got {result:?}",
        backend.device_name()
    );
}

#[test]
fn labels_out_of_range_are_errors() {
    check_label_range(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_label_range(&gpu);
    }
}

#[test]
fn cpu_cross_entropy_rejects_labels_beyond_logits() {
    // Labels checked against 10 classes, used with logits of 3.
    let cpu = CpuBackend::new();
    let logits = ArrayD::zeros(vec![2, 3]);
    let labels = cpu.labels("labels", &[0, 5], 10).unwrap();
    let mut loss = ArrayD::zeros(vec![1]);
    let mut dlogits = ArrayD::zeros(vec![2, 3]);
    let result = cpu.softmax_cross_entropy(&logits, &labels, &mut loss, &mut dlogits);
    assert!(
        matches!(
            result,
            Err(Error::LabelOutOfRange {
                label: 5,
                index: 1,
                classes: 3
            })
        ),
        "got {result:?}"
    );
}

#[test]
fn gpu_cross_entropy_poisons_labels_beyond_logits() {
    // The GPU cannot check labels against the logits without a readback, so a label beyond
    // the logits' width makes the loss NaN instead of reading another row.
    for gpu in gpu_backends() {
        let logits = gpu.zeros("logits", &[2, 3]).unwrap();
        let labels = gpu.labels("labels", &[0, 5], 10).unwrap();
        let mut loss = gpu.zeros("loss", &[1]).unwrap();
        let mut dlogits = gpu.zeros("dlogits", &[2, 3]).unwrap();
        gpu.softmax_cross_entropy(&logits, &labels, &mut loss, &mut dlogits)
            .unwrap();
        let loss = gpu.read(&loss).unwrap()[[0]];
        assert!(loss.is_nan(), "on {}: loss {loss}", gpu.device_name());
    }
}

/// Checks every PyTorch loss case on one backend.
fn check_pytorch_cases<B: Backend>(backend: &B) {
    for case in cases::of_op("softmax_cross_entropy") {
        let name = format!("{} on {}", case["name"], backend.device_name());
        let logits = cases::tensor(&case["inputs"]["logits"]);
        let labels = cases::labels(&case["inputs"]["labels"]);
        let expected_loss = case["outputs"]["loss"].as_f64().unwrap() as f32;
        let (loss, dlogits) = cross_entropy(backend, &logits, &labels);
        assert!(loss.is_finite(), "{name}: loss {loss}");
        assert_close(
            &format!("{name} loss"),
            &scalar(loss),
            &scalar(expected_loss),
            SUM_TOLERANCE,
        );
        assert_close(
            &format!("{name} dlogits"),
            &dlogits,
            &cases::tensor(&case["grads"]["logits"]),
            SUM_TOLERANCE,
        );
    }
    for case in cases::of_op("mse_loss") {
        let name = format!("{} on {}", case["name"], backend.device_name());
        let pred = cases::tensor(&case["inputs"]["pred"]);
        let target = cases::tensor(&case["inputs"]["target"]);
        let expected_loss = case["outputs"]["loss"].as_f64().unwrap() as f32;
        let (loss, dpred) = mse(backend, &pred, &target);
        assert_close(
            &format!("{name} loss"),
            &scalar(loss),
            &scalar(expected_loss),
            SUM_TOLERANCE,
        );
        assert_close(
            &format!("{name} dpred"),
            &dpred,
            &cases::tensor(&case["grads"]["pred"]),
            SUM_TOLERANCE,
        );
    }
}

#[test]
fn losses_match_pytorch() {
    check_pytorch_cases(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_pytorch_cases(&gpu);
    }
}

#[test]
fn cross_entropy_large_logits_case_is_exact() {
    // PyTorch's loss for logits of ±1e4 is exactly 5000, which float32 represents.
    let case = cases::of_op("softmax_cross_entropy")
        .into_iter()
        .find(|c| c["name"] == "cross_entropy_large_logits")
        .expect("the large-logits case");
    let logits = cases::tensor(&case["inputs"]["logits"]);
    let labels = cases::labels(&case["inputs"]["labels"]);
    let expected = case["outputs"]["loss"].as_f64().unwrap() as f32;
    assert_eq!(
        cross_entropy(&CpuBackend::new(), &logits, &labels).0,
        expected
    );
    for gpu in gpu_backends() {
        assert_eq!(
            cross_entropy(&gpu, &logits, &labels).0,
            expected,
            "on {}",
            gpu.device_name()
        );
    }
}
