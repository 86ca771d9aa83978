//! Writes the seed corpus under `fuzz/seeds/`: a few tiny valid files for each target.
//!
//! Run from `fuzz/` with `cargo run --example make_seeds`. A rerun writes the same bytes,
//! except that the checkpoints may list their metadata keys in another order.

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use wgcnn::checkpoint::{self, SaveInfo};
use wgcnn::nn::{LayerSpec, LrSchedule, Model, Optimizer, OptimizerKind};
use wgcnn::{AdamConfig, CpuBackend, SgdConfig};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

fn idx(magic: u32, dimensions: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for dimension in dimensions {
        bytes.extend(dimension.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

fn write(folder: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(folder).expect("the seeds folder can be created");
    fs::write(folder.join(name), bytes).expect("the seed file can be written");
}

fn idx_seeds(seeds: &Path) {
    let pixels: Vec<u8> = (0..2 * 3 * 2).map(|i| (i * 21) as u8).collect();
    let images = idx(0x0803, &[2, 3, 2], &pixels);
    let folder = seeds.join("idx_images");
    write(&folder, "two-3x2-images", &images);
    write(&folder, "two-3x2-images.gz", &gzip(&images));
    // A gzip file of two members, as `cat a.gz b.gz` makes; the reader decodes both.
    let (head, tail) = images.split_at(7);
    write(
        &folder,
        "two-3x2-images-two-members.gz",
        &[gzip(head), gzip(tail)].concat(),
    );

    let labels = idx(0x0801, &[5], &[0, 9, 3, 3, 7]);
    let folder = seeds.join("idx_labels");
    write(&folder, "five-labels", &labels);
    write(&folder, "five-labels.gz", &gzip(&labels));
}

fn cifar_seeds(seeds: &Path) {
    let record = |label: u8| -> Vec<u8> {
        let mut bytes = vec![label];
        bytes.extend((0..3 * 32 * 32).map(|i| (i % 251) as u8));
        bytes
    };
    let folder = seeds.join("cifar_batch");
    write(&folder, "one-record.bin", &record(4));
    write(&folder, "two-records.bin", &[record(0), record(9)].concat());
}

fn checkpoint_seeds(seeds: &Path) {
    let backend = CpuBackend;
    let layers = [
        LayerSpec::conv2d(1, 2, 3, 1),
        LayerSpec::batch_norm2d(2),
        LayerSpec::Relu,
        LayerSpec::max_pool2d(2),
        LayerSpec::Flatten,
        LayerSpec::Dropout { p: 0.25 },
        LayerSpec::linear(8, 3),
    ];
    let model = Model::new(&backend, &[1, 4, 4], &layers, 7).expect("the seed model is valid");
    let info = SaveInfo {
        epoch: 1,
        seed: 7,
        training: serde_json::json!({ "batch_size": 2 }),
    };
    let folder = seeds.join("checkpoint");

    let bytes = checkpoint::to_bytes(&backend, &model, None, &info).expect("the model saves");
    write(&folder, "conv-bn-linear.safetensors", &bytes);

    let optimizers = [
        (
            "adam",
            OptimizerKind::Adam(AdamConfig::default()),
            LrSchedule::Cosine {
                total_steps: 10,
                min_lr: 0.0,
            },
        ),
        (
            "sgd",
            OptimizerKind::Sgd(SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            }),
            LrSchedule::Step {
                step_size: 3,
                gamma: 0.5,
            },
        ),
    ];
    for (name, kind, schedule) in optimizers {
        let optimizer =
            Optimizer::new(&backend, &model, kind, 0.01, schedule).expect("the optimizer is valid");
        let bytes = checkpoint::to_bytes(&backend, &model, Some(&optimizer), &info)
            .expect("the model and optimizer save");
        write(
            &folder,
            &format!("conv-bn-linear-{name}.safetensors"),
            &bytes,
        );
    }
}

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    idx_seeds(&seeds);
    cifar_seeds(&seeds);
    checkpoint_seeds(&seeds);
    println!("wrote the seed corpus to {}", seeds.display());
}
