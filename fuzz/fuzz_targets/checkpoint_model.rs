//! Builds well-formed checkpoint files around fuzzed architectures and tensor shapes, then
//! loads them and builds the model and the optimizer.
//!
//! The raw-bytes `checkpoint` target rarely gets past the safetensors header and the JSON
//! metadata. This one always does, so it spends its time on shape inference, the checks of
//! stored tensors against the architecture, and the allocations that follow them.

#![no_main]

use std::path::Path;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wgcnn::CpuBackend;
use wgcnn_fuzz::checkpoint_bytes;

fuzz_target!(|data: &[u8]| {
    let Ok(bytes) = checkpoint_bytes(&mut Unstructured::new(data)) else {
        return;
    };
    // The loader may reject a generated file, but it must not panic. One example is a tensor of
    // shape [0, 2^62, 2^62], which safetensors accepts and ndarray cannot represent.
    let Ok(checkpoint) = wgcnn::checkpoint::from_bytes(Path::new("fuzz.safetensors"), &bytes)
    else {
        return;
    };
    let backend = CpuBackend;
    let Ok(model) = checkpoint.build_model(&backend) else {
        return;
    };
    let _ = checkpoint.build_optimizer(&backend, &model);
});
