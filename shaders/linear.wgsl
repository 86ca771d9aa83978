// Matrix products c = op(a) op(b), where op transposes an operand or not, and the bias add of
// the linear layer. The forward pass is c = x weightᵀ, the input gradient dy weight and the
// weight gradient dyᵀ x. The sum over k always runs in order, so a rerun gives the same bits.
//
// Two families of kernels, both free of barriers and shared memory because register tiling
// is what runs fast on CPU-based adapters such as lavapipe:
// - `matmul_nn`, `matmul_nt` and `matmul_tn` read the operands as vec4 and need aligned
//   sizes (see each). Each invocation computes 8 rows by 8 columns of c.
// - `matmul` takes any sizes and strides, reading scalars, and computes 8 rows by 4 columns.
// Rows and columns past the edge of c are clamped to the last one for loading, which keeps
// the inner loops free of range checks, and only the stores are guarded.
//
// shaders/linear_subgroup.wgsl holds faster variants of `matmul_nn` and `matmul_nt` that
// share the loads of a through subgroup shuffles.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // op(a)[i, kk] = a[i * a_row_stride + kk * a_col_stride]; used by `matmul` only.
    a_row_stride: u32,
    a_col_stride: u32,
    // op(b)[kk, j] = b[kk * b_row_stride + j * b_col_stride]; used by `matmul` only.
    b_row_stride: u32,
    b_col_stride: u32,
    // Terms of the sum over k per chunk, a multiple of 4 when there is more than one chunk.
    // Chunk workgroup_id.z sums k in [z · k_chunk, (z + 1) · k_chunk) into the z-th [m, n]
    // block of c, and shaders/sum_chunks.wgsl adds the blocks in order. The chunks keep an
    // invocation under the 65,535 loop iterations that Mesa's gallivm allows.
    k_chunk: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

// Rows of c per invocation in every kernel. Mirrored by BLOCK_ROWS in src/gpu/ops/linear.rs.
const BLOCK_ROWS: u32 = 8u;
// Columns of c per invocation in `matmul`. Mirrored by STRIDED_COLUMNS in src/gpu/ops/linear.rs.
const STRIDED_COLUMNS: u32 = 4u;
// Invocations that cover 16 consecutive vec4 columns of c in the vec4 kernels: each takes
// one vec4 column and the one CLUSTER further. Mirrored by CLUSTER in src/gpu/ops/linear.rs.
const CLUSTER: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
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

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// c[i, j] += bias[j], one invocation per element of c.
@compute @workgroup_size(WORKGROUP_SIZE)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = flat_index(gid, groups);
    if index >= params.m * params.n {
        return;
    }
    c[index] += bias[index % params.n];
}

// ---- any sizes and strides ---------------------------------------------------------------

// All invocations of a workgroup share one block row (from workgroup_id.y), so their loads of
// a are the same address; they differ along the columns of c.
@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = group.y * BLOCK_ROWS;
    c_offset = group.z * params.m * params.n;
    let ks = k_range(group.z);
    let col0 = (group.x * WORKGROUP_SIZE + lid) * STRIDED_COLUMNS;
    if col0 >= params.n {
        return;
    }
    var a_offsets: array<u32, BLOCK_ROWS>;
    var acc: array<vec4<f32>, BLOCK_ROWS>;
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        a_offsets[r] = min(row0 + r, params.m - 1u) * params.a_row_stride;
        acc[r] = vec4(0.0);
    }
    var b_offsets: vec4<u32>;
    for (var col = 0u; col < STRIDED_COLUMNS; col++) {
        b_offsets[col] = min(col0 + col, params.n - 1u) * params.b_col_stride;
    }
    for (var kk = ks.x; kk < ks.y; kk++) {
        let b_row = kk * params.b_row_stride;
        let b_values = vec4(
            b[b_row + b_offsets.x],
            b[b_row + b_offsets.y],
            b[b_row + b_offsets.z],
            b[b_row + b_offsets.w],
        );
        let a_col = kk * params.a_col_stride;
        for (var r = 0u; r < BLOCK_ROWS; r++) {
            acc[r] += a[a_offsets[r] + a_col] * b_values;
        }
    }
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        let i = row0 + r;
        if i < params.m {
            store(i, col0 / 4u, acc[r]);
        }
    }
}

// ---- aligned layouts, vec4 loads ---------------------------------------------------------

// The first vec4 column of the invocation's block; the second is CLUSTER further.
fn first_col4(group: vec3<u32>, lid: u32) -> u32 {
    let lane = group.x * WORKGROUP_SIZE + lid;
    return (lane / CLUSTER) * (2u * CLUSTER) + lane % CLUSTER;
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
fn matmul_nn(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = group.y * BLOCK_ROWS;
    c_offset = group.z * params.m * params.n;
    let ks = k_range(group.z);
    let col4 = first_col4(group, lid);
    let n4 = params.n / 4u;
    let k4 = params.k / 4u;
    let last_row = params.m - 1u;
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
        for (var r = 0u; r < BLOCK_ROWS; r++) {
            let a = a4[min(row0 + r, last_row) * k4 + kq];
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
fn matmul_nt(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = group.y * BLOCK_ROWS;
    c_offset = group.z * params.m * params.n;
    let ks = k_range(group.z);
    let col4 = first_col4(group, lid);
    let k4 = params.k / 4u;
    let last_row = params.m - 1u;
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
        for (var r = 0u; r < BLOCK_ROWS; r++) {
            let a = a4[min(row0 + r, last_row) * k4 + kq];
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

// c = aᵀ b with a [k, m] and b [k, n] row-major; m and n multiples of 4, any k. The rows of
// the block are two vec4 of a row of a.
@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul_tn(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = group.y * BLOCK_ROWS;
    c_offset = group.z * params.m * params.n;
    let ks = k_range(group.z);
    let col4 = first_col4(group, lid);
    let m4 = params.m / 4u;
    let n4 = params.n / 4u;
    let top = min(row0 / 4u, m4 - 1u);
    let bottom = min(row0 / 4u + 1u, m4 - 1u);
    let c0 = min(col4, n4 - 1u);
    let c1 = min(col4 + CLUSTER, n4 - 1u);
    var acc0: array<vec4<f32>, BLOCK_ROWS>;
    var acc1: array<vec4<f32>, BLOCK_ROWS>;
    for (var r = 0u; r < BLOCK_ROWS; r++) {
        acc0[r] = vec4(0.0);
        acc1[r] = vec4(0.0);
    }
    for (var k = ks.x; k < ks.y; k++) {
        let a_top = a4[k * m4 + top];
        let a_bottom = a4[k * m4 + bottom];
        let b0 = b4[k * n4 + c0];
        let b1 = b4[k * n4 + c1];
        for (var r = 0u; r < 4u; r++) {
            acc0[r] += a_top[r] * b0;
            acc1[r] += a_top[r] * b1;
            acc0[r + 4u] += a_bottom[r] * b0;
            acc1[r + 4u] += a_bottom[r] * b1;
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
