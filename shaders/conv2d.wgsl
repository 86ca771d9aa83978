// 2-D convolution (cross-correlation, as in PyTorch) and its input and weight gradients, as
// implicit matrix products. Tensors are row-major: x [n, in_channels, h, w], weight
// [out_channels, in_channels, kh, kw], y [n, out_channels, out_h, out_w].
//
// Each invocation accumulates a register tile and owns every output it writes, so there are
// no barriers, no atomics, and each output is summed in a fixed order. The channel tile of
// an invocation comes from `workgroup_id.z`, so every load of the weight (forward,
// backward_input) or of dy (backward_weight) has the same address in all invocations of a
// workgroup; software rasterisers such as lavapipe then load it once instead of gathering.
//
// Index arithmetic is u32. A position left of or above the input wraps around to a huge
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
}

override WORKGROUP_SIZE: u32 = 64u;

// Channels per invocation in forward and backward_input, and pixels along one row.
// `TILE` in src/gpu/ops/conv2d.rs must match.
const TILE: u32 = 4u;
// Output channels per invocation in backward_weight.
// `WEIGHT_TILE` in src/gpu/ops/conv2d.rs must match.
const WEIGHT_TILE: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dweight: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

const LANES = vec4<u32>(0u, 1u, 2u, 3u);

// Four channels times four consecutive pixels of one row: `rows[i][j]` belongs to channel
// `first_channel + i` and pixel `first_pixel + j`.
struct Tile {
    rows: array<vec4<f32>, 4>,
    first_channel: u32,
    // Index of the tile's pixel 0 in channel 0 of its image.
    first_pixel: u32,
    // Pixels of the tile inside the row: 1 to 4.
    pixel_count: u32,
}

// Stores the tile's pixels of one channel plane starting at `index`.
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

// y for output channels 4 * channel_tile .. + 3 at four pixels of one output row, without
// bias: the sum over kernel taps and input channels of weight times x.
fn forward_tile(tile: u32, channel_tile: u32) -> Tile {
    let row_tiles = (params.out_width + TILE - 1u) / TILE;
    let ow0 = (tile % row_tiles) * TILE;
    let row = tile / row_tiles;
    let oh = row % params.out_height;
    let n = row / params.out_height;

    let plane = params.in_height * params.in_width;
    let x_image = n * params.in_channels * plane;
    let taps = params.kernel_height * params.kernel_width;
    let filter_len = params.in_channels * taps;
    // Channels past the last one read the last filter; their sums are never stored.
    let first = channel_tile * TILE;
    let last = params.out_channels - 1u;
    let filters = vec4<u32>(min(first, last), min(first + 1u, last), min(first + 2u, last), min(first + 3u, last)) * filter_len;
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
            // Taps in the padding read the plane's first element and then select zero, so
            // every load stays in bounds.
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

// Only `forward_bias` may call this: every entry point that reaches `bias` must bind it.
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

// dx for input channels 4 * group.z .. + 3 at four pixels of one input row:
// dx[b, c, ih, iw] = Σ dy[b, o, oh, ow] · weight[o, c, kh, kw] over the taps with
// oh · stride_h + kh · dilation_h − padding_h = ih, and likewise for iw.
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
    // Channels past the last one read the last channel's weights; their sums are never stored.
    let first = group.z * TILE;
    let last = params.in_channels - 1u;
    let channels = vec4<u32>(min(first, last), min(first + 1u, last), min(first + 2u, last), min(first + 3u, last)) * taps;
    let shifted_w = vec4<u32>(iw0 + params.padding_w) + LANES;
    let shifted_h = ih + params.padding_h;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kw = 0u; kw < params.kernel_width; kw++) {
        // The output column that reaches input column iw through tap kw, when there is one:
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
            // Taps that hit no output read the plane's first element and then select zero.
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

// dweight for output channels 8 * group.z .. + 7 at one (in_channel, kh, kw):
// dweight[o, c, kh, kw] = Σ_{b, oh, ow} dy[b, o, oh, ow] · x[b, c, ih, iw], summed in the
// order b, oh, ow.
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
    // Channels past the last one read the last channel's dy; their sums are never stored.
    let first = group.z * WEIGHT_TILE;
    let last = params.out_channels - 1u;
    let low = vec4<u32>(min(first, last), min(first + 1u, last), min(first + 2u, last), min(first + 3u, last)) * out_plane;
    let high = vec4<u32>(min(first + 4u, last), min(first + 5u, last), min(first + 6u, last), min(first + 7u, last)) * out_plane;
    let row_offset = kh * params.dilation_h - params.padding_h;
    let col_offset = kw * params.dilation_w - params.padding_w;

    var acc_low = vec4<f32>(0.0);
    var acc_high = vec4<f32>(0.0);
    for (var b = 0u; b < params.batch_size; b++) {
        let x_plane = (b * params.in_channels + c) * plane;
        let dy_image = b * params.out_channels * out_plane;
        for (var oh = 0u; oh < params.out_height; oh++) {
            let ih = oh * params.stride_h + row_offset;
            if ih >= params.in_height {
                continue;
            }
            let x_row = x_plane + ih * params.in_width;
            let dy_row = dy_image + oh * params.out_width;
            for (var ow = 0u; ow < params.out_width; ow++) {
                let iw = ow * params.stride_w + col_offset;
                let inside = iw < params.in_width;
                // Taps in the padding read the row's first element and then select zero.
                let xv = select(0.0, x[x_row + select(0u, iw, inside)], inside);
                let d = dy_row + ow;
                acc_low += xv * vec4<f32>(dy[low.x + d], dy[low.y + d], dy[low.z + d], dy[low.w + d]);
                acc_high += xv * vec4<f32>(dy[high.x + d], dy[high.y + d], dy[high.z + d], dy[high.w + d]);
            }
        }
    }

    let filter_len = params.in_channels * taps;
    let sums = array<f32, 8>(acc_low.x, acc_low.y, acc_low.z, acc_low.w, acc_high.x, acc_high.y, acc_high.z, acc_high.w);
    for (var i = 0u; i < WEIGHT_TILE; i++) {
        let channel = first + i;
        if channel >= params.out_channels {
            break;
        }
        dweight[channel * filter_len + element] = sums[i];
    }
}
