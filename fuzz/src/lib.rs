//! Input generators shared by the fuzz targets and the examples that replay their findings.

use std::collections::HashMap;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use wgcnn::checkpoint::{FORMAT, FORMAT_VERSION, OptimizerRecord};
use wgcnn::nn::{LayerSpec, LrSchedule, OptimizerKind};
use wgcnn::{AdamConfig, SgdConfig};

/// The maximum number of elements of a stored tensor. Larger tensors are left out of the file.
const MAX_STORED_ELEMENTS: usize = 1 << 12;

/// Draws a size that is mostly small and valid, sometimes zero, sometimes huge. An exhausted
/// input draws the first choice of every range, so the first choices here and below are valid.
fn size(u: &mut Unstructured) -> Result<usize> {
    Ok(match u.int_in_range(0..=9)? {
        0..=5 => u.int_in_range(1..=12)?,
        6 => u.int_in_range(1..=4096)?,
        7 => 0,
        8 => u.arbitrary::<u32>()? as usize,
        _ => u.arbitrary::<usize>()?,
    })
}

/// Draws a finite number, because JSON metadata cannot represent NaN or infinity.
fn number(u: &mut Unstructured) -> Result<f32> {
    let value: f32 = u.arbitrary()?;
    Ok(if value.is_finite() { value } else { 0.0 })
}

fn pair(u: &mut Unstructured) -> Result<[usize; 2]> {
    Ok([size(u)?, size(u)?])
}

/// Channels that fit `current` half of the time, else any size.
fn channels(u: &mut Unstructured, current: &[usize]) -> Result<usize> {
    match current {
        [c, _, _] if u.arbitrary::<bool>()? => Ok(*c),
        _ => size(u),
    }
}

fn layer(u: &mut Unstructured, current: &[usize]) -> Result<LayerSpec> {
    Ok(match u.int_in_range(0..=10)? {
        0 => LayerSpec::Conv2d {
            in_channels: channels(u, current)?,
            out_channels: size(u)?,
            kernel: pair(u)?,
            stride: pair(u)?,
            padding: pair(u)?,
            dilation: pair(u)?,
            bias: u.arbitrary()?,
        },
        1 => LayerSpec::MaxPool2d {
            kernel: pair(u)?,
            stride: pair(u)?,
            padding: pair(u)?,
        },
        2 => LayerSpec::AvgPool2d {
            kernel: pair(u)?,
            stride: pair(u)?,
            padding: pair(u)?,
        },
        3 => LayerSpec::Relu,
        4 => LayerSpec::LeakyRelu {
            negative_slope: number(u)?,
        },
        5 => LayerSpec::Sigmoid,
        6 => LayerSpec::Tanh,
        7 => LayerSpec::Flatten,
        8 => LayerSpec::Linear {
            in_features: match current {
                [features] if u.arbitrary::<bool>()? => *features,
                _ => size(u)?,
            },
            out_features: size(u)?,
            bias: u.arbitrary()?,
        },
        9 => LayerSpec::Dropout { p: number(u)? },
        _ => LayerSpec::BatchNorm2d {
            channels: channels(u, current)?,
            momentum: number(u)?,
            eps: number(u)?,
        },
    })
}

fn optimizer(u: &mut Unstructured) -> Result<OptimizerRecord> {
    let kind = if u.arbitrary()? {
        OptimizerKind::Sgd(SgdConfig {
            momentum: number(u)?,
            dampening: number(u)?,
            weight_decay: number(u)?,
            nesterov: u.arbitrary()?,
        })
    } else {
        OptimizerKind::Adam(AdamConfig {
            beta1: number(u)?,
            beta2: number(u)?,
            eps: number(u)?,
            weight_decay: number(u)?,
            decoupled: u.arbitrary()?,
        })
    };
    let schedule = match u.int_in_range(0..=2)? {
        0 => LrSchedule::Constant,
        1 => LrSchedule::Step {
            step_size: u.arbitrary()?,
            gamma: number(u)?,
        },
        _ => LrSchedule::Cosine {
            total_steps: u.arbitrary()?,
            min_lr: number(u)?,
        },
    };
    Ok(OptimizerRecord {
        kind,
        base_lr: number(u)?,
        schedule,
        step: u.arbitrary()?,
    })
}

/// The shape stored for a tensor that should have `expected`: usually that one, sometimes
/// another, or `None` to leave the tensor out.
fn stored_shape(u: &mut Unstructured, expected: &[usize]) -> Result<Option<Vec<usize>>> {
    let elements = expected.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    Ok(match u.int_in_range(0..=7)? {
        0..=5 => match elements {
            Some(n) if n <= MAX_STORED_ELEMENTS => Some(expected.to_vec()),
            _ => None,
        },
        6 => None,
        _ => {
            let rank = u.int_in_range(0..=4)?;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(u.int_in_range(0..=6)?);
            }
            Some(shape)
        }
    })
}

/// Builds the bytes of a checkpoint in the wgcnn format whose input shape, architecture,
/// optimizer record and stored tensor shapes are drawn from `u`.
///
/// # Errors
/// Only the errors of `arbitrary`, which this generator never triggers on purpose.
pub fn checkpoint_bytes(u: &mut Unstructured) -> Result<Vec<u8>> {
    let rank = u.int_in_range(1..=4)?;
    let mut input_shape = Vec::with_capacity(rank);
    for _ in 0..rank {
        input_shape.push(size(u)?);
    }

    let mut layers = Vec::new();
    let mut current = input_shape.clone();
    for _ in 0..u.int_in_range(1..=6)? {
        let spec = layer(u, &current)?;
        if let Ok(next) = spec.output_shape(&current) {
            current = next;
        }
        layers.push(spec);
    }
    let optimizer = if u.arbitrary()? {
        Some(optimizer(u)?)
    } else {
        None
    };

    let mut tensors: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, spec) in layers.iter().enumerate() {
        let mut expected = spec.parameter_shapes();
        if let LayerSpec::BatchNorm2d { channels, .. } = spec {
            expected.push(("running_mean", vec![*channels]));
            expected.push(("running_var", vec![*channels]));
        }
        for (param, (name, shape)) in expected.iter().enumerate() {
            if let Some(stored) = stored_shape(u, shape)? {
                tensors.push((format!("model.{index}.{name}"), stored));
            }
            let is_param = !name.starts_with("running");
            if let Some(record) = optimizer.as_ref().filter(|_| is_param) {
                let slots: &[&str] = match record.kind {
                    OptimizerKind::Sgd(_) => &["first"],
                    OptimizerKind::Adam(_) => &["first", "second"],
                };
                for slot in slots {
                    if let Some(stored) = stored_shape(u, shape)? {
                        tensors.push((format!("optimizer.{index}.{param}.{slot}"), stored));
                    }
                }
            }
        }
    }

    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    metadata.insert("input_shape".to_string(), json(&input_shape));
    metadata.insert("architecture".to_string(), json(&layers));
    if let Some(record) = &optimizer {
        metadata.insert("optimizer".to_string(), json(record));
    }
    metadata.insert("epoch".to_string(), "0".to_string());
    metadata.insert("step".to_string(), "0".to_string());
    metadata.insert("seed".to_string(), u.arbitrary::<u64>()?.to_string());
    metadata.insert("training".to_string(), "null".to_string());

    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match");
            (name.clone(), view)
        })
        .collect();
    Ok(safetensors::serialize(views, Some(metadata)).expect("a valid safetensors file"))
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serializable metadata")
}
