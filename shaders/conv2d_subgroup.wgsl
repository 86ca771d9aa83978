// The convolution's forward pass as an implicit matrix product, for adapters with subgroup
// operations and subgroups of at least 8 invocations: y = weight · cols, where weight is
// [out_channels, K] with K = in_channels · kh · kw, and column j = (b, oh, ow) of cols holds
// the K inputs that output pixel j reads. cols is never stored: each invocation gathers the
// inputs of its 8 pixels from x. It follows `matmul_nn` of shaders/linear_subgroup.wgsl: the
// 8 weight rows of a workgroup's block row are loaded once per cluster of 8 invocations and
// shared with subgroupShuffle, and each invocation sums 8 output channels times 8 pixels.
// The kernel lives in its own file because a module that uses subgroup operations fails to
// compile on adapters without them. K must be a multiple of 4 (weight is read as vec4).

struct Params {
    batch_size: u32,
    in_channels: u32,
    in_height: u32,
    in_width: u32,
    out_channels: u32,
    kernel_height: u32,
    kernel_width: u32,
    out_height: u32,
    out_width: u32,
    stride_h: u32,
    stride_w: u32,
    padding_h: u32,
    padding_w: u32,
    dilation_h: u32,
    dilation_w: u32,
    tiles: u32,
    rows_per_chunk: u32,
    channel_tiles: u32,
    _padding0: u32,
    _padding1: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

// Output channels per invocation, and invocations per cluster that share weight rows.
// Mirrored by GEMM_ROWS and CLUSTER in src/gpu/ops/conv2d.rs.
const GEMM_ROWS: u32 = 8u;
const CLUSTER: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// The sums of one invocation: output channels first + r, pixels of `pixels0` in acc0 and of
// `pixels1` in acc1 (as vec4 lanes).
struct Block {
    acc0: array<vec4<f32>, GEMM_ROWS>,
    acc1: array<vec4<f32>, GEMM_ROWS>,
    first: u32,
    pixels0: vec4<u32>,
    pixels1: vec4<u32>,
}

// Where four output pixels read x: the index of kernel tap (0, 0) in channel 0, which may
// lie in the padding, and bit masks of the kernel rows and columns that lie inside x.
struct Gather {
    start: vec4<u32>,
    rows: vec4<u32>,
    cols: vec4<u32>,
}

fn gather_of(pixels: vec4<u32>) -> Gather {
    let plane = params.out_height * params.out_width;
    let b = pixels / plane;
    let p = pixels % plane;
    let row = (p / params.out_width) * params.stride_h - vec4(params.padding_h);
    let col = (p % params.out_width) * params.stride_w - vec4(params.padding_w);
    var rows = vec4(0u);
    for (var kh = 0u; kh < min(params.kernel_height, 32u); kh++) {
        rows |= select(vec4(0u), vec4(1u << kh), row + vec4(kh * params.dilation_h) < vec4(params.in_height));
    }
    var cols = vec4(0u);
    for (var kw = 0u; kw < min(params.kernel_width, 32u); kw++) {
        cols |= select(vec4(0u), vec4(1u << kw), col + vec4(kw * params.dilation_w) < vec4(params.in_width));
    }
    let image = b * (params.in_channels * params.in_height * params.in_width);
    return Gather(image + row * params.in_width + col, rows, cols);
}

// x at the tap with offset `tap` from tap (0, 0) and kernel row and column bits `kh_bit`
// and `kw_bit`, for the four pixels of `g`, zero in the padding.
fn gather(g: Gather, tap: u32, kh_bit: u32, kw_bit: u32) -> vec4<f32> {
    let inside = ((g.rows & vec4(kh_bit)) != vec4(0u)) & ((g.cols & vec4(kw_bit)) != vec4(0u));
    let index = select(vec4(0u), g.start + vec4(tap), inside);
    let values = vec4(x[index.x], x[index.y], x[index.z], x[index.w]);
    return select(vec4(0.0), values, inside);
}

// A kernel tap: input channel, kernel row and kernel column.
struct Tap {
    c: u32,
    kh: u32,
    kw: u32,
}

// Adds one k of the product, the weight column `weights` times the inputs of `tap`, and
// moves `tap` to the next k.
fn accumulate(block: ptr<function, Block>, weights: array<f32, GEMM_ROWS>, g0: Gather, g1: Gather, tap: ptr<function, Tap>) {
    let t = *tap;
    let offset = t.c * params.in_height * params.in_width + t.kh * params.dilation_h * params.in_width + t.kw * params.dilation_w;
    let x0 = gather(g0, offset, 1u << t.kh, 1u << t.kw);
    let x1 = gather(g1, offset, 1u << t.kh, 1u << t.kw);
    for (var r = 0u; r < GEMM_ROWS; r++) {
        (*block).acc0[r] += weights[r] * x0;
        (*block).acc1[r] += weights[r] * x1;
    }
    var next = Tap(t.c, t.kh, t.kw + 1u);
    if next.kw == params.kernel_width {
        next.kw = 0u;
        next.kh++;
        if next.kh == params.kernel_height {
            next.kh = 0u;
            next.c++;
        }
    }
    *tap = next;
}

fn gemm_block(group: vec3<u32>, lid: u32, subgroup_lane: u32) -> Block {
    let first = group.y * GEMM_ROWS;
    let lane = group.x * WORKGROUP_SIZE + lid;
    let col4 = (lane / CLUSTER) * (2u * CLUSTER) + lane % CLUSTER;
    let columns = params.batch_size * params.out_height * params.out_width;
    let last_column = vec4(columns - 1u);
    let lanes = vec4(0u, 1u, 2u, 3u);
    let pixels0 = vec4(col4 * 4u) + lanes;
    let pixels1 = vec4((col4 + CLUSTER) * 4u) + lanes;
    // Pixels past the end gather for the last one, and their sums are never stored.
    let g0 = gather_of(min(pixels0, last_column));
    let g1 = gather_of(min(pixels1, last_column));

    let k4 = params.in_channels * params.kernel_height * params.kernel_width / 4u;
    let own_row = min(first + subgroup_lane % GEMM_ROWS, params.out_channels - 1u) * k4;
    let cluster_base = subgroup_lane - subgroup_lane % GEMM_ROWS;
    var block: Block;
    for (var r = 0u; r < GEMM_ROWS; r++) {
        block.acc0[r] = vec4(0.0);
        block.acc1[r] = vec4(0.0);
    }
    // The tap (c, kh, kw) of the next k, counted along the weight's row.
    var tap = Tap(0u, 0u, 0u);
    for (var kq = 0u; kq < k4; kq++) {
        let own = weight4[own_row + kq];
        var w0: array<f32, GEMM_ROWS>;
        var w1: array<f32, GEMM_ROWS>;
        var w2: array<f32, GEMM_ROWS>;
        var w3: array<f32, GEMM_ROWS>;
        for (var r = 0u; r < GEMM_ROWS; r++) {
            let column = subgroupShuffle(own, cluster_base + r);
            w0[r] = column.x;
            w1[r] = column.y;
            w2[r] = column.z;
            w3[r] = column.w;
        }
        // The four k of the quad, written out so that the weight columns stay in registers.
        accumulate(&block, w0, g0, g1, &tap);
        accumulate(&block, w1, g0, g1, &tap);
        accumulate(&block, w2, g0, g1, &tap);
        accumulate(&block, w3, g0, g1, &tap);
    }
    block.first = first;
    block.pixels0 = pixels0;
    block.pixels1 = pixels1;
    return block;
}

// Stores the four pixels of `pixels` for output channel o; y is [n, out_channels, plane].
fn store(pixels: vec4<u32>, o: u32, values: vec4<f32>) {
    let plane = params.out_height * params.out_width;
    let columns = params.batch_size * plane;
    for (var i = 0u; i < 4u; i++) {
        let j = pixels[i];
        if j < columns {
            y[((j / plane) * params.out_channels + o) * plane + j % plane] = values[i];
        }
    }
}

fn store_block(block: Block, bias_values: array<f32, GEMM_ROWS>) {
    for (var r = 0u; r < GEMM_ROWS; r++) {
        let o = block.first + r;
        if o < params.out_channels {
            store(block.pixels0, o, block.acc0[r] + bias_values[r]);
            store(block.pixels1, o, block.acc1[r] + bias_values[r]);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_gemm(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let block = gemm_block(group, lid, subgroup_lane);
    store_block(block, array<f32, GEMM_ROWS>());
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_gemm_bias(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let block = gemm_block(group, lid, subgroup_lane);
    var bias_values: array<f32, GEMM_ROWS>;
    for (var r = 0u; r < GEMM_ROWS; r++) {
        bias_values[r] = bias[min(block.first + r, params.out_channels - 1u)];
    }
    store_block(block, bias_values);
}
