//! Feeds raw file bytes to the checkpoint loader, then builds the model and the optimizer of
//! every checkpoint that parses.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wgcnn::CpuBackend;

fuzz_target!(|data: &[u8]| {
    let Ok(checkpoint) = wgcnn::checkpoint::from_bytes(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    let backend = CpuBackend;
    let Ok(model) = checkpoint.build_model(&backend) else {
        return;
    };
    let _ = checkpoint.build_optimizer(&backend, &model);
});
