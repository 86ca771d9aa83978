// One Adam or AdamW step in place, as torch.optim.Adam / AdamW. The host computes the
// bias-corrected step size lr / (1 - beta1^step) and sqrt(1 - beta2^step) in f64, as
// PyTorch does in Python floats.

struct Params {
    len: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    correction2_sqrt: f32,
    // 1 for AdamW: weight decay scales the parameter instead of adding to the gradient.
    decoupled: u32,
    _padding0: u32,
    _padding1: u32,
    _padding2: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> param: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    var p = param[i];
    var g = grad[i];
    if params.decoupled != 0u {
        p *= 1.0 - params.lr * params.weight_decay;
    } else {
        g += params.weight_decay * p;
    }
    let m_new = params.beta1 * m[i] + (1.0 - params.beta1) * g;
    let v_new = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
    m[i] = m_new;
    v[i] = v_new;
    let denom = sqrt(v_new) / params.correction2_sqrt + params.eps;
    param[i] = p - params.step_size * m_new / denom;
}
