// Mean squared error and its gradient. The kernel runs as ONE workgroup: invocation t
// handles elements t, t + WORKGROUP_SIZE, ... in order, then a fixed tree in workgroup
// memory adds the partial sums, so a rerun gives the same bits.

struct Params {
    len: u32,
    _padding0: u32,
    _padding1: u32,
    _padding2: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> target_values: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpred: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn mse_loss(@builtin(local_invocation_index) lid: u32) {
    let len = f32(params.len);
    var total = 0.0;
    for (var i = lid; i < params.len; i += WORKGROUP_SIZE) {
        let diff = pred[i] - target_values[i];
        total += diff * diff;
        dpred[i] = 2.0 * diff / len;
    }
    partial[lid] = total;
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
    }
    if lid == 0u {
        loss[0] = partial[0] / len;
    }
}
