//! Models and training steps: shape inference, GPU against CPU after optimizer steps,
//! finite differences of a whole model, determinism and allocation-free steps.

mod common;

use std::ops::ControlFlow;

use common::small::{small_data, small_specs, small_specs_with};
use common::{assert_close, gpu_backends, rng};
use ndarray::{Array4, ArrayD};
use wgcnn::data::Dataset;
use wgcnn::nn::{LayerSpec, LrSchedule, Mode, Model, Optimizer, OptimizerKind, Workspace};
use wgcnn::train::{FitConfig, Trainer, fit};
use wgcnn::{AdamConfig, Backend, CpuBackend, Error, SgdConfig};

fn read_parameters<B: Backend>(backend: &B, model: &Model<B>) -> Vec<(String, ArrayD<f32>)> {
    model
        .named_tensors()
        .into_iter()
        .map(|(name, tensor)| (name, backend.read(tensor).unwrap()))
        .collect()
}

#[test]
fn model_rejects_misfit_layer() {
    let specs = vec![
        LayerSpec::conv2d(1, 4, 3, 1),
        LayerSpec::Flatten,
        LayerSpec::linear(100, 10),
    ];
    let error = Model::new(&CpuBackend, &[1, 8, 8], &specs, 0).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Shape { .. }), "{message}");
    assert!(message.contains("layer 2"), "{message}");
    assert!(message.contains("[256]"), "{message}");
    assert!(message.contains("[100]"), "{message}");
}

#[test]
fn lenet_parameter_count() {
    let specs = wgcnn::models::lenet(1, 28, 28, 10);
    let model = Model::new(&CpuBackend, &[1, 28, 28], &specs, 0).unwrap();
    assert_eq!(model.parameter_count(), 215_370);
    assert_eq!(model.output_shape(), &[10]);
}

/// Runs `steps` training steps of the small model on one backend and returns its weights.
fn train_small<B: Backend>(
    backend: &B,
    kind: OptimizerKind,
    data: &Dataset,
    steps: usize,
) -> Vec<(String, ArrayD<f32>)> {
    let mut model = Model::new(backend, &[2, 7, 7], &small_specs(), 7).unwrap();
    let mut optimizer = Optimizer::new(backend, &model, kind, 0.05, LrSchedule::Constant).unwrap();
    let mut trainer = Trainer::new();
    for step in 0..steps {
        let start = (step * 5) % (data.len() - 5);
        let indices: Vec<usize> = (start..start + 5).collect();
        trainer
            .train_step(backend, &mut model, &mut optimizer, data, &indices)
            .unwrap();
    }
    read_parameters(backend, &model)
}

#[test]
fn gpu_matches_cpu_after_optimizer_steps() {
    let mut rng = rng("gpu_matches_cpu_after_optimizer_steps");
    let data = small_data(&mut rng, 23);
    let kinds = [
        OptimizerKind::Sgd(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        }),
        OptimizerKind::Adam(AdamConfig::default()),
    ];
    for kind in kinds {
        let expected = train_small(&CpuBackend, kind, &data, 6);
        for gpu in gpu_backends() {
            let actual = train_small(&gpu, kind, &data, 6);
            for ((name, a), (_, e)) in actual.iter().zip(&expected) {
                // Six steps compound the float32 rounding differences of every kernel;
                // 1e-4 still catches a wrong update rule or gradient.
                let what = format!("{kind:?} {name} on {}", gpu.device_name());
                assert_close(&what, a, e, 1e-4);
            }
        }
    }
}

#[test]
fn same_seed_gives_identical_gpu_weights() {
    let mut rng = rng("same_seed_gives_identical_gpu_weights");
    let data = small_data(&mut rng, 20);
    let kind = OptimizerKind::Sgd(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    for gpu in gpu_backends() {
        let first = train_small(&gpu, kind, &data, 4);
        let second = train_small(&gpu, kind, &data, 4);
        for ((name, a), (_, b)) in first.iter().zip(&second) {
            let a_bits: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
            let b_bits: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
            assert_eq!(
                a_bits,
                b_bits,
                "{name} differs between two runs on {}",
                gpu.device_name()
            );
        }
    }
}

/// The CPU path splits batches into fixed-size tasks and adds their partial sums in batch
/// order, so neither the thread count nor the schedule changes a bit of the weights.
#[test]
fn cpu_weights_repeat_across_thread_counts() {
    let mut rng = rng("cpu_weights_repeat_across_thread_counts");
    let data = small_data(&mut rng, 20);
    let kind = OptimizerKind::Sgd(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    let train_on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| train_small(&CpuBackend, kind, &data, 4))
    };
    let first = train_on(1);
    for threads in [1, 3] {
        let second = train_on(threads);
        for ((name, a), (_, b)) in first.iter().zip(&second) {
            let a_bits: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
            let b_bits: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
            assert_eq!(
                a_bits, b_bits,
                "{name} on {threads} threads differs from 1 thread"
            );
        }
    }
}

#[test]
fn training_step_creates_no_gpu_resources() {
    let mut rng = rng("training_step_creates_no_gpu_resources");
    let data = small_data(&mut rng, 30);
    for gpu in gpu_backends() {
        let mut model = Model::new(&gpu, &[2, 7, 7], &small_specs(), 1).unwrap();
        let kind = OptimizerKind::Adam(AdamConfig::default());
        let schedule = LrSchedule::Cosine {
            total_steps: 10,
            min_lr: 0.0,
        };
        let mut optimizer = Optimizer::new(&gpu, &model, kind, 0.01, schedule).unwrap();
        let mut trainer = Trainer::new();
        let indices: Vec<usize> = (0..8).collect();
        trainer
            .train_step(&gpu, &mut model, &mut optimizer, &data, &indices)
            .unwrap();
        let warmed = gpu.resource_counters();
        for _ in 0..3 {
            trainer
                .train_step(&gpu, &mut model, &mut optimizer, &data, &indices)
                .unwrap();
        }
        assert_eq!(gpu.resource_counters(), warmed, "on {}", gpu.device_name());
    }
}

/// The loss of `model` on one fixed batch, in training mode at step 0 (so dropout and batch
/// statistics are the same on every call).
fn batch_loss(model: &mut Model<CpuBackend>, workspace: &mut Workspace<CpuBackend>) -> f64 {
    model
        .forward(&CpuBackend, workspace, Mode::Train, 0)
        .unwrap();
    workspace.softmax_cross_entropy(&CpuBackend).unwrap();
    f64::from(workspace.loss[[0]])
}

#[test]
fn model_gradients_match_finite_differences() {
    let mut rng = rng("model_gradients_match_finite_differences");
    let data = small_data(&mut rng, 6);
    let cpu = CpuBackend;
    // Smooth layers only: a step of a max pooling or leaky ReLU kink inside the finite
    // difference would make the numeric gradient wrong, not the analytic one.
    let average = LayerSpec::AvgPool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    let specs = small_specs_with(average, LayerSpec::Sigmoid);
    let mut model = Model::new(&cpu, &[2, 7, 7], &specs, 3).unwrap();
    let mut workspace = Workspace::new(&cpu, &model, 6, 4).unwrap();
    workspace.activations[0] = data.images().clone().into_dyn();
    cpu.write_labels(&mut workspace.labels, data.labels(), 4)
        .unwrap();

    batch_loss(&mut model, &mut workspace);
    model.backward(&cpu, &mut workspace, 0).unwrap();

    // Central differences in float32 with step 1e-2: the truncation error is O(h²) ≈ 1e-4
    // of the curvature and rounding adds about 1e-7 / h = 1e-5; 2e-2 relative over each
    // parameter tensor leaves room for both and still catches a wrong or missing term.
    let step = 1e-2f32;
    for layer_index in 0..model.layers.len() {
        for param_index in 0..model.layers[layer_index].params.len() {
            let analytic = model.layers[layer_index].params[param_index].grad.clone();
            let mut numeric = ArrayD::zeros(analytic.shape());
            for flat in 0..analytic.len() {
                let value = &mut model.layers[layer_index].params[param_index].value;
                let original = value.as_slice().unwrap()[flat];
                value.as_slice_mut().unwrap()[flat] = original + step;
                let plus = batch_loss(&mut model, &mut workspace);
                let value = &mut model.layers[layer_index].params[param_index].value;
                value.as_slice_mut().unwrap()[flat] = original - step;
                let minus = batch_loss(&mut model, &mut workspace);
                let value = &mut model.layers[layer_index].params[param_index].value;
                value.as_slice_mut().unwrap()[flat] = original;
                numeric.as_slice_mut().unwrap()[flat] =
                    ((plus - minus) / (2.0 * f64::from(step))) as f32;
            }
            let name = model.layers[layer_index].params[param_index].name;
            assert_close(
                &format!("layer {layer_index} {name} gradient"),
                &analytic,
                &numeric,
                2e-2,
            );
        }
    }
}

#[test]
fn fit_stops_when_observer_breaks() {
    let mut rng = rng("fit_stops_when_observer_breaks");
    let data = small_data(&mut rng, 40);
    let cpu = CpuBackend;
    let mut model = Model::new(&cpu, &[2, 7, 7], &small_specs(), 3).unwrap();
    let kind = OptimizerKind::Sgd(SgdConfig::default());
    let mut optimizer = Optimizer::new(&cpu, &model, kind, 0.01, LrSchedule::Constant).unwrap();
    let config = FitConfig {
        epochs: 3,
        batch_size: 8,
        ..FitConfig::default()
    };
    let mut steps = 0;
    let history = fit(
        &cpu,
        &mut model,
        &mut optimizer,
        &data,
        Some(&data),
        &config,
        |p| {
            if let wgcnn::train::Progress::Step { .. } = p {
                steps += 1;
                if steps == 3 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(steps, 3);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].steps, 3);
    assert!(history[0].test_accuracy.is_finite());
}

#[test]
fn fit_rejects_images_of_another_shape() {
    let cpu = CpuBackend;
    let mut model = Model::new(&cpu, &[2, 7, 7], &small_specs(), 3).unwrap();
    let kind = OptimizerKind::Sgd(SgdConfig::default());
    let mut optimizer = Optimizer::new(&cpu, &model, kind, 0.01, LrSchedule::Constant).unwrap();
    let data = Dataset::new(Array4::zeros((4, 1, 7, 7)), vec![0; 4], 4).unwrap();
    let error = fit(
        &cpu,
        &mut model,
        &mut optimizer,
        &data,
        None,
        &FitConfig::default(),
        |_| ControlFlow::Continue(()),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("[1, 7, 7]") && message.contains("[2, 7, 7]"),
        "{message}"
    );
}

#[test]
fn batch_too_large_for_device_is_rejected_before_training() {
    let cpu_specs = wgcnn::models::lenet(1, 28, 28, 10);
    for gpu in gpu_backends() {
        let model = Model::new(&gpu, &[1, 28, 28], &cpu_specs, 0).unwrap();
        // The first convolution's output, [n, 16, 28, 28] floats, one sample over the limit.
        let limit = gpu.context().limits.max_storage_buffer_binding_size;
        let per_sample = 16 * 28 * 28 * 4;
        let batch_size = (limit / per_sample + 1) as usize;
        let error = Workspace::new(&gpu, &model, batch_size, 10).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::TensorTooLarge { .. }), "{message}");
        assert!(message.contains("layer 0 output"), "{message}");
        assert!(message.contains(&limit.to_string()), "{message}");
    }
}

#[test]
fn workspace_too_large_for_host_memory_is_an_error() {
    // A 1x1 convolution with a million output channels has a small weight (4 MB), but its
    // output at batch 65,536 needs 2 * 10^14 bytes. That is more than a 47-bit address space,
    // so the allocation fails everywhere instead of being overcommitted.
    let specs = [LayerSpec::conv2d(1, 1_000_000, 1, 0)];
    let model = Model::new(&CpuBackend, &[1, 28, 28], &specs, 0).unwrap();
    let error = Workspace::new(&CpuBackend, &model, 65_536, 10).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::OutOfMemory { .. }), "{message}");
    assert!(message.contains("layer 0 output"), "{message}");
    assert!(message.contains("smaller batch size"), "{message}");
}
