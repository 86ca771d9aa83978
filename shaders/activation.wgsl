// Element-wise activations and their gradients.
// `kind`: 0 relu, 1 leaky relu, 2 sigmoid, 3 tanh (Activation::code on the host).

struct Params {
    len: u32,
    kind: u32,
    negative_slope: f32,
    _padding: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y_in: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// The logistic function without overflow: exp of a non-positive number only.
fn logistic(v: f32) -> f32 {
    if v >= 0.0 {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

// max(v, 0) that passes NaN on, as PyTorch does. Float comparisons cannot express it:
// WGSL's max may return either operand for NaN, and GL drivers rewrite `v < 0 ? 0 : v` into
// such a max. On the bits, v is below zero exactly when the sign is set and v is neither -0
// nor NaN: 0x80000000 is -0, and above 0xff800000 (-inf) lie the NaNs with the sign set.
fn relu(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    return select(v, 0.0, bits > 0x80000000u && bits <= 0xff800000u);
}

// tanh through the logistic function, which stays finite for any input.
fn stable_tanh(v: f32) -> f32 {
    return 2.0 * logistic(2.0 * v) - 1.0;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let v = x[i];
    var out: f32;
    switch params.kind {
        case 0u: { out = relu(v); }
        case 1u: { out = select(params.negative_slope * v, v, v > 0.0); }
        case 2u: { out = logistic(v); }
        default: { out = stable_tanh(v); }
    }
    y[i] = out;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let v = x[i];
    let out = y_in[i];
    var slope: f32;
    switch params.kind {
        case 0u: { slope = select(0.0, 1.0, v > 0.0); }
        case 1u: { slope = select(params.negative_slope, 1.0, v > 0.0); }
        case 2u: { slope = out * (1.0 - out); }
        default: { slope = 1.0 - out * out; }
    }
    dx[i] = slope * dy[i];
}

// ReLU alone, without the switch over kinds: lavapipe runs every case of a switch with
// masked lanes, even when the kind is the same for all invocations, so the general
// kernels pay for the exponentials of the other kinds.
@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    y[i] = relu(x[i]);
}

// The ReLU gradient, which reads x and dy only.
@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    // slope · dy rather than a select of 0, as in the general kernel, so a NaN or infinite
    // gradient is passed on as NaN instead of hidden (a literal 0 · dy is folded to 0).
    let slope = select(0.0, 1.0, x[i] > 0.0);
    dx[i] = slope * dy[i];
}
