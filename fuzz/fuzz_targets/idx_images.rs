//! Feeds raw file bytes to the IDX images reader, gzip detection included.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wgcnn::data::decode_idx_images(data, Path::new("fuzz-images-idx3-ubyte"));
});
