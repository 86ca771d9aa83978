// Gradient of a per-channel bias: dbias[c] = Σ dy[b, c, s] over the batch and the spatial
// positions, with dy seen as [batch_size, channels, spatial].
//
// One invocation sums one chunk of `chunk_len` consecutive (b, s) positions of one channel,
// in order. With one chunk it writes dbias; with more it writes partial[chunk · channels + c]
// and shaders/sum_chunks.wgsl adds the chunks in order, so a rerun gives the same bits. The
// chunks keep each invocation under the loop limit of Mesa's gallivm (see sum_chunks.wgsl).

struct Params {
    batch_size: u32,
    channels: u32,
    spatial: u32,
    // (b, s) positions per chunk.
    chunk_len: u32,
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
    let index = flat_index(gid, groups);
    let positions = params.batch_size * params.spatial;
    let chunks = (positions + params.chunk_len - 1u) / params.chunk_len;
    if index >= chunks * params.channels {
        return;
    }
    let c = index % params.channels;
    let begin = (index / params.channels) * params.chunk_len;
    let end = min(begin + params.chunk_len, positions);
    // One loop over the chunk: the position (b, s) advances by one, and the index into dy
    // jumps to the next image's plane of channel c when s wraps.
    var b = begin / params.spatial;
    var s = begin % params.spatial;
    var at = (b * params.channels + c) * params.spatial + s;
    var sum = 0.0;
    for (var position = begin; position < end; position++) {
        sum += dy[at];
        s++;
        at++;
        if s == params.spatial {
            s = 0u;
            b++;
            at = (b * params.channels + c) * params.spatial;
        }
    }
    dbias[index] = sum;
}
