//! Builds a small CNN in code, trains it for a few batches on the Fashion-MNIST slice shipped
//! with the tests, and evaluates it. Runs on the GPU when an adapter is found, else on the CPU.
//!
//! `cargo run --release --example train_small`

use std::ops::ControlFlow;
use std::path::Path;

use wgcnn::data::{Split, load_fashion_mnist};
use wgcnn::nn::{LayerSpec, LrSchedule, Model, Optimizer, OptimizerKind};
use wgcnn::train::{FitConfig, Progress, Trainer, fit};
use wgcnn::{Backend, CpuBackend, GpuBackend, GpuOptions, SgdConfig};

fn run<B: Backend>(backend: &B) -> wgcnn::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fashion-mnist-slice");
    let mut train = load_fashion_mnist(&dir, Split::Train)?;
    let mut test = load_fashion_mnist(&dir, Split::Test)?;
    let normalization = train.channel_mean_std()?;
    train.normalize(&normalization)?;
    test.normalize(&normalization)?;

    let layers = vec![
        LayerSpec::conv2d(1, 8, 3, 1),
        LayerSpec::Relu,
        LayerSpec::max_pool2d(2),
        LayerSpec::Flatten,
        LayerSpec::linear(8 * 14 * 14, 10),
    ];
    let mut model = Model::new(backend, &[1, 28, 28], &layers, 42)?;
    let sgd = OptimizerKind::Sgd(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    let mut optimizer = Optimizer::new(backend, &model, sgd, 0.02, LrSchedule::Constant)?;
    println!(
        "{} parameters, training on {}",
        model.parameter_count(),
        backend.device_name()
    );

    let config = FitConfig {
        epochs: 1,
        batch_size: 32,
        max_steps: Some(40),
        ..FitConfig::default()
    };
    fit(
        backend,
        &mut model,
        &mut optimizer,
        &train,
        None,
        &config,
        |progress| {
            if let Progress::Step { step, loss, .. } = progress
                && step % 10 == 0
            {
                println!("step {step}: loss {loss:.4}");
            }
            ControlFlow::Continue(())
        },
    )?;

    let evaluation = Trainer::new().evaluate(backend, &mut model, &test, 250)?;
    println!(
        "test loss {:.4}, test accuracy {:.4} on {} images",
        evaluation.loss,
        evaluation.accuracy,
        test.len()
    );
    Ok(())
}

fn main() -> wgcnn::Result<()> {
    match GpuBackend::new(&GpuOptions::from_env()?) {
        Ok(gpu) => run(&gpu),
        Err(error) => {
            eprintln!("no GPU ({error}); training on the CPU");
            run(&CpuBackend)
        }
    }
}
