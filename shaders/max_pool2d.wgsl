// Max pooling over 2-D windows of NCHW tensors, and its gradient.
// Padded positions are skipped, so they never win a window. The first maximum in row-major
// order wins ties, as in PyTorch.

struct Params {
    // Invocations that do work: outputs in `forward`, inputs in `backward`.
    len: u32,
    in_height: u32,
    in_width: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    _padding: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// The offset within its plane of the first maximum of window (oh, ow) of the plane that
// starts at `plane_base`.
fn window_argmax(plane_base: u32, oh: u32, ow: u32) -> u32 {
    var best_offset = 0u;
    var best = 0.0;
    var found = false;
    for (var kh = 0u; kh < params.kernel_h; kh++) {
        // Unsigned wrap-around turns positions above the padding into huge values, which the
        // range check rejects together with those past the end.
        let ih = oh * params.stride_h + kh - params.pad_h;
        if ih >= params.in_height {
            continue;
        }
        for (var kw = 0u; kw < params.kernel_w; kw++) {
            let iw = ow * params.stride_w + kw - params.pad_w;
            if iw >= params.in_width {
                continue;
            }
            let offset = ih * params.in_width + iw;
            let value = x[plane_base + offset];
            if !found || value > best {
                best = value;
                best_offset = offset;
                found = true;
            }
        }
    }
    return best_offset;
}

// One invocation per output element.
@compute @workgroup_size(WORKGROUP_SIZE)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let ow = i % params.out_width;
    let oh = (i / params.out_width) % params.out_height;
    let plane = i / (params.out_width * params.out_height);
    let plane_base = plane * params.in_height * params.in_width;
    y[i] = x[plane_base + window_argmax(plane_base, oh, ow)];
}

// One invocation per input element: it sums, in row-major window order, the gradients of
// the windows whose first maximum it is. Gathering instead of scattering needs no atomics
// and fixes the summation order.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let plane_len = params.in_height * params.in_width;
    let offset = i % plane_len;
    let plane = i / plane_len;
    let plane_base = plane * plane_len;
    let ih = offset / params.in_width;
    let iw = offset % params.in_width;

    // Windows (oh, ow) with oh * stride_h - pad_h <= ih < oh * stride_h - pad_h + kernel_h.
    let oh_first = first_window(ih + params.pad_h, params.kernel_h, params.stride_h);
    let oh_last = min((ih + params.pad_h) / params.stride_h, params.out_height - 1u);
    let ow_first = first_window(iw + params.pad_w, params.kernel_w, params.stride_w);
    let ow_last = min((iw + params.pad_w) / params.stride_w, params.out_width - 1u);

    let dy_base = plane * params.out_height * params.out_width;
    var sum = 0.0;
    for (var oh = oh_first; oh <= oh_last; oh++) {
        for (var ow = ow_first; ow <= ow_last; ow++) {
            if window_argmax(plane_base, oh, ow) == offset {
                sum += dy[dy_base + oh * params.out_width + ow];
            }
        }
    }
    dx[i] = sum;
}

// The first window along one axis that covers padded position `padded`:
// ceil((padded - kernel + 1) / stride), or 0 when that is negative.
fn first_window(padded: u32, kernel: u32, stride: u32) -> u32 {
    if padded + 1u <= kernel {
        return 0u;
    }
    return (padded + 1u - kernel + stride - 1u) / stride;
}

// The gradient when the windows tile the input exactly (stride equal to the window, no
// padding, sizes divisible): one invocation per window writes its whole k_h x k_w block of
// dx, the window's gradient at its first maximum and zeros elsewhere. Every input element
// lies in exactly one window, so each is written once; this reads x once instead of once
// per element as `backward` does.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_tiled(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let ow = i % params.out_width;
    let oh = (i / params.out_width) % params.out_height;
    let plane = i / (params.out_width * params.out_height);
    let plane_base = plane * params.in_height * params.in_width;
    let winner = window_argmax(plane_base, oh, ow);
    let gradient = dy[i];
    for (var kh = 0u; kh < params.kernel_h; kh++) {
        let row = (oh * params.kernel_h + kh) * params.in_width + ow * params.kernel_w;
        for (var kw = 0u; kw < params.kernel_w; kw++) {
            let offset = row + kw;
            dx[plane_base + offset] = select(0.0, gradient, offset == winner);
        }
    }
}

// 2x2 windows with stride 2 and no padding, the usual down-sampling, written out without
// loops: lavapipe runs every branch of a loop over a window with masked lanes, which made
// the general kernels cost several times the loads they need.

// The offsets of a 2x2 window's elements from its top-left one, in row-major order.
fn window_2x2() -> vec4<u32> {
    return vec4(0u, 1u, params.in_width, params.in_width + 1u);
}

// The first maximum of a window: its index in x and its value.
struct Winner {
    index: u32,
    value: f32,
}

// The first maximum of the 2x2 window for output element i, as in window_argmax: a later
// element wins only when it is greater.
fn argmax_2x2(i: u32) -> Winner {
    let ow = i % params.out_width;
    let oh = (i / params.out_width) % params.out_height;
    let plane = i / (params.out_width * params.out_height);
    let top_left = plane * params.in_height * params.in_width + 2u * oh * params.in_width + 2u * ow;
    let at = vec4(top_left) + window_2x2();
    let values = vec4(x[at.x], x[at.y], x[at.z], x[at.w]);
    var index = at.x;
    var value = values.x;
    let take_y = values.y > value;
    index = select(index, at.y, take_y);
    value = select(value, values.y, take_y);
    let take_z = values.z > value;
    index = select(index, at.z, take_z);
    value = select(value, values.z, take_z);
    let take_w = values.w > value;
    return Winner(select(index, at.w, take_w), select(value, values.w, take_w));
}

// One invocation per output element.
@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_2x2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    y[i] = argmax_2x2(i).value;
}

// backward_tiled for 2x2 windows: one invocation per window writes its 4 elements of dx.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_2x2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let winner = argmax_2x2(i).index;
    let gradient = dy[i];
    let ow = i % params.out_width;
    let oh = (i / params.out_width) % params.out_height;
    let plane = i / (params.out_width * params.out_height);
    let top_left = plane * params.in_height * params.in_width + 2u * oh * params.in_width + 2u * ow;
    let at = vec4(top_left) + window_2x2();
    dx[at.x] = select(0.0, gradient, at.x == winner);
    dx[at.y] = select(0.0, gradient, at.y == winner);
    dx[at.z] = select(0.0, gradient, at.z == winner);
    dx[at.w] = select(0.0, gradient, at.w == winner);
}
