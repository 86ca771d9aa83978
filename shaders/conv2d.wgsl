// 2-D convolution (cross-correlation, as in PyTorch) and its input and weight gradients, as
// implicit matrix products. Tensors are row-major: x [n, in_channels, h, w], weight
// [out_channels, in_channels, kh, kw], y [n, out_channels, out_h, out_w].
//
// Each invocation accumulates a register tile and owns every output it writes, so there are
// no barriers and no atomics, and each output is summed in a fixed order. The channel tile
// of an invocation is `workgroup_id.z`.
//
// Loads from storage buffers cost far more than arithmetic on lavapipe, because gallivm
// (Mesa 21.3 source) loads each lane of an 8-wide SIMD group separately. On Mesa 22.3, a
// tiled forward kernel ran 12 times faster with its loads removed. So the kernels reuse
// every loaded value across a tile of outputs. When the stride and dilation along w are 1,
// the `*_row` kernels slide a window along a row: the inputs that 16 neighbouring pixels
// read at tap kw + 1 are those they read at tap kw, moved by one column, so a tap loads one
// new value instead of 16. The other kernels serve any stride and dilation.
//
// Index arithmetic is u32. A column or row left of or above the input wraps around to a huge
// value, so one `< size` comparison tests both ends.

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
    // Invocations along the flattened x/y dispatch dimensions that hold work.
    tiles: u32,
    // backward_weight only: rows (b, oh) of dy per chunk of the sum, and the channel tiles
    // along workgroup_id.z before the chunk index, which is workgroup_id.z / channel_tiles.
    rows_per_chunk: u32,
    channel_tiles: u32,
    _padding0: u32,
    _padding1: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

// The tile sizes below are mirrored by constants of the same names in
// src/gpu/ops/conv2d.rs, which a unit test compares with this file.

// Channels per invocation in every kernel but backward_weight, and pixels per invocation
// along a row in forward and backward_input.
const TILE: u32 = 4u;
// Pixels per invocation along a row in forward_row and backward_input_row.
const ROW: u32 = 16u;
// Output channels per invocation in backward_weight.
const WEIGHT_TILE: u32 = 8u;
// Kernel columns per invocation in backward_weight_row.
const WEIGHT_ROW: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(8) var<storage, read_write> flipped: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

const LANES = vec4<u32>(0u, 1u, 2u, 3u);

// `first * stride` for the four channels `first ..= first + 3`, each clamped to `last`. The
// channels past `last` then read valid memory, and their sums are never stored.
fn clamped_offsets(first: u32, last: u32, stride: u32) -> vec4<u32> {
    return min(vec4<u32>(first) + LANES, vec4<u32>(last)) * stride;
}

// Stores the first `count` (at least 1) of four values to consecutive elements.
fn store_y(index: u32, count: u32, values: vec4<f32>) {
    y[index] = values.x;
    if count > 1u { y[index + 1u] = values.y; }
    if count > 2u { y[index + 2u] = values.z; }
    if count > 3u { y[index + 3u] = values.w; }
}

fn store_dx(index: u32, count: u32, values: vec4<f32>) {
    dx[index] = values.x;
    if count > 1u { dx[index + 1u] = values.y; }
    if count > 2u { dx[index + 2u] = values.z; }
    if count > 3u { dx[index + 3u] = values.w; }
}

fn store_dweight(index: u32, count: u32, values: vec4<f32>) {
    dweight[index] = values.x;
    if count > 1u { dweight[index + 1u] = values.y; }
    if count > 2u { dweight[index + 2u] = values.z; }
    if count > 3u { dweight[index + 3u] = values.w; }
}

// x at column `col` of the row that starts at `row_start`, or zero in the padding. A
// padding column reads the row's first element and discards it, so the load stays in bounds.
fn x_at(row_start: u32, col: u32) -> f32 {
    let inside = col < params.in_width;
    return select(0.0, x[row_start + select(0u, col, inside)], inside);
}

fn dy_at(row_start: u32, col: u32) -> f32 {
    let inside = col < params.out_width;
    return select(0.0, dy[row_start + select(0u, col, inside)], inside);
}

// ---------------------------------------------------------------------------------------
// forward: y[b, o, oh, ow] = Σ_{c, kh, kw} x[b, c, ih, iw] · weight[o, c, kh, kw] (+ bias[o])
// with ih = oh · stride_h + kh · dilation_h − padding_h, and likewise iw.

// Four channels times four consecutive pixels of one row: `rows[i][j]` belongs to channel
// `first_channel + i` and pixel `first_pixel + j`.
struct Tile {
    rows: array<vec4<f32>, 4>,
    first_channel: u32,
    // Index of the tile's pixel 0 in output channel 0 of its image.
    first_pixel: u32,
    // Pixels of the tile inside the row: 1 to 4.
    pixel_count: u32,
}

// y without bias for output channels 4 · channel_tile ..= + 3 at four pixels of one row, for
// any stride and dilation.
fn forward_tile(tile: u32, channel_tile: u32) -> Tile {
    let row_tiles = (params.out_width + TILE - 1u) / TILE;
    let ow0 = (tile % row_tiles) * TILE;
    let row = tile / row_tiles;
    let oh = row % params.out_height;
    let n = row / params.out_height;

    let plane = params.in_height * params.in_width;
    let x_image = n * params.in_channels * plane;
    let taps = params.kernel_height * params.kernel_width;
    let first = channel_tile * TILE;
    let filters = clamped_offsets(first, params.out_channels - 1u, params.in_channels * taps);
    let ow = vec4<u32>(ow0) + LANES;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kh = 0u; kh < params.kernel_height; kh++) {
        let ih = oh * params.stride_h + kh * params.dilation_h - params.padding_h;
        if ih >= params.in_height {
            continue;
        }
        for (var kw = 0u; kw < params.kernel_width; kw++) {
            let iw = ow * params.stride_w + vec4<u32>(kw * params.dilation_w - params.padding_w);
            let inside = iw < vec4<u32>(params.in_width);
            if !any(inside) {
                continue;
            }
            var index = vec4<u32>(x_image) + select(vec4<u32>(0u), vec4<u32>(ih * params.in_width) + iw, inside);
            var w = kh * params.kernel_width + kw;
            for (var c = 0u; c < params.in_channels; c++) {
                let xv = select(vec4<f32>(0.0), vec4<f32>(x[index.x], x[index.y], x[index.z], x[index.w]), inside);
                acc0 += weight[filters.x + w] * xv;
                acc1 += weight[filters.y + w] * xv;
                acc2 += weight[filters.z + w] * xv;
                acc3 += weight[filters.w + w] * xv;
                index += vec4<u32>(plane);
                w += taps;
            }
        }
    }

    let out_plane = params.out_height * params.out_width;
    return Tile(
        array<vec4<f32>, 4>(acc0, acc1, acc2, acc3),
        first,
        n * params.out_channels * out_plane + oh * params.out_width + ow0,
        min(TILE, params.out_width - ow0),
    );
}

fn store_forward(t: Tile) {
    let out_plane = params.out_height * params.out_width;
    for (var i = 0u; i < TILE; i++) {
        let channel = t.first_channel + i;
        if channel >= params.out_channels {
            break;
        }
        store_y(t.first_pixel + channel * out_plane, t.pixel_count, t.rows[i]);
    }
}

// Only the `*_bias` entry points may call this: every entry point that reaches `bias` must
// bind it.
fn add_bias(t: Tile) -> Tile {
    var biased = t;
    let last = params.out_channels - 1u;
    for (var i = 0u; i < TILE; i++) {
        biased.rows[i] += bias[min(t.first_channel + i, last)];
    }
    return biased;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    store_forward(forward_tile(tile, group.z));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_bias(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    store_forward(add_bias(forward_tile(tile, group.z)));
}

// Four channels times sixteen consecutive pixels of one row: `quarters[4 i + q]` holds
// pixels 4 q ..= 4 q + 3 of channel `first_channel + i`.
struct RowTile {
    quarters: array<vec4<f32>, 16>,
    first_channel: u32,
    // Index of the tile's pixel 0 in channel 0 of its image.
    first_pixel: u32,
    // Pixels of the tile inside the row: 1 to 16.
    pixel_count: u32,
}

// y without bias for output channels 4 · channel_tile ..= + 3 at sixteen pixels of one row,
// when stride_w = dilation_w = 1.
fn forward_row_tile(tile: u32, channel_tile: u32) -> RowTile {
    let row_tiles = (params.out_width + ROW - 1u) / ROW;
    let ow0 = (tile % row_tiles) * ROW;
    let row = tile / row_tiles;
    let oh = row % params.out_height;
    let n = row / params.out_height;

    let plane = params.in_height * params.in_width;
    let x_image = n * params.in_channels * plane;
    let taps = params.kernel_height * params.kernel_width;
    let first = channel_tile * TILE;
    let filters = clamped_offsets(first, params.out_channels - 1u, params.in_channels * taps);
    // The input column that pixel 0 reads at tap 0.
    let start = ow0 - params.padding_w;

    // a<i><q>: channel first + i, pixels 4 q ..= 4 q + 3.
    var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0); var a02 = vec4<f32>(0.0); var a03 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0); var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0); var a32 = vec4<f32>(0.0); var a33 = vec4<f32>(0.0);
    for (var kh = 0u; kh < params.kernel_height; kh++) {
        let ih = oh * params.stride_h + kh * params.dilation_h - params.padding_h;
        if ih >= params.in_height {
            continue;
        }
        for (var c = 0u; c < params.in_channels; c++) {
            let rs = x_image + c * plane + ih * params.in_width;
            // The window one tap before tap 0: slot j holds column start + j − 1. The first
            // shift drops slot 0, which is never used.
            var v0 = vec4<f32>(0.0, x_at(rs, start), x_at(rs, start + 1u), x_at(rs, start + 2u));
            var v1 = vec4<f32>(x_at(rs, start + 3u), x_at(rs, start + 4u), x_at(rs, start + 5u), x_at(rs, start + 6u));
            var v2 = vec4<f32>(x_at(rs, start + 7u), x_at(rs, start + 8u), x_at(rs, start + 9u), x_at(rs, start + 10u));
            var v3 = vec4<f32>(x_at(rs, start + 11u), x_at(rs, start + 12u), x_at(rs, start + 13u), x_at(rs, start + 14u));
            var w = c * taps + kh * params.kernel_width;
            for (var kw = 0u; kw < params.kernel_width; kw++) {
                v0 = vec4<f32>(v0.yzw, v1.x);
                v1 = vec4<f32>(v1.yzw, v2.x);
                v2 = vec4<f32>(v2.yzw, v3.x);
                v3 = vec4<f32>(v3.yzw, x_at(rs, start + 15u + kw));
                let w0 = weight[filters.x + w];
                let w1 = weight[filters.y + w];
                let w2 = weight[filters.z + w];
                let w3 = weight[filters.w + w];
                a00 += w0 * v0; a01 += w0 * v1; a02 += w0 * v2; a03 += w0 * v3;
                a10 += w1 * v0; a11 += w1 * v1; a12 += w1 * v2; a13 += w1 * v3;
                a20 += w2 * v0; a21 += w2 * v1; a22 += w2 * v2; a23 += w2 * v3;
                a30 += w3 * v0; a31 += w3 * v1; a32 += w3 * v2; a33 += w3 * v3;
                w += 1u;
            }
        }
    }

    let out_plane = params.out_height * params.out_width;
    return RowTile(
        array<vec4<f32>, 16>(a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33),
        first,
        n * params.out_channels * out_plane + oh * params.out_width + ow0,
        min(ROW, params.out_width - ow0),
    );
}

fn store_forward_row(t: RowTile) {
    let out_plane = params.out_height * params.out_width;
    for (var i = 0u; i < TILE; i++) {
        let channel = t.first_channel + i;
        if channel >= params.out_channels {
            break;
        }
        let index = t.first_pixel + channel * out_plane;
        for (var q = 0u; q * 4u < t.pixel_count; q++) {
            store_y(index + q * 4u, t.pixel_count - q * 4u, t.quarters[i * 4u + q]);
        }
    }
}

// Only forward_row_bias may call this, as with add_bias.
fn add_bias_row(t: RowTile) -> RowTile {
    var biased = t;
    let last = params.out_channels - 1u;
    for (var i = 0u; i < TILE; i++) {
        let b = bias[min(t.first_channel + i, last)];
        for (var q = 0u; q < 4u; q++) {
            biased.quarters[i * 4u + q] += b;
        }
    }
    return biased;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_row(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    store_forward_row(forward_row_tile(tile, group.z));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_row_bias(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    store_forward_row(add_bias_row(forward_row_tile(tile, group.z)));
}

// ---------------------------------------------------------------------------------------
// flip_weight: flipped[c, o, a, b] = weight[o, c, kh − 1 − a, kw − 1 − b]. With stride and
// dilation 1, the input gradient is the forward convolution of dy with these weights and
// padding kh − 1 − padding_h, kw − 1 − padding_w, which the implicit product of
// shaders/conv2d_subgroup.wgsl then runs. `params.tiles` is the weight's length.

@compute @workgroup_size(WORKGROUP_SIZE)
fn flip_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.tiles {
        return;
    }
    let kh = params.kernel_height;
    let kw = params.kernel_width;
    let b = i % kw;
    let a = (i / kw) % kh;
    let o = (i / (kw * kh)) % params.out_channels;
    let c = i / (kw * kh * params.out_channels);
    let source = (o * params.in_channels + c) * kh * kw + (kh - 1u - a) * kw + (kw - 1u - b);
    flipped[i] = weight[source];
}

// ---------------------------------------------------------------------------------------
// backward_input: dx[b, c, ih, iw] = Σ dy[b, o, oh, ow] · weight[o, c, kh, kw] over the taps
// with oh · stride_h + kh · dilation_h − padding_h = ih, and likewise for iw.

// dx for input channels 4 · group.z ..= + 3 at four pixels of one input row, for any stride
// and dilation.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_input(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    let row_tiles = (params.in_width + TILE - 1u) / TILE;
    let iw0 = (tile % row_tiles) * TILE;
    let row = tile / row_tiles;
    let ih = row % params.in_height;
    let n = row / params.in_height;

    let out_plane = params.out_height * params.out_width;
    let dy_image = n * params.out_channels * out_plane;
    let taps = params.kernel_height * params.kernel_width;
    let filter_len = params.in_channels * taps;
    let first = group.z * TILE;
    let channels = clamped_offsets(first, params.in_channels - 1u, taps);
    let shifted_w = vec4<u32>(iw0 + params.padding_w) + LANES;
    let shifted_h = ih + params.padding_h;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kw = 0u; kw < params.kernel_width; kw++) {
        // The output column that reaches input column iw through tap kw, where one exists:
        // ow · stride_w = iw + padding_w − kw · dilation_w.
        let reach = vec4<u32>(kw * params.dilation_w);
        let t = shifted_w - reach;
        let ow = t / vec4<u32>(params.stride_w);
        let hits = (shifted_w >= reach) & (ow * params.stride_w == t) & (ow < vec4<u32>(params.out_width));
        if !any(hits) {
            continue;
        }
        for (var kh = 0u; kh < params.kernel_height; kh++) {
            let reach_h = kh * params.dilation_h;
            if shifted_h < reach_h {
                break;
            }
            let oh = (shifted_h - reach_h) / params.stride_h;
            if oh * params.stride_h != shifted_h - reach_h || oh >= params.out_height {
                continue;
            }
            // Taps that reach no output read the plane's first element and discard it.
            var index = vec4<u32>(dy_image) + select(vec4<u32>(0u), vec4<u32>(oh * params.out_width) + ow, hits);
            var w = kh * params.kernel_width + kw;
            for (var o = 0u; o < params.out_channels; o++) {
                let g = select(vec4<f32>(0.0), vec4<f32>(dy[index.x], dy[index.y], dy[index.z], dy[index.w]), hits);
                acc0 += weight[channels.x + w] * g;
                acc1 += weight[channels.y + w] * g;
                acc2 += weight[channels.z + w] * g;
                acc3 += weight[channels.w + w] * g;
                index += vec4<u32>(out_plane);
                w += filter_len;
            }
        }
    }

    let plane = params.in_height * params.in_width;
    let first_pixel = n * params.in_channels * plane + ih * params.in_width + iw0;
    let count = min(TILE, params.in_width - iw0);
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < TILE; i++) {
        let channel = first + i;
        if channel >= params.in_channels {
            break;
        }
        store_dx(first_pixel + channel * plane, count, rows[i]);
    }
}

// dx for input channels 4 · group.z ..= + 3 at sixteen pixels of one input row, when
// stride_w = dilation_w = 1. Pixel j reads dy column iw0 + j + padding_w − kw at tap kw, so
// the window moves one column right per tap.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_input_row(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    let row_tiles = (params.in_width + ROW - 1u) / ROW;
    let iw0 = (tile % row_tiles) * ROW;
    let row = tile / row_tiles;
    let ih = row % params.in_height;
    let n = row / params.in_height;

    let out_plane = params.out_height * params.out_width;
    let dy_image = n * params.out_channels * out_plane;
    let taps = params.kernel_height * params.kernel_width;
    let filter_len = params.in_channels * taps;
    let first = group.z * TILE;
    let channels = clamped_offsets(first, params.in_channels - 1u, taps);
    // The dy column that pixel 0 reads at tap 0.
    let start = iw0 + params.padding_w;
    let shifted_h = ih + params.padding_h;

    // a<i><q>: channel first + i, pixels 4 q ..= 4 q + 3.
    var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0); var a02 = vec4<f32>(0.0); var a03 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0); var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0); var a32 = vec4<f32>(0.0); var a33 = vec4<f32>(0.0);
    for (var kh = 0u; kh < params.kernel_height; kh++) {
        // The output row that reaches input row ih through tap kh, where one exists.
        let reach_h = kh * params.dilation_h;
        if shifted_h < reach_h {
            break;
        }
        let oh = (shifted_h - reach_h) / params.stride_h;
        if oh * params.stride_h != shifted_h - reach_h || oh >= params.out_height {
            continue;
        }
        for (var o = 0u; o < params.out_channels; o++) {
            let rs = dy_image + o * out_plane + oh * params.out_width;
            // The window one tap before tap 0: slot j holds column start + j + 1. The first
            // shift drops slot 15, which is never used.
            var v0 = vec4<f32>(dy_at(rs, start + 1u), dy_at(rs, start + 2u), dy_at(rs, start + 3u), dy_at(rs, start + 4u));
            var v1 = vec4<f32>(dy_at(rs, start + 5u), dy_at(rs, start + 6u), dy_at(rs, start + 7u), dy_at(rs, start + 8u));
            var v2 = vec4<f32>(dy_at(rs, start + 9u), dy_at(rs, start + 10u), dy_at(rs, start + 11u), dy_at(rs, start + 12u));
            var v3 = vec4<f32>(dy_at(rs, start + 13u), dy_at(rs, start + 14u), dy_at(rs, start + 15u), 0.0);
            var w = o * filter_len + kh * params.kernel_width;
            for (var kw = 0u; kw < params.kernel_width; kw++) {
                v3 = vec4<f32>(v2.w, v3.xyz);
                v2 = vec4<f32>(v1.w, v2.xyz);
                v1 = vec4<f32>(v0.w, v1.xyz);
                v0 = vec4<f32>(dy_at(rs, start - kw), v0.xyz);
                let w0 = weight[channels.x + w];
                let w1 = weight[channels.y + w];
                let w2 = weight[channels.z + w];
                let w3 = weight[channels.w + w];
                a00 += w0 * v0; a01 += w0 * v1; a02 += w0 * v2; a03 += w0 * v3;
                a10 += w1 * v0; a11 += w1 * v1; a12 += w1 * v2; a13 += w1 * v3;
                a20 += w2 * v0; a21 += w2 * v1; a22 += w2 * v2; a23 += w2 * v3;
                a30 += w3 * v0; a31 += w3 * v1; a32 += w3 * v2; a33 += w3 * v3;
                w += 1u;
            }
        }
    }

    let plane = params.in_height * params.in_width;
    let first_pixel = n * params.in_channels * plane + ih * params.in_width + iw0;
    let count = min(ROW, params.in_width - iw0);
    let quarters = array<vec4<f32>, 16>(a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
    for (var i = 0u; i < TILE; i++) {
        let channel = first + i;
        if channel >= params.in_channels {
            break;
        }
        let index = first_pixel + channel * plane;
        for (var q = 0u; q * 4u < count; q++) {
            store_dx(index + q * 4u, count - q * 4u, quarters[i * 4u + q]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// backward_weight: dweight[o, c, kh, kw] = Σ_{b, oh, ow} dy[b, o, oh, ow] · x[b, c, ih, iw],
// summed in the order b, oh, ow.
//
// The sum runs over batch_size · out_height rows of out_width terms, more than the 65,535
// loop iterations that Mesa's gallivm allows an invocation (see shaders/sum_chunks.wgsl)
// once the batch is large. So each invocation sums one chunk of `rows_per_chunk` rows;
// with more than one chunk, chunk z writes the z-th dweight-sized block of a partial-sum
// buffer bound as `dweight`, and sum_chunks.wgsl adds the blocks in order.

// The rows (b, oh) of the invocation's chunk, and the offset of its block in `dweight`.
struct Chunk {
    begin: u32,
    end: u32,
    offset: u32,
    channel_tile: u32,
}

fn weight_chunk(group_z: u32) -> Chunk {
    let chunk = group_z / params.channel_tiles;
    let begin = chunk * params.rows_per_chunk;
    let end = min(begin + params.rows_per_chunk, params.batch_size * params.out_height);
    let weight_len = params.out_channels * params.in_channels * params.kernel_height * params.kernel_width;
    return Chunk(begin, end, chunk * weight_len, group_z % params.channel_tiles);
}

// dweight for output channels 8 · group.z ..= + 7 at one (c, kh, kw), for any stride and
// dilation.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_weight(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let element = flat_index(gid, groups);
    if element >= params.tiles {
        return;
    }
    let taps = params.kernel_height * params.kernel_width;
    let c = element / taps;
    let kh = (element % taps) / params.kernel_width;
    let kw = element % params.kernel_width;

    let plane = params.in_height * params.in_width;
    let out_plane = params.out_height * params.out_width;
    let chunk = weight_chunk(group.z);
    let first = chunk.channel_tile * WEIGHT_TILE;
    let last = params.out_channels - 1u;
    let low = clamped_offsets(first, last, out_plane);
    let high = clamped_offsets(first + 4u, last, out_plane);
    let row_offset = kh * params.dilation_h - params.padding_h;
    let col_offset = kw * params.dilation_w - params.padding_w;

    var acc_low = vec4<f32>(0.0);
    var acc_high = vec4<f32>(0.0);
    for (var row = chunk.begin; row < chunk.end; row++) {
        let b = row / params.out_height;
        let oh = row % params.out_height;
        let ih = oh * params.stride_h + row_offset;
        if ih >= params.in_height {
            continue;
        }
        let rs = (b * params.in_channels + c) * plane + ih * params.in_width;
        let dy_row = b * params.out_channels * out_plane + oh * params.out_width;
        for (var ow = 0u; ow < params.out_width; ow++) {
            let xv = x_at(rs, ow * params.stride_w + col_offset);
            let d = dy_row + ow;
            acc_low += xv * vec4<f32>(dy[low.x + d], dy[low.y + d], dy[low.z + d], dy[low.w + d]);
            acc_high += xv * vec4<f32>(dy[high.x + d], dy[high.y + d], dy[high.z + d], dy[high.w + d]);
        }
    }

    let filter_len = params.in_channels * taps;
    let sums = array<f32, 8>(acc_low.x, acc_low.y, acc_low.z, acc_low.w, acc_high.x, acc_high.y, acc_high.z, acc_high.w);
    for (var i = 0u; i < WEIGHT_TILE; i++) {
        let channel = first + i;
        if channel >= params.out_channels {
            break;
        }
        dweight[chunk.offset + channel * filter_len + element] = sums[i];
    }
}

// dweight for output channels 4 · group.z ..= + 3 at two kernel rows times eight kernel
// columns of one input channel, when stride_w = dilation_w = 1. Kernel column kw0 + j reads
// x column ow + kw0 + j − padding_w for output column ow, so each row's window moves one
// column left per output column. Both kernel rows share every load of dy.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_weight_row(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let tile = flat_index(gid, groups);
    if tile >= params.tiles {
        return;
    }
    let column_tiles = (params.kernel_width + WEIGHT_ROW - 1u) / WEIGHT_ROW;
    let row_tiles = (params.kernel_height + 1u) / 2u;
    let kw0 = (tile % column_tiles) * WEIGHT_ROW;
    let kh0 = ((tile / column_tiles) % row_tiles) * 2u;
    let c = tile / (column_tiles * row_tiles);
    // A second kernel row past the last one repeats it, and its sums are never stored.
    let kh1 = min(kh0 + 1u, params.kernel_height - 1u);

    let plane = params.in_height * params.in_width;
    let out_plane = params.out_height * params.out_width;
    let chunk = weight_chunk(group.z);
    let first = chunk.channel_tile * TILE;
    let planes = clamped_offsets(first, params.out_channels - 1u, out_plane);
    let row_offset0 = kh0 * params.dilation_h - params.padding_h;
    let row_offset1 = kh1 * params.dilation_h - params.padding_h;
    // The x column that kernel column kw0 reads for output column 0.
    let start = kw0 - params.padding_w;

    // <r><half><i>: kernel row kh<r>, columns kw0 + 4 half ..= + 3, output channel first + i.
    var a000 = vec4<f32>(0.0); var a001 = vec4<f32>(0.0); var a002 = vec4<f32>(0.0); var a003 = vec4<f32>(0.0);
    var a010 = vec4<f32>(0.0); var a011 = vec4<f32>(0.0); var a012 = vec4<f32>(0.0); var a013 = vec4<f32>(0.0);
    var a100 = vec4<f32>(0.0); var a101 = vec4<f32>(0.0); var a102 = vec4<f32>(0.0); var a103 = vec4<f32>(0.0);
    var a110 = vec4<f32>(0.0); var a111 = vec4<f32>(0.0); var a112 = vec4<f32>(0.0); var a113 = vec4<f32>(0.0);
    for (var row = chunk.begin; row < chunk.end; row++) {
        let b = row / params.out_height;
        let oh = row % params.out_height;
        let x_plane = (b * params.in_channels + c) * plane;
        let dy_image = b * params.out_channels * out_plane;
        let ih0 = oh * params.stride_h + row_offset0;
        let ih1 = oh * params.stride_h + row_offset1;
        if ih0 >= params.in_height && ih1 >= params.in_height {
            continue;
        }
        // A row in the padding reads the plane's first row and multiplies by zero.
        let keep0 = select(0.0, 1.0, ih0 < params.in_height);
        let keep1 = select(0.0, 1.0, ih1 < params.in_height);
        let rs0 = x_plane + select(0u, ih0, ih0 < params.in_height) * params.in_width;
        let rs1 = x_plane + select(0u, ih1, ih1 < params.in_height) * params.in_width;
        let dy_row = dy_image + oh * params.out_width;
        // The windows one output column before column 0: slot j holds x column
        // start + j − 1. The first shift drops slot 0, which is never used.
        var u0 = keep0 * vec4<f32>(0.0, x_at(rs0, start), x_at(rs0, start + 1u), x_at(rs0, start + 2u));
        var u1 = keep0 * vec4<f32>(x_at(rs0, start + 3u), x_at(rs0, start + 4u), x_at(rs0, start + 5u), x_at(rs0, start + 6u));
        var v0 = keep1 * vec4<f32>(0.0, x_at(rs1, start), x_at(rs1, start + 1u), x_at(rs1, start + 2u));
        var v1 = keep1 * vec4<f32>(x_at(rs1, start + 3u), x_at(rs1, start + 4u), x_at(rs1, start + 5u), x_at(rs1, start + 6u));
        for (var ow = 0u; ow < params.out_width; ow++) {
            u0 = vec4<f32>(u0.yzw, u1.x);
            u1 = vec4<f32>(u1.yzw, keep0 * x_at(rs0, start + 7u + ow));
            v0 = vec4<f32>(v0.yzw, v1.x);
            v1 = vec4<f32>(v1.yzw, keep1 * x_at(rs1, start + 7u + ow));
            let d = dy_row + ow;
            let g0 = dy[planes.x + d];
            let g1 = dy[planes.y + d];
            let g2 = dy[planes.z + d];
            let g3 = dy[planes.w + d];
            a000 += g0 * u0; a001 += g1 * u0; a002 += g2 * u0; a003 += g3 * u0;
            a010 += g0 * u1; a011 += g1 * u1; a012 += g2 * u1; a013 += g3 * u1;
            a100 += g0 * v0; a101 += g1 * v0; a102 += g2 * v0; a103 += g3 * v0;
            a110 += g0 * v1; a111 += g1 * v1; a112 += g2 * v1; a113 += g3 * v1;
        }
    }

    let taps = params.kernel_height * params.kernel_width;
    let filter_len = params.in_channels * taps;
    let count = min(WEIGHT_ROW, params.kernel_width - kw0);
    let sums = array<vec4<f32>, 16>(a000, a001, a002, a003, a010, a011, a012, a013, a100, a101, a102, a103, a110, a111, a112, a113);
    let kernel_rows = min(2u, params.kernel_height - kh0);
    for (var r = 0u; r < kernel_rows; r++) {
        let first_element = c * taps + (kh0 + r) * params.kernel_width + kw0;
        for (var i = 0u; i < TILE; i++) {
            let channel = first + i;
            if channel >= params.out_channels {
                break;
            }
            let index = chunk.offset + channel * filter_len + first_element;
            store_dweight(index, count, sums[r * 8u + i]);
            if count > 4u {
                store_dweight(index + 4u, count - 4u, sums[r * 8u + 4u + i]);
            }
        }
    }
}
