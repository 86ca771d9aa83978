// Batch normalization over x: [batch, channels, h, w], per channel, as torch.nn.BatchNorm2d.
//
// The training kernels run one workgroup per channel. Invocation `lid` sums the channel's
// values k = lid, lid + WORKGROUP_SIZE, ... in order (value k is pixel k % plane of image
// k / plane), then a fixed tree in workgroup memory adds the WORKGROUP_SIZE partial sums. No
// atomics and a fixed order, so a rerun gives the same bits. The same workgroup then writes the
// channel's outputs, because it already holds the statistics they need.
//
// NOTE: lavapipe and llvmpipe (measured on Mesa 22.3.6 with LLVM 15) silently end an
// invocation's loops after 65535 iterations in total. One invocation per channel would hit that
// at about 21,000 values per channel. Here each invocation loops about
// 3 * batch * plane / WORKGROUP_SIZE times, so channels of up to about 1.3 million values work
// there.

struct Params {
    batch: u32,
    channels: u32,
    // h * w: the pixels of one channel of one image.
    plane: u32,
    // batch * channels * plane.
    len: u32,
    // The elements one invocation of `forward_eval` writes.
    run: u32,
    momentum: f32,
    eps: f32,
    _padding: u32,
}

// The host sets it. The reduction tree needs a power of two.
override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> saved_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> saved_inv_std: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(9) var<storage, read> running_mean_in: array<f32>;
@group(0) @binding(10) var<storage, read> running_var_in: array<f32>;
@group(0) @binding(11) var<storage, read> dy: array<f32>;
@group(0) @binding(12) var<storage, read> saved_mean_in: array<f32>;
@group(0) @binding(13) var<storage, read> saved_inv_std_in: array<f32>;
@group(0) @binding(14) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(15) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(16) var<storage, read_write> dx: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// Position of value k = n * plane + i of one channel: image n, pixel i.
struct Cursor {
    n: u32,
    i: u32,
}

// The cursor of value k = lid.
fn first_value(lid: u32) -> Cursor {
    return Cursor(lid / params.plane, lid % params.plane);
}

// The cursor of value k + WORKGROUP_SIZE, where WORKGROUP_SIZE = step.n * plane + step.i; this
// avoids a division per value.
fn next_value(cursor: Cursor, step: Cursor) -> Cursor {
    var n = cursor.n + step.n;
    var i = cursor.i + step.i;
    if i >= params.plane {
        i -= params.plane;
        n += 1u;
    }
    return Cursor(n, i);
}

fn cursor_step() -> Cursor {
    return Cursor(WORKGROUP_SIZE / params.plane, WORKGROUP_SIZE % params.plane);
}

// The offset of channel c's value at `cursor` in x, y, dy and dx.
fn value_offset(c: u32, cursor: Cursor) -> u32 {
    return (cursor.n * params.channels + c) * params.plane + cursor.i;
}

// The sum of `value` over the workgroup, returned to every invocation. The tree and its order
// depend on WORKGROUP_SIZE alone.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width /= 2u) {
        if lid < width {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // No invocation may overwrite `partial` for the next sum before all have read the total.
    workgroupBarrier();
    return total;
}

// One workgroup per channel: batch mean, biased variance from the squared deviations (a second
// pass, so a large mean does not cancel the variance), running statistics, then y.
@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_train(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    if c >= params.channels {
        return;
    }
    let step = cursor_step();
    let count = f32(params.batch * params.plane);

    var sum = 0.0;
    for (var v = first_value(lid); v.n < params.batch; v = next_value(v, step)) {
        sum += x[value_offset(c, v)];
    }
    let mean = workgroup_sum(lid, sum) / count;

    var squared_deviations = 0.0;
    for (var v = first_value(lid); v.n < params.batch; v = next_value(v, step)) {
        let d = x[value_offset(c, v)] - mean;
        squared_deviations += d * d;
    }
    let m2 = workgroup_sum(lid, squared_deviations);
    let inv_std = 1.0 / sqrt(m2 / count + params.eps);

    if lid == 0u {
        let keep = 1.0 - params.momentum;
        saved_mean[c] = mean;
        saved_inv_std[c] = inv_std;
        running_mean[c] = keep * running_mean[c] + params.momentum * mean;
        running_var[c] = keep * running_var[c] + params.momentum * (m2 / (count - 1.0));
    }

    let g = gamma[c];
    let b = beta[c];
    for (var v = first_value(lid); v.n < params.batch; v = next_value(v, step)) {
        let offset = value_offset(c, v);
        y[offset] = g * ((x[offset] - mean) * inv_std) + b;
    }
}

// The running statistics and the affine parameters of one channel.
struct EvalChannel {
    mean: f32,
    inv_std: f32,
    gamma: f32,
    beta: f32,
}

fn eval_channel(c: u32) -> EvalChannel {
    let inv_std = 1.0 / sqrt(running_var_in[c] + params.eps);
    return EvalChannel(running_mean_in[c], inv_std, gamma[c], beta[c]);
}

// One invocation per run of `params.run` consecutive elements, normalized with the running
// statistics. The channel is tracked along the run, which leaves one division per run instead
// of one per element. On lavapipe that halves the time.
@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let start = (gid.x + gid.y * groups.x * WORKGROUP_SIZE) * params.run;
    if start >= params.len {
        return;
    }
    let end = min(start + params.run, params.len);
    var c = (start / params.plane) % params.channels;
    var i = start % params.plane;
    var channel = eval_channel(c);
    for (var k = start; k < end; k++) {
        y[k] = channel.gamma * ((x[k] - channel.mean) * channel.inv_std) + channel.beta;
        i += 1u;
        if i == params.plane {
            i = 0u;
            c = (c + 1u) % params.channels;
            channel = eval_channel(c);
        }
    }
}

// One workgroup per channel: dbeta = sum(dy), dgamma = sum(dy * x_hat), then
// dx = gamma * inv_std / N * (N * dy - dbeta - x_hat * dgamma) with N = batch * plane.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    if c >= params.channels {
        return;
    }
    let step = cursor_step();
    let count = f32(params.batch * params.plane);
    let mean = saved_mean_in[c];
    let inv_std = saved_inv_std_in[c];

    var partial_dy = 0.0;
    var partial_dy_x_hat = 0.0;
    for (var v = first_value(lid); v.n < params.batch; v = next_value(v, step)) {
        let offset = value_offset(c, v);
        let g = dy[offset];
        partial_dy += g;
        partial_dy_x_hat += g * ((x[offset] - mean) * inv_std);
    }
    let sum_dy = workgroup_sum(lid, partial_dy);
    let sum_dy_x_hat = workgroup_sum(lid, partial_dy_x_hat);

    if lid == 0u {
        dbeta[c] = sum_dy;
        dgamma[c] = sum_dy_x_hat;
    }

    let scale = gamma[c] * inv_std / count;
    for (var v = first_value(lid); v.n < params.batch; v = next_value(v, step)) {
        let offset = value_offset(c, v);
        let x_hat = (x[offset] - mean) * inv_std;
        dx[offset] = scale * (count * dy[offset] - sum_dy - x_hat * sum_dy_x_hat);
    }
}
