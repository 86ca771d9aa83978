//! Optimizer kernels against the CPU reference and PyTorch.

mod common;

use common::{assert_close, cases, gpu_backends, random, rng};
use ndarray::ArrayD;
use serde_json::Value;
use wgcnn::{AdamConfig, Backend, CpuBackend, Error, SgdConfig};

/// Both paths evaluate the same formulas per element; WGSL's sqrt and division may differ
/// from Rust's by an ulp, and a few steps compound that.
const STEP_TOLERANCE: f32 = 1e-6;

/// PyTorch computed in float64; float32 steps land within about 1e-5 of it.
const PYTORCH_TOLERANCE: f32 = 1e-5;

/// One optimizer and its configuration.
#[derive(Clone, Copy, Debug)]
enum Optimizer {
    Sgd(SgdConfig),
    Adam(AdamConfig),
}

/// The parameter after `grads.len()` steps with learning rate `lrs[i]` at step `i + 1`,
/// on any backend. The optimizer state starts at zero.
fn run_steps<B: Backend>(
    backend: &B,
    optimizer: Optimizer,
    param: &ArrayD<f32>,
    grads: &[ArrayD<f32>],
    lrs: &[f32],
) -> Vec<ArrayD<f32>> {
    let mut param_t = backend.tensor("param", param.view()).unwrap();
    // Poisoned state: the first step must not read it (SGD) or reads it as zero (Adam).
    let mut state_a = match optimizer {
        Optimizer::Sgd(_) => backend.full("velocity", param.shape(), f32::NAN).unwrap(),
        Optimizer::Adam(_) => backend.zeros("m", param.shape()).unwrap(),
    };
    let mut state_b = backend.zeros("v", param.shape()).unwrap();
    let mut grad_t = backend.zeros("grad", param.shape()).unwrap();
    let mut after_each = Vec::new();
    for (index, (grad, &lr)) in grads.iter().zip(lrs).enumerate() {
        let step = index as u64 + 1;
        backend.write(&mut grad_t, grad.view()).unwrap();
        match optimizer {
            Optimizer::Sgd(config) => backend
                .sgd_step(&mut param_t, &grad_t, &mut state_a, &config, lr, step)
                .unwrap(),
            Optimizer::Adam(config) => backend
                .adam_step(
                    &mut param_t,
                    &grad_t,
                    &mut state_a,
                    &mut state_b,
                    &config,
                    lr,
                    step,
                )
                .unwrap(),
        }
        after_each.push(backend.read(&param_t).unwrap());
    }
    after_each
}

fn optimizers() -> Vec<Optimizer> {
    let sgd = SgdConfig::default();
    let adam = AdamConfig::default();
    vec![
        Optimizer::Sgd(sgd),
        Optimizer::Sgd(SgdConfig {
            weight_decay: 0.01,
            ..sgd
        }),
        Optimizer::Sgd(SgdConfig {
            momentum: 0.9,
            ..sgd
        }),
        Optimizer::Sgd(SgdConfig {
            momentum: 0.9,
            dampening: 0.3,
            weight_decay: 0.05,
            ..sgd
        }),
        Optimizer::Sgd(SgdConfig {
            momentum: 0.8,
            nesterov: true,
            weight_decay: 0.01,
            ..sgd
        }),
        Optimizer::Adam(adam),
        Optimizer::Adam(AdamConfig {
            weight_decay: 0.05,
            ..adam
        }),
        Optimizer::Adam(AdamConfig {
            weight_decay: 0.1,
            decoupled: true,
            ..adam
        }),
        Optimizer::Adam(AdamConfig {
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-6,
            ..adam
        }),
    ]
}

#[test]
fn optimizers_match_cpu() {
    let mut rng = rng("optimizers_match_cpu");
    let cpu = CpuBackend::new();
    // A learning rate that changes every step, as a schedule does.
    let lrs = [0.1, 0.05, 0.02, 0.01];
    for gpu in gpu_backends() {
        for optimizer in optimizers() {
            // 1000 elements: not a multiple of the workgroup size.
            for shape in [vec![1], vec![1000], vec![3, 5, 7]] {
                let param = random(&mut rng, &shape);
                let grads: Vec<ArrayD<f32>> =
                    lrs.iter().map(|_| random(&mut rng, &shape)).collect();
                let actual = run_steps(&gpu, optimizer, &param, &grads, &lrs);
                let expected = run_steps(&cpu, optimizer, &param, &grads, &lrs);
                for (step, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
                    assert_close(
                        &format!(
                            "{optimizer:?} {shape:?} step {} on {}",
                            step + 1,
                            gpu.device_name()
                        ),
                        actual,
                        expected,
                        STEP_TOLERANCE,
                    );
                }
            }
        }
    }
}

/// Runs each invalid call on any backend and checks the error kind.
fn check_errors<B: Backend>(backend: &B) {
    let mut param = backend.zeros("param", &[3, 4]).unwrap();
    let grad = backend.zeros("grad", &[3, 4]).unwrap();
    let wrong_grad = backend.zeros("grad", &[4, 3]).unwrap();
    let mut state = backend.zeros("state", &[3, 4]).unwrap();
    let mut wrong_state = backend.zeros("state", &[12]).unwrap();
    let mut v = backend.zeros("v", &[3, 4]).unwrap();
    let sgd = SgdConfig::default();
    let adam = AdamConfig::default();
    let name = backend.device_name();

    let shape_errors = [
        (
            "sgd grad",
            backend.sgd_step(&mut param, &wrong_grad, &mut state, &sgd, 0.1, 1),
        ),
        (
            "sgd velocity",
            backend.sgd_step(&mut param, &grad, &mut wrong_state, &sgd, 0.1, 1),
        ),
        (
            "adam grad",
            backend.adam_step(&mut param, &wrong_grad, &mut state, &mut v, &adam, 0.1, 1),
        ),
        (
            "adam m",
            backend.adam_step(&mut param, &grad, &mut wrong_state, &mut v, &adam, 0.1, 1),
        ),
    ];
    for (what, result) in shape_errors {
        assert!(
            matches!(result, Err(Error::Shape { .. })),
            "{what} on {name}: expected a shape error, got {result:?}"
        );
    }
    let result = backend.sgd_step(&mut param, &grad, &mut state, &sgd, 0.1, 0);
    assert!(
        matches!(result, Err(Error::InvalidArgument { .. })),
        "sgd step 0 on {name}: {result:?}"
    );
    let result = backend.adam_step(&mut param, &grad, &mut state, &mut v, &adam, 0.1, 0);
    assert!(
        matches!(result, Err(Error::InvalidArgument { .. })),
        "adam step 0 on {name}: {result:?}"
    );
}

#[test]
fn optimizer_errors() {
    check_errors(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_errors(&gpu);
    }
}

/// The optimizer a PyTorch case describes, with PyTorch's defaults for absent fields.
fn case_optimizer(case: &Value) -> (Optimizer, f32) {
    let params = &case["params"];
    let get = |name: &str, default: f64| params[name].as_f64().unwrap_or(default) as f32;
    let lr = get("lr", 0.001);
    let optimizer = match case["op"].as_str().unwrap() {
        "sgd" => Optimizer::Sgd(SgdConfig {
            momentum: get("momentum", 0.0),
            dampening: get("dampening", 0.0),
            weight_decay: get("weight_decay", 0.0),
            nesterov: params["nesterov"].as_bool().unwrap_or(false),
        }),
        op => {
            let decoupled = op == "adamw";
            let betas = params["betas"].as_array();
            let beta =
                |i: usize, default: f64| betas.map_or(default, |b| b[i].as_f64().unwrap()) as f32;
            Optimizer::Adam(AdamConfig {
                beta1: beta(0, 0.9),
                beta2: beta(1, 0.999),
                eps: get("eps", 1e-8),
                weight_decay: get("weight_decay", if decoupled { 0.01 } else { 0.0 }),
                decoupled,
            })
        }
    };
    (optimizer, lr)
}

/// Checks every PyTorch optimizer case on one backend.
fn check_pytorch_cases<B: Backend>(backend: &B) {
    for op in ["sgd", "adam", "adamw"] {
        for case in cases::of_op(op) {
            let name = format!("{} on {}", case["name"], backend.device_name());
            let (optimizer, lr) = case_optimizer(&case);
            let param = cases::tensor(&case["inputs"]["param"]);
            let grads: Vec<ArrayD<f32>> = case["inputs"]["grads_per_step"]
                .as_array()
                .unwrap()
                .iter()
                .map(cases::tensor)
                .collect();
            let lrs = vec![lr; grads.len()];
            let actual = run_steps(backend, optimizer, &param, &grads, &lrs);
            let expected = case["outputs"]["param_after_step"].as_array().unwrap();
            assert_eq!(actual.len(), expected.len(), "{name}: step count");
            for (step, (actual, expected)) in actual.iter().zip(expected).enumerate() {
                assert_close(
                    &format!("{name} step {}", step + 1),
                    actual,
                    &cases::tensor(expected),
                    PYTORCH_TOLERANCE,
                );
            }
        }
    }
}

#[test]
fn optimizers_match_pytorch() {
    check_pytorch_cases(&CpuBackend::new());
    for gpu in gpu_backends() {
        check_pytorch_cases(&gpu);
    }
}
