//! `wgcnn eval`: test loss and accuracy of a checkpoint.

use std::path::PathBuf;

use clap::Args;
use wgcnn::checkpoint;
use wgcnn::data::{DatasetKind, Split};
use wgcnn::gpu::{BackendChoice, GpuBackend};
use wgcnn::train::Trainer;
use wgcnn::{Backend, CpuBackend};

use super::train::{DeviceChoice, Recorded, choose_dataset, load_split};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint written by `wgcnn train --save`.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Data set to evaluate on [default: the one the checkpoint recorded, else fashion-mnist].
    #[arg(long, ignore_case = true, value_parser = super::dataset_parser())]
    dataset: Option<DatasetKind>,
    #[arg(long, value_name = "DIR", help = super::DATA_DIR_HELP)]
    data_dir: Option<PathBuf>,
    /// Images per evaluation batch.
    #[arg(
        long,
        default_value_t = 500,
        allow_negative_numbers = true,
        value_parser = super::whole_number::<usize>(1, 500)
    )]
    batch_size: usize,
    /// Where to evaluate.
    #[arg(long, value_enum, default_value = "gpu")]
    device: DeviceChoice,
    /// Graphics API for --device gpu: auto, vulkan, metal, dx12 or gl. Default: WGCNN_BACKEND, else auto.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Use the adapter whose name contains this text (case-insensitive).
    #[arg(long)]
    adapter: Option<String>,
}

pub fn run(args: EvalArgs) -> wgcnn::Result<()> {
    super::check_checkpoint_file("--checkpoint", &args.checkpoint)?;
    let checkpoint = checkpoint::load(&args.checkpoint)?;
    let recorded = Recorded::of(&checkpoint)?;
    let dataset = choose_dataset(args.dataset, recorded.dataset)?;
    let mut test = load_split(dataset, args.data_dir.as_deref(), Split::Test)?;
    if test.is_empty() {
        return Err(wgcnn::Error::DataMismatch(format!(
            "the test set of {} contains no images; give a folder with the full data set \
             (--data-dir)",
            dataset.name()
        )));
    }
    if let Some(normalization) = &recorded.normalization {
        test.normalize(normalization)?;
    }
    match args.device {
        DeviceChoice::Cpu => evaluate_on(&CpuBackend, &checkpoint, &test, args.batch_size),
        DeviceChoice::Gpu => {
            let options = super::gpu_options(args.backend, args.adapter.as_deref())?;
            let gpu = GpuBackend::new(&options)?;
            evaluate_on(&gpu, &checkpoint, &test, args.batch_size)
        }
    }
}

fn evaluate_on<B: Backend>(
    backend: &B,
    checkpoint: &checkpoint::Checkpoint,
    test: &wgcnn::data::Dataset,
    batch_size: usize,
) -> wgcnn::Result<()> {
    let mut model = checkpoint.build_model(backend)?;
    let evaluation = Trainer::new().evaluate(backend, &mut model, test, batch_size)?;
    println!(
        "test loss {:.4}, test accuracy {:.4} ({} images, device {})",
        evaluation.loss,
        evaluation.accuracy,
        test.len(),
        backend.device_name()
    );
    Ok(())
}
