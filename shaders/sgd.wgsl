// One SGD step in place, as torch.optim.SGD: weight decay is added to the gradient; with
// momentum the velocity starts as the gradient at step 1 and then decays with `momentum`;
// Nesterov momentum adds momentum * velocity to the gradient.

struct Params {
    len: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    // 1 at the first step, when the velocity is set to the gradient.
    first_step: u32,
    nesterov: u32,
    _padding: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let p = param[i];
    var update = grad[i] + params.weight_decay * p;
    // Without momentum the velocity buffer is bound but neither read nor written.
    if params.momentum != 0.0 {
        var v: f32;
        if params.first_step != 0u {
            v = update;
        } else {
            v = params.momentum * velocity[i] + (1.0 - params.dampening) * update;
        }
        velocity[i] = v;
        if params.nesterov != 0u {
            update = update + params.momentum * v;
        } else {
            update = v;
        }
    }
    param[i] = p - params.lr * update;
}
