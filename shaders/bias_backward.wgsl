// Gradient of a per-channel bias: dbias[c] = Σ dy[b, c, s] over the batch and the spatial
// positions, with dy seen as [batch_size, channels, spatial].
//
// One invocation owns one channel and sums in the order b, s, so a rerun gives the same bits.

struct Params {
    batch_size: u32,
    channels: u32,
    spatial: u32,
    _padding: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = flat_index(gid, groups);
    if c >= params.channels {
        return;
    }
    var sum = 0.0;
    for (var b = 0u; b < params.batch_size; b++) {
        let start = (b * params.channels + c) * params.spatial;
        for (var s = 0u; s < params.spatial; s++) {
            sum += dy[start + s];
        }
    }
    dbias[c] = sum;
}
