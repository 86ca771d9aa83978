// Matrix product c = op(a) op(b) (+ bias along rows), where op transposes or not, as strides.
// The linear layer's forward pass, input gradient and weight gradient are all this product.
//
// Register tiling without barriers: each invocation computes a TILE_M x TILE_N block of c.
// All invocations of a workgroup share one block row (from workgroup_id.y), so the loads of
// a are the same address in every lane; lanes differ along the columns of c. Rows and
// columns past the edge are clamped to the last one for loading, which keeps the inner loop
// free of range checks, and only the store is guarded. The sum over k runs in order, so a
// rerun gives the same bits.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // op(a)[i, kk] = a[i * a_row_stride + kk * a_col_stride]
    a_row_stride: u32,
    a_col_stride: u32,
    // op(b)[kk, j] = b[kk * b_row_stride + j * b_col_stride]
    b_row_stride: u32,
    b_col_stride: u32,
    _padding: u32,
}

override WORKGROUP_SIZE: u32 = 64u;
const TILE_M: u32 = 8u;
const TILE_N: u32 = 4u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<private> acc: array<vec4<f32>, TILE_M>;

// Accumulates the tile whose top-left corner is (row0, col0) into `acc`.
fn accumulate_tile(row0: u32, col0: u32) {
    var a_offsets: array<u32, TILE_M>;
    for (var r = 0u; r < TILE_M; r++) {
        a_offsets[r] = min(row0 + r, params.m - 1u) * params.a_row_stride;
        acc[r] = vec4(0.0);
    }
    var b_offsets: vec4<u32>;
    for (var col = 0u; col < TILE_N; col++) {
        b_offsets[col] = min(col0 + col, params.n - 1u) * params.b_col_stride;
    }
    for (var kk = 0u; kk < params.k; kk++) {
        let b_row = kk * params.b_row_stride;
        let b_values = vec4(
            b[b_row + b_offsets.x],
            b[b_row + b_offsets.y],
            b[b_row + b_offsets.z],
            b[b_row + b_offsets.w],
        );
        let a_col = kk * params.a_col_stride;
        for (var r = 0u; r < TILE_M; r++) {
            acc[r] += a[a_offsets[r] + a_col] * b_values;
        }
    }
}

// Stores the rows and columns of `acc + shift` that lie inside c.
fn store_tile(row0: u32, col0: u32, shift: vec4<f32>) {
    for (var col = 0u; col < TILE_N; col++) {
        let j = col0 + col;
        if j >= params.n {
            break;
        }
        for (var r = 0u; r < TILE_M; r++) {
            let i = row0 + r;
            if i < params.m {
                c[i * params.n + j] = acc[r][col] + shift[col];
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = group.y * TILE_M;
    let col0 = (group.x * WORKGROUP_SIZE + lid) * TILE_N;
    if col0 >= params.n {
        return;
    }
    accumulate_tile(row0, col0);
    store_tile(row0, col0, vec4(0.0));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul_bias(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = group.y * TILE_M;
    let col0 = (group.x * WORKGROUP_SIZE + lid) * TILE_N;
    if col0 >= params.n {
        return;
    }
    accumulate_tile(row0, col0);
    var shift: vec4<f32>;
    for (var col = 0u; col < TILE_N; col++) {
        shift[col] = bias[min(col0 + col, params.n - 1u)];
    }
    store_tile(row0, col0, shift);
}
