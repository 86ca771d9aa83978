//! Reference cases computed by PyTorch 2.15 in float64 on float32-representable inputs
//! (`tests/data/pytorch-reference.json`; its `generator` field names the source).

use ndarray::{ArrayD, IxDyn};
use serde_json::Value;

/// Every case in the file.
pub fn all() -> Vec<Value> {
    let text = include_str!("../data/pytorch-reference.json");
    let file: Value = serde_json::from_str(text).expect("pytorch-reference.json is valid JSON");
    file["cases"].as_array().expect("a `cases` array").clone()
}

/// The cases of one op, such as `conv2d`; panics when there are none, so a renamed op
/// cannot silently test nothing.
pub fn of_op(op: &str) -> Vec<Value> {
    let cases: Vec<Value> = all().into_iter().filter(|c| c["op"] == op).collect();
    assert!(!cases.is_empty(), "no PyTorch reference case for op `{op}`");
    cases
}

/// A tensor `{"shape": [...], "data": [...]}` as an array.
pub fn tensor(value: &Value) -> ArrayD<f32> {
    let shape: Vec<usize> = value["shape"]
        .as_array()
        .expect("a `shape` array")
        .iter()
        .map(|d| d.as_u64().expect("an integer dimension") as usize)
        .collect();
    let data: Vec<f32> = value["data"]
        .as_array()
        .expect("a `data` array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect();
    ArrayD::from_shape_vec(IxDyn(&shape), data).expect("data length matches shape")
}

/// A pair `[h, w]` of parameters, or `default` when absent.
pub fn pair(value: &Value, default: usize) -> [usize; 2] {
    match value.as_array() {
        Some(items) => [
            items[0].as_u64().unwrap() as usize,
            items[1].as_u64().unwrap() as usize,
        ],
        None => [default, default],
    }
}

/// Integer labels such as `inputs.labels` (a tensor or a plain array).
pub fn labels(value: &Value) -> Vec<u32> {
    let items = value
        .get("data")
        .unwrap_or(value)
        .as_array()
        .expect("a label array");
    items.iter().map(|v| v.as_f64().unwrap() as u32).collect()
}
