//! Feeds raw file bytes to the CIFAR-10 binary batch reader.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wgcnn::data::decode_cifar_batch(data, Path::new("fuzz_batch.bin"));
});
