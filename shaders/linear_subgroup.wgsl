// Variants of `matmul_nn` and `matmul_nt` of shaders/linear.wgsl for adapters with subgroup
// operations and subgroups of at least 8 invocations. The 8 rows of a that a workgroup's
// block row needs are loaded once per subgroup cluster of 8 invocations, one row each, and
// shared with subgroupShuffle. On lavapipe (Mesa with LLVM 15, 8-wide subgroups) that made
// the 512x512x512 product about 1.4 times as fast as loading them in every invocation.
// The kernels live in their own file because a module that uses subgroup operations fails
// to compile on adapters without them.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row_stride: u32,
    a_col_stride: u32,
    b_row_stride: u32,
    b_col_stride: u32,
    // See shaders/linear.wgsl.
    k_chunk: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

// The same block shape as in shaders/linear.wgsl.
const BLOCK_ROWS: u32 = 8u;
const CLUSTER: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

// The offset of the invocation's chunk of c; set first by every product kernel.
var<private> c_offset: u32;

// The range of k of chunk `z`.
fn k_range(z: u32) -> vec2<u32> {
    let begin = z * params.k_chunk;
    return vec2(begin, min(begin + params.k_chunk, params.k));
}

// The first vec4 column of the invocation's block; the second is CLUSTER further. Lanes are
// numbered along the subgroups, so the CLUSTER invocations that share rows of a through
// subgroupShuffle always lie in one subgroup.
fn first_col4(group: vec3<u32>, subgroup: u32, subgroup_size: u32, subgroup_lane: u32) -> u32 {
    let lane = group.x * WORKGROUP_SIZE + subgroup * subgroup_size + subgroup_lane;
    return (lane / CLUSTER) * (2u * CLUSTER) + lane % CLUSTER;
}

// Checks whether the invocation's whole cluster lies past the last column of c. Such a
// cluster may return at once: it computes nothing that is stored, and no other cluster
// shuffles from it.
fn cluster_is_idle(col4: u32) -> bool {
    return (col4 - col4 % CLUSTER) * 4u >= params.n;
}

// Stores the columns 4 * col4 + 0..3 of row i that lie inside c.
fn store(i: u32, col4: u32, value: vec4<f32>) {
    for (var col = 0u; col < 4u; col++) {
        let j = col4 * 4u + col;
        if j < params.n {
            c[c_offset + i * params.n + j] = value[col];
        }
    }
}

// c = a b with a [m, k] and b [k, n] row-major; k and n multiples of 4.
@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul_nn(@builtin(workgroup_id) group: vec3<u32>, @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_size) subgroup_size: u32, @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let row0 = group.y * BLOCK_ROWS;
    c_offset = group.z * params.m * params.n;
    let ks = k_range(group.z);
    let col4 = first_col4(group, subgroup, subgroup_size, subgroup_lane);
    if cluster_is_idle(col4) {
        return;
    }
    let n4 = params.n / 4u;
    let k4 = params.k / 4u;
    let last_row = params.m - 1u;
    // Every invocation of the workgroup needs the same 8 rows of a, so each loads one of
    // them and takes the others from its neighbours in the subgroup.
    let own_row = min(row0 + subgroup_lane % BLOCK_ROWS, last_row) * k4;
    let cluster_base = subgroup_lane - subgroup_lane % BLOCK_ROWS;
    let c0 = min(col4, n4 - 1u);
    let c1 = min(col4 + CLUSTER, n4 - 1u);
    var acc0: array<vec4<f32>, BLOCK_ROWS>;
    var acc1: array<vec4<f32>, BLOCK_ROWS>;
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        acc0[r] = vec4(0.0);
        acc1[r] = vec4(0.0);
    }
    for (var kq = ks.x / 4u; kq < ks.y / 4u; kq++) {
        let k = kq * 4u;
        let b0 = b4[k * n4 + c0];
        let b1 = b4[(k + 1u) * n4 + c0];
        let b2 = b4[(k + 2u) * n4 + c0];
        let b3 = b4[(k + 3u) * n4 + c0];
        let d0 = b4[k * n4 + c1];
        let d1 = b4[(k + 1u) * n4 + c1];
        let d2 = b4[(k + 2u) * n4 + c1];
        let d3 = b4[(k + 3u) * n4 + c1];
        let own = a4[own_row + kq];
        for (var r = 0u; r < BLOCK_ROWS; r++) {
            let a = subgroupShuffle(own, cluster_base + r);
            acc0[r] += a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
            acc1[r] += a.x * d0 + a.y * d1 + a.z * d2 + a.w * d3;
        }
    }
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        let i = row0 + r;
        if i < params.m {
            store(i, col4, acc0[r]);
            store(i, col4 + CLUSTER, acc1[r]);
        }
    }
}

// c = a bᵀ with a [m, k] and b [n, k] row-major; k a multiple of 4. Each column of c is a
// row of b, read as vec4 along k and transposed in registers.
@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul_nt(@builtin(workgroup_id) group: vec3<u32>, @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_size) subgroup_size: u32, @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let row0 = group.y * BLOCK_ROWS;
    c_offset = group.z * params.m * params.n;
    let ks = k_range(group.z);
    let col4 = first_col4(group, subgroup, subgroup_size, subgroup_lane);
    if cluster_is_idle(col4) {
        return;
    }
    let k4 = params.k / 4u;
    let last_row = params.m - 1u;
    // Every invocation of the workgroup needs the same 8 rows of a, so each loads one of
    // them and takes the others from its neighbours in the subgroup.
    let own_row = min(row0 + subgroup_lane % BLOCK_ROWS, last_row) * k4;
    let cluster_base = subgroup_lane - subgroup_lane % BLOCK_ROWS;
    let last_col = params.n - 1u;
    var rows0: vec4<u32>;
    var rows1: vec4<u32>;
    for (var col = 0u; col < 4u; col++) {
        rows0[col] = min(col4 * 4u + col, last_col) * k4;
        rows1[col] = min((col4 + CLUSTER) * 4u + col, last_col) * k4;
    }
    var acc0: array<vec4<f32>, BLOCK_ROWS>;
    var acc1: array<vec4<f32>, BLOCK_ROWS>;
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        acc0[r] = vec4(0.0);
        acc1[r] = vec4(0.0);
    }
    for (var kq = ks.x / 4u; kq < ks.y / 4u; kq++) {
        let w0 = b4[rows0.x + kq];
        let w1 = b4[rows0.y + kq];
        let w2 = b4[rows0.z + kq];
        let w3 = b4[rows0.w + kq];
        let v0 = b4[rows1.x + kq];
        let v1 = b4[rows1.y + kq];
        let v2 = b4[rows1.z + kq];
        let v3 = b4[rows1.w + kq];
        let b0 = vec4(w0.x, w1.x, w2.x, w3.x);
        let b1 = vec4(w0.y, w1.y, w2.y, w3.y);
        let b2 = vec4(w0.z, w1.z, w2.z, w3.z);
        let b3 = vec4(w0.w, w1.w, w2.w, w3.w);
        let d0 = vec4(v0.x, v1.x, v2.x, v3.x);
        let d1 = vec4(v0.y, v1.y, v2.y, v3.y);
        let d2 = vec4(v0.z, v1.z, v2.z, v3.z);
        let d3 = vec4(v0.w, v1.w, v2.w, v3.w);
        let own = a4[own_row + kq];
        for (var r = 0u; r < BLOCK_ROWS; r++) {
            let a = subgroupShuffle(own, cluster_base + r);
            acc0[r] += a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
            acc1[r] += a.x * d0 + a.y * d1 + a.z * d2 + a.w * d3;
        }
    }
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        let i = row0 + r;
        if i < params.m {
            store(i, col4, acc0[r]);
            store(i, col4 + CLUSTER, acc1[r]);
        }
    }
}
