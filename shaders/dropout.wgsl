// Inverted dropout: out = keep ? input * scale : 0, with scale = 1 / (1 - p) from the host.
// The mask is the hash of `dropout_keeps` in src/params.rs, in the same u32 arithmetic, so the
// GPU and the CPU path draw the same mask. The backward pass applies the same mask to dy.

struct Params {
    len: u32,
    seed: u32,
    p: f32,
    scale: f32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// One round of the PCG-RXS-M-XS permutation; u32 multiplication wraps as in Rust's
// `wrapping_mul`.
fn pcg_hash(value: u32) -> u32 {
    let state = value * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn keeps(index: u32) -> bool {
    let hashed = pcg_hash(pcg_hash(index) ^ params.seed);
    // The top 24 bits as a uniform float in [0, 1): exact in f32, since 0x1p-24 is 2^-24.
    let uniform = f32(hashed >> 8u) * 0x1p-24f;
    return uniform >= params.p;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn apply_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    output[i] = select(0.0, input[i] * params.scale, keeps(i));
}
