//! Feeds raw file bytes to the IDX labels reader, gzip detection included.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wgcnn::data::IDX_CLASSES;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-labels-idx1-ubyte");
    let _ = wgcnn::data::decode_idx_labels(data, path, IDX_CLASSES);
    // Class counts of 0 and 1 reach the edges of the label range check.
    let _ = wgcnn::data::decode_idx_labels(data, path, 0);
    let _ = wgcnn::data::decode_idx_labels(data, path, 1);
});
