// The second half of a split reduction: out[i] = Σ partial[chunk · len + i] over the chunks,
// in chunk order, so a rerun gives the same bits.
//
// A reduction is split when one invocation would loop over too many terms: Mesa's gallivm
// (llvmpipe, lavapipe) ends an invocation's loops after 65,535 iterations in total and
// reports nothing, so the sum would silently miss terms. Each invocation of the first half
// reduces one bounded chunk into `partial`.

struct Params {
    len: u32,
    chunks: u32,
    _padding0: u32,
    _padding1: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_chunks(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    var sum = 0.0;
    for (var chunk = 0u; chunk < params.chunks; chunk++) {
        sum += partial[chunk * params.len + i];
    }
    out[i] = sum;
}
