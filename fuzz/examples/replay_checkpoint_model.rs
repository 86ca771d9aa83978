//! Writes the checkpoint file that the `checkpoint_model` target builds from one fuzz input,
//! so a finding can become a regression test that feeds the exact file bytes to the loader.
//!
//! Run from `fuzz/` with
//! `cargo run --example replay_checkpoint_model -- INPUT OUTPUT.safetensors`.

use libfuzzer_sys::arbitrary::Unstructured;
use wgcnn_fuzz::checkpoint_bytes;

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = &arguments[..] else {
        eprintln!("usage: replay_checkpoint_model INPUT OUTPUT.safetensors");
        std::process::exit(2);
    };
    let data = std::fs::read(input).expect("the fuzz input can be read");
    let bytes =
        checkpoint_bytes(&mut Unstructured::new(&data)).expect("the generator accepts any input");
    std::fs::write(output, &bytes).expect("the checkpoint can be written");

    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("a valid file");
    let metadata = header.metadata().clone().unwrap_or_default();
    for key in ["input_shape", "architecture", "optimizer"] {
        if let Some(value) = metadata.get(key) {
            println!("{key}: {value}");
        }
    }
    for (name, info) in header.tensors() {
        println!("tensor {name}: {:?}", info.shape);
    }
}
