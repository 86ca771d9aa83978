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
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read_write> dweight: array<f32>;

// The sums of one invocation. Column r of `low<p>` holds output channel first + r and of
// `high<p>` channel first + 4 + r, at the four pixels of `pixels<p>`. Matrices with constant
// indices, unlike arrays indexed in loops, stay in registers on lavapipe.
struct Block {
    low0: mat4x4<f32>,
    high0: mat4x4<f32>,
    low1: mat4x4<f32>,
    high1: mat4x4<f32>,
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

// The products of four pixels and four output channels: column r is `pixels · weights[r]`.
fn outer(pixels: vec4<f32>, weights: vec4<f32>) -> mat4x4<f32> {
    return mat4x4(pixels * weights.x, pixels * weights.y, pixels * weights.z, pixels * weights.w);
}

// Adds one k of the product, the weight column (`low` for output channels first ..= + 3,
// `high` for the next four) times the inputs of `tap`, and moves `tap` to the next k.
fn accumulate(block: ptr<function, Block>, low: vec4<f32>, high: vec4<f32>, g0: Gather, g1: Gather, tap: ptr<function, Tap>) {
    let t = *tap;
    let offset = t.c * params.in_height * params.in_width + t.kh * params.dilation_h * params.in_width + t.kw * params.dilation_w;
    let x0 = gather(g0, offset, 1u << t.kh, 1u << t.kw);
    let x1 = gather(g1, offset, 1u << t.kh, 1u << t.kw);
    (*block).low0 += outer(x0, low);
    (*block).high0 += outer(x0, high);
    (*block).low1 += outer(x1, low);
    (*block).high1 += outer(x1, high);
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
    // The tap (c, kh, kw) of the next k, counted along the weight's row.
    var tap = Tap(0u, 0u, 0u);
    for (var kq = 0u; kq < k4; kq++) {
        let own = weight4[own_row + kq];
        // w<r>: the quad of output channel first + r.
        let w0 = subgroupShuffle(own, cluster_base);
        let w1 = subgroupShuffle(own, cluster_base + 1u);
        let w2 = subgroupShuffle(own, cluster_base + 2u);
        let w3 = subgroupShuffle(own, cluster_base + 3u);
        let w4 = subgroupShuffle(own, cluster_base + 4u);
        let w5 = subgroupShuffle(own, cluster_base + 5u);
        let w6 = subgroupShuffle(own, cluster_base + 6u);
        let w7 = subgroupShuffle(own, cluster_base + 7u);
        // The four k of the quad, written out so that the weight columns stay in registers.
        accumulate(&block, vec4(w0.x, w1.x, w2.x, w3.x), vec4(w4.x, w5.x, w6.x, w7.x), g0, g1, &tap);
        accumulate(&block, vec4(w0.y, w1.y, w2.y, w3.y), vec4(w4.y, w5.y, w6.y, w7.y), g0, g1, &tap);
        accumulate(&block, vec4(w0.z, w1.z, w2.z, w3.z), vec4(w4.z, w5.z, w6.z, w7.z), g0, g1, &tap);
        accumulate(&block, vec4(w0.w, w1.w, w2.w, w3.w), vec4(w4.w, w5.w, w6.w, w7.w), g0, g1, &tap);
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

// Stores output channel o from its sums at both pixel quads, plus `bias_value`.
fn store_channel(block: Block, o: u32, sum0: vec4<f32>, sum1: vec4<f32>, bias_value: f32) {
    if o < params.out_channels {
        store(block.pixels0, o, sum0 + bias_value);
        store(block.pixels1, o, sum1 + bias_value);
    }
}

// Stores the block plus `bias_low` (output channels first ..= + 3) and `bias_high` (the
// next four), one channel at a time with constant indices.
fn store_block(block: Block, bias_low: vec4<f32>, bias_high: vec4<f32>) {
    let first = block.first;
    store_channel(block, first, block.low0[0], block.low1[0], bias_low.x);
    store_channel(block, first + 1u, block.low0[1], block.low1[1], bias_low.y);
    store_channel(block, first + 2u, block.low0[2], block.low1[2], bias_low.z);
    store_channel(block, first + 3u, block.low0[3], block.low1[3], bias_low.w);
    store_channel(block, first + 4u, block.high0[0], block.high1[0], bias_high.x);
    store_channel(block, first + 5u, block.high0[1], block.high1[1], bias_high.y);
    store_channel(block, first + 6u, block.high0[2], block.high1[2], bias_high.z);
    store_channel(block, first + 7u, block.high0[3], block.high1[3], bias_high.w);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_gemm(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let block = gemm_block(group, lid, subgroup_lane);
    store_block(block, vec4(0.0), vec4(0.0));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_gemm_bias(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let block = gemm_block(group, lid, subgroup_lane);
    let last = vec4(params.out_channels - 1u);
    let low = min(vec4(block.first) + vec4(0u, 1u, 2u, 3u), last);
    let high = min(vec4(block.first) + vec4(4u, 5u, 6u, 7u), last);
    store_block(
        block,
        vec4(bias[low.x], bias[low.y], bias[low.z], bias[low.w]),
        vec4(bias[high.x], bias[high.y], bias[high.z], bias[high.w]),
    );
}

// ---------------------------------------------------------------------------------------
// forward_slide: the forward pass for stride_w = dilation_w = 1 as a direct convolution that
// needs few loads, for layers whose in_channels · kh · kw is small or not a multiple of 4.
// An invocation sums 16 output channels at 8 neighbouring pixels of one output row. For
// each (c, kh), the 8 pixels read a window of x that slides by one column per kernel
// column, so a tap costs one new load of x. The 16 weights of a tap are loaded two per
// invocation of a cluster and shared with subgroupShuffle.

// Output channels and pixels per invocation; mirrored by SLIDE_CHANNELS and SLIDE_PIXELS in
// src/gpu/ops/conv2d.rs.
const SLIDE_CHANNELS: u32 = 16u;
const SLIDE_PIXELS: u32 = 8u;

// The weight of element `index` of the weight tensor.
fn weight_at(index: u32) -> f32 {
    return weight4[index / 4u][index % 4u];
}

// The 16 weights of one tap, shuffled from the cluster: column q holds output channels
// 4 q ..= 4 q + 3, when invocation r of the cluster holds channel r in `low` and 8 + r in
// `high`.
fn shuffle_weights(low: f32, high: f32, cluster_base: u32) -> mat4x4<f32> {
    return mat4x4(
        vec4(subgroupShuffle(low, cluster_base), subgroupShuffle(low, cluster_base + 1u), subgroupShuffle(low, cluster_base + 2u), subgroupShuffle(low, cluster_base + 3u)),
        vec4(subgroupShuffle(low, cluster_base + 4u), subgroupShuffle(low, cluster_base + 5u), subgroupShuffle(low, cluster_base + 6u), subgroupShuffle(low, cluster_base + 7u)),
        vec4(subgroupShuffle(high, cluster_base), subgroupShuffle(high, cluster_base + 1u), subgroupShuffle(high, cluster_base + 2u), subgroupShuffle(high, cluster_base + 3u)),
        vec4(subgroupShuffle(high, cluster_base + 4u), subgroupShuffle(high, cluster_base + 5u), subgroupShuffle(high, cluster_base + 6u), subgroupShuffle(high, cluster_base + 7u)),
    );
}

// The sums of one invocation: sums[i] holds pixel ow0 + i, column q output channels
// first + 4 q ..= + 3.
struct Slide {
    sums: array<mat4x4<f32>, SLIDE_PIXELS>,
    first: u32,
    // Index of pixel ow0 in output channel 0 of its image.
    first_pixel: u32,
    // Pixels of the invocation inside the row: 0 (an invocation past the last row) to 8.
    pixel_count: u32,
}

fn slide_sums(group: vec3<u32>, lid: u32, subgroup_lane: u32) -> Slide {
    // Invocations past the last row segment still run the loops, because their neighbours
    // shuffle from them, but store nothing.
    let segment = group.x * WORKGROUP_SIZE + lid;
    let segments = (params.out_width + SLIDE_PIXELS - 1u) / SLIDE_PIXELS;
    let tile = min(segment, params.tiles - 1u);
    let ow0 = (tile % segments) * SLIDE_PIXELS;
    let row = tile / segments;
    let oh = row % params.out_height;
    let n = row / params.out_height;

    let first = group.y * SLIDE_CHANNELS;
    let taps = params.kernel_height * params.kernel_width;
    let filter_len = params.in_channels * taps;
    let last_channel = params.out_channels - 1u;
    let low_filter = min(first + subgroup_lane % CLUSTER, last_channel) * filter_len;
    let high_filter = min(first + CLUSTER + subgroup_lane % CLUSTER, last_channel) * filter_len;
    let cluster_base = subgroup_lane - subgroup_lane % CLUSTER;
    let plane = params.in_height * params.in_width;
    let x_image = n * params.in_channels * plane;
    // The input column that pixel 0 reads at kernel column 0.
    let start = ow0 - params.padding_w;

    var sum0: mat4x4<f32>;
    var sum1: mat4x4<f32>;
    var sum2: mat4x4<f32>;
    var sum3: mat4x4<f32>;
    var sum4: mat4x4<f32>;
    var sum5: mat4x4<f32>;
    var sum6: mat4x4<f32>;
    var sum7: mat4x4<f32>;
    for (var c = 0u; c < params.in_channels; c++) {
        for (var kh = 0u; kh < params.kernel_height; kh++) {
            let ih = oh * params.stride_h + kh * params.dilation_h - params.padding_h;
            let inside = ih < params.in_height;
            let rs = x_image + c * plane + select(0u, ih, inside) * params.in_width;
            // The window one kernel column before column 0: slot j holds x column
            // start + j − 1. The first shift drops slot 0, which is never used.
            var w0 = vec4(0.0, x_at(rs, start, inside), x_at(rs, start + 1u, inside), x_at(rs, start + 2u, inside));
            var w1 = vec4(x_at(rs, start + 3u, inside), x_at(rs, start + 4u, inside), x_at(rs, start + 5u, inside), x_at(rs, start + 6u, inside));
            var tap = c * taps + kh * params.kernel_width;
            for (var kw = 0u; kw < params.kernel_width; kw++) {
                w0 = vec4(w0.yzw, w1.x);
                w1 = vec4(w1.yzw, x_at(rs, start + 7u + kw, inside));
                let weights = shuffle_weights(weight_at(low_filter + tap), weight_at(high_filter + tap), cluster_base);
                sum0 += weights * w0.x;
                sum1 += weights * w0.y;
                sum2 += weights * w0.z;
                sum3 += weights * w0.w;
                sum4 += weights * w1.x;
                sum5 += weights * w1.y;
                sum6 += weights * w1.z;
                sum7 += weights * w1.w;
                tap += 1u;
            }
        }
    }

    let out_plane = params.out_height * params.out_width;
    let pixel_count = select(0u, min(SLIDE_PIXELS, params.out_width - ow0), segment < params.tiles);
    return Slide(
        array(sum0, sum1, sum2, sum3, sum4, sum5, sum6, sum7),
        first,
        n * params.out_channels * out_plane + oh * params.out_width + ow0,
        pixel_count,
    );
}

// Stores the sums plus `bias_values` (column q: output channels first + 4 q ..= + 3).
fn store_slide(slide: Slide, bias_values: mat4x4<f32>) {
    let out_plane = params.out_height * params.out_width;
    // Variables, not values: naga copies a whole array value for each dynamic index into it.
    var sums = slide.sums;
    var biases = bias_values;
    for (var r = 0u; r < SLIDE_CHANNELS; r++) {
        let o = slide.first + r;
        if o >= params.out_channels {
            break;
        }
        let index = slide.first_pixel + o * out_plane;
        for (var i = 0u; i < slide.pixel_count; i++) {
            y[index + i] = sums[i][r / 4u][r % 4u] + biases[r / 4u][r % 4u];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_slide(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    store_slide(slide_sums(group, lid, subgroup_lane), mat4x4<f32>());
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_slide_bias(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    let slide = slide_sums(group, lid, subgroup_lane);
    var bias_values: mat4x4<f32>;
    let last = params.out_channels - 1u;
    for (var q = 0u; q < 4u; q++) {
        let o = min(vec4(slide.first + 4u * q) + vec4(0u, 1u, 2u, 3u), vec4(last));
        bias_values[q] = vec4(bias[o.x], bias[o.y], bias[o.z], bias[o.w]);
    }
    store_slide(slide, bias_values);
}

// ---------------------------------------------------------------------------------------
// backward_weight_gemm: dweight[o, c, kh, kw] = Σ_{b, oh, ow} dy[b, o, oh, ow] · x[b, c, ih, iw]
// with ih = oh · stride_h + kh · dilation_h − padding_h and iw = ow + kw − padding_w, for
// stride_w = dilation_w = 1: the product of dy [out_channels, n · out_h · out_w] and the
// gathered inputs, transposed.
//
// On lavapipe every load from a storage buffer costs far more than arithmetic, so the kernel
// is laid out to need few loads per product. An invocation sums 16 output channels times
// one kernel row tile: one (c, kh) and up to 8 kernel columns from kw0. Along an output row,
// those columns read a window of x that slides by one column per pixel, so 4 pixels cost 4
// new loads of x. The 8 invocations of a cluster share their rows of dy and their output
// channels, so each loads dy of two channels and takes the others with subgroupShuffle.
// Columns past the kernel's width are skipped.
//
// The long sum over (b, oh) is split into chunks of `rows_per_chunk` rows, each summed in
// order by one cluster; with more than one chunk, chunk z writes the z-th dweight-sized
// block of `dweight`, and sum_chunks.wgsl adds the blocks in order. Every cluster loops over
// a whole chunk, past the last row too, so that all invocations of a subgroup run the same
// iterations.

// Output channels and kernel columns per invocation; mirrored by WEIGHT_CHANNELS and
// WEIGHT_COLUMNS in src/gpu/ops/conv2d.rs.
const WEIGHT_CHANNELS: u32 = 16u;
const WEIGHT_COLUMNS: u32 = 8u;

// x at column `col` of the row that starts at `row_start`, or zero in the padding or where
// `row_inside` is false. Outside, the load reads the row's first element and discards it.
fn x_at(row_start: u32, col: u32, row_inside: bool) -> f32 {
    let inside = row_inside && col < params.in_width;
    return select(0.0, x[row_start + select(0u, col, inside)], inside);
}

fn dy_at(row_start: u32, col: u32, row_inside: bool) -> f32 {
    let inside = row_inside && col < params.out_width;
    return select(0.0, dy[row_start + select(0u, col, inside)], inside);
}

// dy at the four pixels from `col` of the row that starts at `row_start`, zero past the
// row's end.
fn dy_quad(row_start: u32, col: u32, row_inside: bool) -> vec4<f32> {
    return vec4(dy_at(row_start, col, row_inside), dy_at(row_start, col + 1u, row_inside), dy_at(row_start, col + 2u, row_inside), dy_at(row_start, col + 3u, row_inside));
}

// dy of 16 output channels at 4 pixels, shuffled from the cluster: column q of `quads[i]`
// holds channels 4 q ..= 4 q + 3 at pixel i, when invocation r of the cluster holds channel
// r in `low` and channel 8 + r in `high`.
fn shuffle_dy(low: vec4<f32>, high: vec4<f32>, cluster_base: u32) -> array<mat4x4<f32>, 4> {
    // Column c of p<q> holds channel 4 q + c at the four pixels.
    let p0 = transpose(mat4x4(subgroupShuffle(low, cluster_base), subgroupShuffle(low, cluster_base + 1u), subgroupShuffle(low, cluster_base + 2u), subgroupShuffle(low, cluster_base + 3u)));
    let p1 = transpose(mat4x4(subgroupShuffle(low, cluster_base + 4u), subgroupShuffle(low, cluster_base + 5u), subgroupShuffle(low, cluster_base + 6u), subgroupShuffle(low, cluster_base + 7u)));
    let p2 = transpose(mat4x4(subgroupShuffle(high, cluster_base), subgroupShuffle(high, cluster_base + 1u), subgroupShuffle(high, cluster_base + 2u), subgroupShuffle(high, cluster_base + 3u)));
    let p3 = transpose(mat4x4(subgroupShuffle(high, cluster_base + 4u), subgroupShuffle(high, cluster_base + 5u), subgroupShuffle(high, cluster_base + 6u), subgroupShuffle(high, cluster_base + 7u)));
    return array(
        mat4x4(p0[0], p1[0], p2[0], p3[0]),
        mat4x4(p0[1], p1[1], p2[1], p3[1]),
        mat4x4(p0[2], p1[2], p2[2], p3[2]),
        mat4x4(p0[3], p1[3], p2[3], p3[3]),
    );
}

// `sum` plus the products of four pixels: `window[i]` is x at pixel i, and `dy<i>` holds dy
// at pixel i for the 16 output channels.
fn add_pixels(sum: mat4x4<f32>, window: vec4<f32>, dy0: mat4x4<f32>, dy1: mat4x4<f32>, dy2: mat4x4<f32>, dy3: mat4x4<f32>) -> mat4x4<f32> {
    return sum + dy0 * window.x + dy1 * window.y + dy2 * window.z + dy3 * window.w;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_weight_gemm(@builtin(workgroup_id) group: vec3<u32>,
    @builtin(subgroup_id) subgroup: u32, @builtin(subgroup_size) subgroup_size: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
    // Clusters are numbered along the subgroups, so the 8 invocations of one always share a
    // subgroup. `tiles` counts clusters times CLUSTER over all chunks. Invocations past it
    // still run the loop, because their neighbours shuffle from them, but store nothing.
    let lane = group.x * WORKGROUP_SIZE + subgroup * subgroup_size + subgroup_lane;
    let column_tiles = (params.kernel_width + WEIGHT_COLUMNS - 1u) / WEIGHT_COLUMNS;
    let row_tiles = params.in_channels * params.kernel_height * column_tiles;
    let clusters_per_chunk = (row_tiles + CLUSTER - 1u) / CLUSTER;
    let cluster = min(lane, params.tiles - 1u) / CLUSTER;
    let chunk = cluster / clusters_per_chunk;
    let row_tile = (cluster % clusters_per_chunk) * CLUSTER + lane % CLUSTER;
    let tile = min(row_tile, row_tiles - 1u);
    let kw0 = (tile % column_tiles) * WEIGHT_COLUMNS;
    let kh = (tile / column_tiles) % params.kernel_height;
    let c = tile / (column_tiles * params.kernel_height);
    let count = min(WEIGHT_COLUMNS, params.kernel_width - kw0);

    let rows = params.batch_size * params.out_height;
    let begin = chunk * params.rows_per_chunk;
    let first = group.y * WEIGHT_CHANNELS;
    let last_channel = params.out_channels - 1u;
    let low_channel = min(first + subgroup_lane % CLUSTER, last_channel);
    let high_channel = min(first + CLUSTER + subgroup_lane % CLUSTER, last_channel);
    let cluster_base = subgroup_lane - subgroup_lane % CLUSTER;

    let plane = params.in_height * params.in_width;
    let out_plane = params.out_height * params.out_width;
    let row_offset = kh * params.dilation_h - params.padding_h;
    // The x column that kernel column kw0 reads for output column 0.
    let start = kw0 - params.padding_w;

    // sum<j>: kernel column kw0 + j; column q holds output channels first + 4 q ..= + 3.
    var sum0: mat4x4<f32>;
    var sum1: mat4x4<f32>;
    var sum2: mat4x4<f32>;
    var sum3: mat4x4<f32>;
    var sum4: mat4x4<f32>;
    var sum5: mat4x4<f32>;
    var sum6: mat4x4<f32>;
    var sum7: mat4x4<f32>;
    for (var row = begin; row < begin + params.rows_per_chunk; row++) {
        let row_inside = row < rows;
        let b = select(0u, row / params.out_height, row_inside);
        let oh = row % params.out_height;
        let ih = oh * params.stride_h + row_offset;
        let x_inside = row_inside && ih < params.in_height;
        let rs = (b * params.in_channels + c) * plane + select(0u, ih, x_inside) * params.in_width;
        let dy_image = b * params.out_channels * out_plane + oh * params.out_width;
        let low_row = dy_image + low_channel * out_plane;
        let high_row = dy_image + high_channel * out_plane;
        // The window of x from column start + ow: kernel column kw0 + j of pixel ow + i
        // reads slot i + j of w0, w1 and w2.
        var w0 = vec4(x_at(rs, start, x_inside), x_at(rs, start + 1u, x_inside), x_at(rs, start + 2u, x_inside), x_at(rs, start + 3u, x_inside));
        var w1 = vec4(x_at(rs, start + 4u, x_inside), x_at(rs, start + 5u, x_inside), x_at(rs, start + 6u, x_inside), x_at(rs, start + 7u, x_inside));
        for (var ow = 0u; ow < params.out_width; ow += 4u) {
            let next = start + ow + 8u;
            let w2 = vec4(x_at(rs, next, x_inside), x_at(rs, next + 1u, x_inside), x_at(rs, next + 2u, x_inside), x_at(rs, next + 3u, x_inside));
            // Pixels past the row's end have dy zero, so they add nothing.
            let dy_pixels = shuffle_dy(dy_quad(low_row, ow, row_inside), dy_quad(high_row, ow, row_inside), cluster_base);
            let dy0 = dy_pixels[0];
            let dy1 = dy_pixels[1];
            let dy2 = dy_pixels[2];
            let dy3 = dy_pixels[3];
            // shift<j>: x at pixels ow ..= ow + 3 for kernel column kw0 + j.
            let shift1 = vec4(w0.yzw, w1.x);
            let shift2 = vec4(w0.zw, w1.xy);
            let shift3 = vec4(w0.w, w1.xyz);
            let shift5 = vec4(w1.yzw, w2.x);
            let shift6 = vec4(w1.zw, w2.xy);
            let shift7 = vec4(w1.w, w2.xyz);
            sum0 = add_pixels(sum0, w0, dy0, dy1, dy2, dy3);
            sum1 = add_pixels(sum1, shift1, dy0, dy1, dy2, dy3);
            sum2 = add_pixels(sum2, shift2, dy0, dy1, dy2, dy3);
            sum3 = add_pixels(sum3, shift3, dy0, dy1, dy2, dy3);
            if count > 4u {
                sum4 = add_pixels(sum4, w1, dy0, dy1, dy2, dy3);
            }
            if count > 5u {
                sum5 = add_pixels(sum5, shift5, dy0, dy1, dy2, dy3);
            }
            if count > 6u {
                sum6 = add_pixels(sum6, shift6, dy0, dy1, dy2, dy3);
            }
            if count > 7u {
                sum7 = add_pixels(sum7, shift7, dy0, dy1, dy2, dy3);
            }
            w0 = w1;
            w1 = w2;
        }
    }

    if lane >= params.tiles || row_tile >= row_tiles {
        return;
    }
    let taps = params.kernel_height * params.kernel_width;
    let filter_len = params.in_channels * taps;
    let offset = chunk * params.out_channels * filter_len + c * taps + kh * params.kernel_width + kw0;
    // A variable, not a value: naga copies a whole array value for each dynamic index into it.
    var sums = array(sum0, sum1, sum2, sum3, sum4, sum5, sum6, sum7);
    for (var r = 0u; r < WEIGHT_CHANNELS; r++) {
        let o = first + r;
        if o >= params.out_channels {
            break;
        }
        let index = offset + o * filter_len;
        for (var j = 0u; j < count; j++) {
            dweight[index + j] = sums[j][r / 4u][r % 4u];
        }
    }
}
