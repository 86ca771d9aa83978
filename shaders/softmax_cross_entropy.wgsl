// Softmax cross-entropy over integer labels with its gradient, and the count of correct
// predictions. Each entry point runs as ONE workgroup: invocation t handles rows t,
// t + WORKGROUP_SIZE, ... in order, then a fixed tree in workgroup memory adds the partial
// sums, so a rerun gives the same bits.

struct Params {
    rows: u32,
    classes: u32,
    _padding0: u32,
    _padding1: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> correct: array<f32>;

var<workgroup> partial_loss: array<f32, WORKGROUP_SIZE>;
var<workgroup> partial_count: array<u32, WORKGROUP_SIZE>;

fn row_max(base: u32) -> f32 {
    var max_value = logits[base];
    for (var j = 1u; j < params.classes; j++) {
        max_value = max(max_value, logits[base + j]);
    }
    return max_value;
}

// A quiet NaN, built at run time because WGSL rejects 0.0 / 0.0 in constant expressions.
fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Writes the row's gradient and returns its loss -log softmax(logits)[label].
fn row_loss_and_gradient(row: u32) -> f32 {
    let base = row * params.classes;
    let label = labels[row];
    let batch_size = f32(params.rows);
    // The host checks labels against the class count given when they were written, which may
    // differ from the logits' width. A label out of range poisons its row and the loss with
    // NaN instead of reading another row's logits.
    if label >= params.classes {
        for (var j = 0u; j < params.classes; j++) {
            dlogits[base + j] = nan();
        }
        return nan();
    }
    // Shifting by the row max keeps every exponent at most 0, so exp cannot overflow.
    let max_value = row_max(base);
    var sum = 0.0;
    // The probability mass off the label, summed on its own, so that p_label - 1 keeps its
    // digits when p_label rounds to 1.
    var off_label = 0.0;
    for (var j = 0u; j < params.classes; j++) {
        let e = exp(logits[base + j] - max_value);
        sum += e;
        if j != label {
            off_label += e;
        }
    }
    for (var j = 0u; j < params.classes; j++) {
        var delta: f32;
        if j == label {
            delta = -off_label / sum;
        } else {
            delta = exp(logits[base + j] - max_value) / sum;
        }
        dlogits[base + j] = delta / batch_size;
    }
    return log(sum) - (logits[base + label] - max_value);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_cross_entropy(@builtin(local_invocation_index) lid: u32) {
    var total = 0.0;
    for (var row = lid; row < params.rows; row += WORKGROUP_SIZE) {
        total += row_loss_and_gradient(row);
    }
    partial_loss[lid] = total;
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if lid < stride {
            partial_loss[lid] += partial_loss[lid + stride];
        }
    }
    if lid == 0u {
        loss[0] = partial_loss[0] / f32(params.rows);
    }
}

// Whether the row's first largest logit is at its label.
fn is_correct(row: u32) -> bool {
    let base = row * params.classes;
    var best = 0u;
    for (var j = 1u; j < params.classes; j++) {
        if logits[base + j] > logits[base + best] {
            best = j;
        }
    }
    return best == labels[row];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn count_correct(@builtin(local_invocation_index) lid: u32) {
    var count = 0u;
    for (var row = lid; row < params.rows; row += WORKGROUP_SIZE) {
        count += select(0u, 1u, is_correct(row));
    }
    partial_count[lid] = count;
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if lid < stride {
            partial_count[lid] += partial_count[lid + stride];
        }
    }
    if lid == 0u {
        correct[0] = f32(partial_count[0]);
    }
}
