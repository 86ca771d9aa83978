use bytemuck::{Pod, Zeroable};

use crate::cpu::conv2d::{check_backward_input, check_backward_weight, check_forward};
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader, WORKGROUP_SIZE};
use crate::gpu::launch::{Binding, to_u32};
use crate::gpu::ops::sum_chunks::{LOOP_BUDGET, sum_chunks};
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::{Conv2dParams, Conv2dShape};

const FORWARD: Kernel = Kernel::new(Shader::Conv2d, "forward");
const FORWARD_BIAS: Kernel = Kernel::new(Shader::Conv2d, "forward_bias");
const FORWARD_ROW: Kernel = Kernel::new(Shader::Conv2d, "forward_row");
const FORWARD_ROW_BIAS: Kernel = Kernel::new(Shader::Conv2d, "forward_row_bias");
const FORWARD_GEMM: Kernel = Kernel::new(Shader::Conv2dSubgroup, "forward_gemm");
const FORWARD_GEMM_BIAS: Kernel = Kernel::new(Shader::Conv2dSubgroup, "forward_gemm_bias");
const FORWARD_SLIDE: Kernel = Kernel::new(Shader::Conv2dSubgroup, "forward_slide");
const FORWARD_SLIDE_BIAS: Kernel = Kernel::new(Shader::Conv2dSubgroup, "forward_slide_bias");
const BACKWARD_INPUT: Kernel = Kernel::new(Shader::Conv2d, "backward_input");
const BACKWARD_INPUT_ROW: Kernel = Kernel::new(Shader::Conv2d, "backward_input_row");
const FLIP_WEIGHT: Kernel = Kernel::new(Shader::Conv2d, "flip_weight");
const BACKWARD_WEIGHT: Kernel = Kernel::new(Shader::Conv2d, "backward_weight");
const BACKWARD_WEIGHT_ROW: Kernel = Kernel::new(Shader::Conv2d, "backward_weight_row");
const BACKWARD_WEIGHT_GEMM: Kernel = Kernel::new(Shader::Conv2dSubgroup, "backward_weight_gemm");

// Each tile size mirrors the constant of the same name in `shaders/conv2d.wgsl`, and the
// unit test `tile_sizes_match_shader` checks that they agree.

/// Channels per invocation in every kernel but `backward_weight`, and pixels per invocation
/// along a row in `forward` and `backward_input`.
const TILE: usize = 4;
/// Pixels per invocation along a row in `forward_row` and `backward_input_row`.
const ROW: usize = 16;
/// Output channels per invocation in `backward_weight`.
const WEIGHT_TILE: usize = 8;
/// Kernel columns per invocation in `backward_weight_row`.
const WEIGHT_ROW: usize = 8;
/// Output channels per invocation in `shaders/conv2d_subgroup.wgsl`.
const GEMM_ROWS: usize = 8;
/// Invocations that share weight rows through subgroup shuffles in
/// `shaders/conv2d_subgroup.wgsl`; each covers 8 pixels.
const CLUSTER: usize = 8;
/// Output channels and pixels per invocation in `forward_slide`.
const SLIDE_CHANNELS: usize = 16;
const SLIDE_PIXELS: usize = 8;
/// Output channels and kernel columns per invocation in `backward_weight_gemm`.
const WEIGHT_CHANNELS: usize = 16;
const WEIGHT_COLUMNS: usize = 8;
/// Clusters of 8 invocations that `backward_weight_gemm` aims for, splitting the sum into
/// more chunks where needed, and the fewest rows (b, oh) that such a split leaves in a chunk.
const MIN_CLUSTERS: usize = 64;
const MIN_CHUNK_ROWS: usize = 8;

/// The kernel families of the convolution and its gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv2dVariant {
    /// The kernels of `shaders/conv2d.wgsl`: any shape, on any adapter.
    Direct,
    /// The implicit matrix products of `shaders/conv2d_subgroup.wgsl`, where they apply;
    /// every other case runs the direct kernels. All need subgroups of at least 8
    /// invocations. The forward pass and the input gradient (as a forward pass over flipped
    /// weights) need `in_channels · kh · kw` a multiple of 4 and kernels of at most 32 rows
    /// and columns (bit masks of the taps inside the input). The weight gradient needs
    /// stride and dilation 1 along w.
    Gemm,
    /// Like `Gemm`, but the forward pass and the input gradient run `forward_slide` of
    /// `shaders/conv2d_subgroup.wgsl`, which needs stride and dilation 1 along w and at
    /// most `LOOP_BUDGET` iterations of its loops over (c, kh, kw).
    Slide,
}

impl Conv2dVariant {
    /// Returns the variant that runs `shape`: the one forced by
    /// [`GpuBackend::force_conv2d_variant`] where it applies, else the sliding kernel where
    /// it applies to at least 8 output channels, else the implicit product where it
    /// applies, else the direct kernels. On lavapipe (Mesa 22.3, a shared and busy 2-core
    /// machine, alternating runs), the sliding kernel ran the LeNet conv2 forward pass (16
    /// to 32 channels, 5x5, 14x14, batch 64) in 32 to 36 ms. The implicit product took 58
    /// to 82 ms, and `forward_row` took about 1.3 times as long as the implicit product.
    /// The sliding kernel ran the LeNet conv1 forward pass in 12 ms against 23 to 32 ms for
    /// `forward_row`.
    fn choose(gpu: &GpuBackend, shape: &Conv2dShape, params: &Conv2dParams) -> Self {
        let clusters = has_clusters(gpu);
        let gemm_applies = clusters
            && (shape.in_channels * shape.kernel_height * shape.kernel_width).is_multiple_of(4)
            && shape.kernel_height <= 32
            && shape.kernel_width <= 32;
        let slide_applies = clusters
            && slides_along_rows(params)
            && shape.in_channels * shape.kernel_height * (shape.kernel_width + 1) <= LOOP_BUDGET;
        // The sliding kernel computes 16 output channels per invocation, so it wastes most of
        // its work on a few channels, as in the input gradient of a 1-channel input.
        let slide_fits = shape.out_channels >= SLIDE_CHANNELS / 2;
        match gpu.forced_conv2d_variant() {
            Some(Conv2dVariant::Direct) => Conv2dVariant::Direct,
            Some(Conv2dVariant::Gemm) if gemm_applies => Conv2dVariant::Gemm,
            Some(Conv2dVariant::Slide) if slide_applies => Conv2dVariant::Slide,
            _ if slide_applies && slide_fits => Conv2dVariant::Slide,
            _ if gemm_applies => Conv2dVariant::Gemm,
            _ => Conv2dVariant::Direct,
        }
    }
}

/// Checks whether the adapter runs `shaders/conv2d_subgroup.wgsl`: subgroup operations, and
/// subgroups of at least one cluster.
fn has_clusters(gpu: &GpuBackend) -> bool {
    let ctx = gpu.context();
    ctx.features.contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size as usize >= CLUSTER
}

/// Mirrors `Params` in `shaders/conv2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
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

impl Params {
    fn new(
        op: &'static str,
        shape: &Conv2dShape,
        conv: &Conv2dParams,
        tiles: usize,
    ) -> Result<Self> {
        Ok(Self {
            batch_size: to_u32(op, shape.batch_size)?,
            in_channels: to_u32(op, shape.in_channels)?,
            in_height: to_u32(op, shape.in_height)?,
            in_width: to_u32(op, shape.in_width)?,
            out_channels: to_u32(op, shape.out_channels)?,
            kernel_height: to_u32(op, shape.kernel_height)?,
            kernel_width: to_u32(op, shape.kernel_width)?,
            out_height: to_u32(op, shape.out_height)?,
            out_width: to_u32(op, shape.out_width)?,
            stride_h: to_u32(op, conv.stride[0])?,
            stride_w: to_u32(op, conv.stride[1])?,
            padding_h: to_u32(op, conv.padding[0])?,
            padding_w: to_u32(op, conv.padding[1])?,
            dilation_h: to_u32(op, conv.dilation[0])?,
            dilation_w: to_u32(op, conv.dilation[1])?,
            tiles: to_u32(op, tiles)?,
            rows_per_chunk: 0,
            channel_tiles: 1,
            _padding0: 0,
            _padding1: 0,
        })
    }
}

/// Fails unless every index and position the kernels compute fits in `u32`: the tensor
/// lengths, and along each axis a bound on `out · stride + kernel · dilation` plus the
/// overrun of a tile past the end of a row.
fn check_indices(op: &'static str, shape: &Conv2dShape, conv: &Conv2dParams) -> Result<()> {
    let [x, weight, y] =
        [shape.input(), shape.weight(), shape.output()].map(|dims| dims.iter().product::<usize>());
    for len in [x, weight, y] {
        to_u32(op, len)?;
    }
    let extents = [
        (shape.in_height, shape.out_height, shape.kernel_height),
        (shape.in_width, shape.out_width, shape.kernel_width),
    ];
    for (axis, (input, output, kernel)) in extents.into_iter().enumerate() {
        let bound = input
            + 2 * conv.padding[axis]
            + conv.stride[axis] * (output + ROW)
            + conv.dilation[axis] * (kernel + WEIGHT_ROW);
        to_u32(op, bound)?;
    }
    Ok(())
}

/// Checks whether the `*_row` kernels apply. With stride and dilation 1 along w,
/// neighbouring pixels read neighbouring inputs, so a window can slide along the row.
fn slides_along_rows(params: &Conv2dParams) -> bool {
    params.stride[1] == 1 && params.dilation[1] == 1
}

/// Records a dispatch of `tiles` invocations along the flattened x/y dimensions, times
/// `channel_tiles` workgroups along z, which the shader reads as its channel tile.
fn dispatch_channel_tiles(
    gpu: &GpuBackend,
    kernel: Kernel,
    params: &Params,
    bindings: &[Binding<'_>],
    tiles: usize,
    channel_tiles: usize,
) -> Result<()> {
    let max_per_dimension = gpu.context().limits.max_compute_workgroups_per_dimension;
    let z = u32::try_from(channel_tiles)
        .ok()
        .filter(|&z| z <= max_per_dimension)
        .ok_or_else(|| {
            Error::Gpu(format!(
                "kernel `{}` needs {channel_tiles} channel tiles, more than the \
                 {max_per_dimension} workgroups per dimension that the adapter allows; use \
                 fewer channels",
                kernel.entry_point
            ))
        })?;
    let [x, y, _] = gpu.workgroups_1d(kernel, tiles as u64)?;
    gpu.dispatch(kernel, params, bindings, [x, y, z])
}

pub(crate) fn forward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    params: &Conv2dParams,
    y: &mut GpuTensor,
) -> Result<()> {
    let shape = check_forward(
        &x.shape,
        &weight.shape,
        bias.map(|b| b.shape.as_slice()),
        params,
        &y.shape,
    )?;
    check_indices("conv2d", &shape, params)?;
    match Conv2dVariant::choose(gpu, &shape, params) {
        Conv2dVariant::Gemm => return forward_gemm(gpu, x, weight, bias, params, &shape, y),
        Conv2dVariant::Slide => return forward_slide(gpu, x, weight, bias, params, &shape, y),
        Conv2dVariant::Direct => {}
    }

    let (kernel, tiles) = if slides_along_rows(params) {
        let kernel = if bias.is_some() {
            FORWARD_ROW_BIAS
        } else {
            FORWARD_ROW
        };
        (kernel, shape.out_width.div_ceil(ROW))
    } else {
        let kernel = if bias.is_some() {
            FORWARD_BIAS
        } else {
            FORWARD
        };
        (kernel, shape.out_width.div_ceil(TILE))
    };
    let tiles = shape.batch_size * shape.out_height * tiles;
    let channel_tiles = shape.out_channels.div_ceil(TILE);
    let uniform = Params::new("conv2d", &shape, params, tiles)?;
    match bias {
        Some(bias) => dispatch_channel_tiles(
            gpu,
            kernel,
            &uniform,
            &[x.at(1), weight.at(2), bias.at(3), y.at(5)],
            tiles,
            channel_tiles,
        ),
        None => dispatch_channel_tiles(
            gpu,
            kernel,
            &uniform,
            &[x.at(1), weight.at(2), y.at(5)],
            tiles,
            channel_tiles,
        ),
    }
}

/// Records the forward pass with `forward_slide`: 16 output channels at 8 pixels of a row
/// per invocation.
fn forward_slide(
    gpu: &GpuBackend,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    params: &Conv2dParams,
    shape: &Conv2dShape,
    y: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "conv2d";
    let tiles = shape.batch_size * shape.out_height * shape.out_width.div_ceil(SLIDE_PIXELS);
    let workgroups_x = tiles.div_ceil(WORKGROUP_SIZE as usize);
    let workgroups_y = shape.out_channels.div_ceil(SLIDE_CHANNELS);
    let max_per_dimension = gpu.context().limits.max_compute_workgroups_per_dimension as usize;
    if workgroups_x > max_per_dimension || workgroups_y > max_per_dimension {
        return Err(Error::shape(
            OP,
            format!(
                "the sliding kernel needs {workgroups_x}x{workgroups_y} workgroups, more than \
                 the adapter's {max_per_dimension} per dimension; use a smaller batch"
            ),
        ));
    }
    to_u32(OP, workgroups_x * WORKGROUP_SIZE as usize)?;

    let uniform = Params::new(OP, shape, params, tiles)?;
    let workgroups = [workgroups_x as u32, workgroups_y as u32, 1];
    match bias {
        Some(bias) => gpu.dispatch(
            FORWARD_SLIDE_BIAS,
            &uniform,
            &[x.at(1), weight.at(2), bias.at(3), y.at(5)],
            workgroups,
        ),
        None => gpu.dispatch(
            FORWARD_SLIDE,
            &uniform,
            &[x.at(1), weight.at(2), y.at(5)],
            workgroups,
        ),
    }
}

/// Records the forward pass as an implicit matrix product of weight `[out_channels, K]`
/// and the gathered inputs `[K, n · out_h · out_w]`.
fn forward_gemm(
    gpu: &GpuBackend,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    params: &Conv2dParams,
    shape: &Conv2dShape,
    y: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "conv2d";
    let columns = shape.batch_size * shape.out_height * shape.out_width;
    // Each cluster of invocations covers 16 groups of 4 pixels.
    let lanes = columns.div_ceil(4).div_ceil(2 * CLUSTER) * CLUSTER;
    let workgroups_x = lanes.div_ceil(WORKGROUP_SIZE as usize);
    let workgroups_y = shape.out_channels.div_ceil(GEMM_ROWS);
    let max_per_dimension = gpu.context().limits.max_compute_workgroups_per_dimension as usize;
    if workgroups_x > max_per_dimension || workgroups_y > max_per_dimension {
        return Err(Error::shape(
            OP,
            format!(
                "the implicit product needs {workgroups_x}x{workgroups_y} workgroups, more \
                 than the adapter's {max_per_dimension} per dimension; use a smaller batch"
            ),
        ));
    }
    to_u32(OP, lanes * 8)?;
    let uniform = Params::new(OP, shape, params, lanes)?;
    let workgroups = [workgroups_x as u32, workgroups_y as u32, 1];
    match bias {
        Some(bias) => gpu.dispatch(
            FORWARD_GEMM_BIAS,
            &uniform,
            &[x.at(1), weight.at(2), bias.at(3), y.at(5)],
            workgroups,
        ),
        None => gpu.dispatch(
            FORWARD_GEMM,
            &uniform,
            &[x.at(1), weight.at(2), y.at(5)],
            workgroups,
        ),
    }
}

pub(crate) fn backward_input(
    gpu: &GpuBackend,
    dy: &GpuTensor,
    weight: &GpuTensor,
    params: &Conv2dParams,
    dx: &mut GpuTensor,
) -> Result<()> {
    let shape = check_backward_input(&dy.shape, &weight.shape, params, &dx.shape)?;
    check_indices("conv2d backward input", &shape, params)?;
    if let Some(flipped) = transposed_forward(&shape, params) {
        let variant = Conv2dVariant::choose(gpu, &flipped.0, &flipped.1);
        if variant != Conv2dVariant::Direct {
            return backward_input_flipped(gpu, dy, weight, &shape, &flipped, variant, dx);
        }
    }

    let (kernel, row_tiles) = if slides_along_rows(params) {
        (BACKWARD_INPUT_ROW, shape.in_width.div_ceil(ROW))
    } else {
        (BACKWARD_INPUT, shape.in_width.div_ceil(TILE))
    };
    let tiles = shape.batch_size * shape.in_height * row_tiles;
    let channel_tiles = shape.in_channels.div_ceil(TILE);
    let uniform = Params::new("conv2d backward input", &shape, params, tiles)?;
    dispatch_channel_tiles(
        gpu,
        kernel,
        &uniform,
        &[weight.at(2), dy.at(4), dx.at(6)],
        tiles,
        channel_tiles,
    )
}

/// Returns the forward convolution that computes the input gradient of `shape`, if any.
/// With stride and dilation 1 and padding below the kernel size, dx is the convolution of
/// dy with the flipped, transposed weights and padding `kernel − 1 − padding`.
fn transposed_forward(
    shape: &Conv2dShape,
    params: &Conv2dParams,
) -> Option<(Conv2dShape, Conv2dParams)> {
    let kernel = [shape.kernel_height, shape.kernel_width];
    let applies = params.stride == [1, 1]
        && params.dilation == [1, 1]
        && (0..2).all(|axis| params.padding[axis] < kernel[axis]);
    applies.then(|| {
        let flipped_shape = Conv2dShape {
            batch_size: shape.batch_size,
            in_channels: shape.out_channels,
            in_height: shape.out_height,
            in_width: shape.out_width,
            out_channels: shape.in_channels,
            kernel_height: shape.kernel_height,
            kernel_width: shape.kernel_width,
            out_height: shape.in_height,
            out_width: shape.in_width,
        };
        let flipped_params = Conv2dParams {
            padding: [0, 1].map(|axis| kernel[axis] - 1 - params.padding[axis]),
            ..*params
        };
        (flipped_shape, flipped_params)
    })
}

/// Records the input gradient as the forward pass of `variant` over dy with the flipped,
/// transposed weights, which a small kernel writes into a scratch tensor first. On lavapipe
/// (the shared 2-core machine, loaded) it ran the LeNet conv2 input gradient at batch 64 in
/// 36 and 47 ms with the implicit product against 52 and 49 ms for `backward_input_row`,
/// in alternating runs. Later, with both kernels faster, it ran in 30 to 32 ms with the
/// sliding kernel against 53 ms with the implicit product.
fn backward_input_flipped(
    gpu: &GpuBackend,
    dy: &GpuTensor,
    weight: &GpuTensor,
    shape: &Conv2dShape,
    (flipped_shape, flipped_params): &(Conv2dShape, Conv2dParams),
    variant: Conv2dVariant,
    dx: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "conv2d backward input";
    check_indices(OP, flipped_shape, flipped_params)?;
    let flipped = gpu.scratch("conv2d flipped weights", weight.id, weight.len())?;
    let uniform = Params::new(OP, shape, flipped_params, weight.len())?;
    gpu.dispatch_1d(
        FLIP_WEIGHT,
        &uniform,
        &[weight.at(2), flipped.at(8)],
        weight.len() as u64,
    )?;
    if variant == Conv2dVariant::Slide {
        forward_slide(gpu, dy, &flipped, None, flipped_params, flipped_shape, dx)
    } else {
        forward_gemm(gpu, dy, &flipped, None, flipped_params, flipped_shape, dx)
    }
}

pub(crate) fn backward_weight(
    gpu: &GpuBackend,
    x: &GpuTensor,
    dy: &GpuTensor,
    params: &Conv2dParams,
    dweight: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "conv2d backward weight";
    let shape = check_backward_weight(&x.shape, &dy.shape, params, &dweight.shape)?;
    check_indices(OP, &shape, params)?;
    to_u32(OP, shape.batch_size * shape.out_height)?;
    if slides_along_rows(params)
        && has_clusters(gpu)
        && gpu.forced_conv2d_variant() != Some(Conv2dVariant::Direct)
    {
        return backward_weight_gemm(gpu, x, dy, params, &shape, dweight);
    }

    let (kernel, tiles, channel_tiles) = if slides_along_rows(params) {
        let tiles = shape.in_channels
            * shape.kernel_height.div_ceil(2)
            * shape.kernel_width.div_ceil(WEIGHT_ROW);
        (
            BACKWARD_WEIGHT_ROW,
            tiles,
            shape.out_channels.div_ceil(TILE),
        )
    } else {
        let tiles = shape.in_channels * shape.kernel_height * shape.kernel_width;
        (
            BACKWARD_WEIGHT,
            tiles,
            shape.out_channels.div_ceil(WEIGHT_TILE),
        )
    };
    // Chunks of rows (b, oh) whose loops, one iteration per row and one per output
    // column, stay within the loop budget.
    let rows = shape.batch_size * shape.out_height;
    let rows_per_chunk = (LOOP_BUDGET / (shape.out_width + 1)).max(1);
    let chunks = rows.div_ceil(rows_per_chunk);
    let uniform = Params {
        rows_per_chunk: to_u32(OP, rows_per_chunk)?,
        channel_tiles: to_u32(OP, channel_tiles)?,
        ..Params::new(OP, &shape, params, tiles)?
    };
    if chunks == 1 {
        return dispatch_channel_tiles(
            gpu,
            kernel,
            &uniform,
            &[x.at(1), dy.at(4), dweight.at(7)],
            tiles,
            channel_tiles,
        );
    }
    to_u32(OP, chunks * dweight.len())?;
    let partial = gpu.scratch(
        "conv2d backward weight partial sums",
        dweight.id,
        chunks * dweight.len(),
    )?;
    dispatch_channel_tiles(
        gpu,
        kernel,
        &uniform,
        &[x.at(1), dy.at(4), partial.at(7)],
        tiles,
        chunks * channel_tiles,
    )?;
    sum_chunks(gpu, OP, &partial, chunks, dweight)
}

/// Records the weight gradient as an implicit product of dy and the gathered inputs, for
/// stride and dilation 1 along w on adapters with subgroup clusters. On lavapipe (Mesa
/// 22.3, the shared 2-core machine, loaded, alternating runs) it ran the LeNet conv2 weight
/// gradient at batch 64 in a median of 61 ms against 113 ms for `backward_weight_row`. It
/// ran the CIFAR conv2 one (64 to 128 channels, 3x3, 16x16) in 420 ms against 1368 ms.
fn backward_weight_gemm(
    gpu: &GpuBackend,
    x: &GpuTensor,
    dy: &GpuTensor,
    params: &Conv2dParams,
    shape: &Conv2dShape,
    dweight: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "conv2d backward weight";
    let row_tiles =
        shape.in_channels * shape.kernel_height * shape.kernel_width.div_ceil(WEIGHT_COLUMNS);

    // Per row (b, oh): one iteration, then per 4 pixels one iteration. Beyond the loop
    // budget, the rows are split further until the dispatch has `MIN_CLUSTERS` clusters,
    // because a layer with few input and output channels has too few row tiles to keep
    // more than one workgroup busy. The chunks split the rows evenly, because every
    // cluster loops over a whole chunk.
    let row_iterations = 1 + shape.out_width.div_ceil(4);
    let rows = shape.batch_size * shape.out_height;
    let clusters_per_chunk =
        row_tiles.div_ceil(CLUSTER) * shape.out_channels.div_ceil(WEIGHT_CHANNELS);
    let chunks = rows
        .div_ceil((LOOP_BUDGET / row_iterations).max(1))
        .max(MIN_CLUSTERS.div_ceil(clusters_per_chunk))
        .min(rows.div_ceil(MIN_CHUNK_ROWS));
    let rows_per_chunk = rows.div_ceil(chunks);

    let lanes = row_tiles.div_ceil(CLUSTER) * CLUSTER * chunks;
    let workgroups_x = lanes.div_ceil(WORKGROUP_SIZE as usize);
    let workgroups_y = shape.out_channels.div_ceil(WEIGHT_CHANNELS);
    let max_per_dimension = gpu.context().limits.max_compute_workgroups_per_dimension as usize;
    if workgroups_x > max_per_dimension || workgroups_y > max_per_dimension {
        return Err(Error::shape(
            OP,
            format!(
                "the implicit product needs {workgroups_x}x{workgroups_y} workgroups, more \
                 than the adapter's {max_per_dimension} per dimension; use fewer channels or \
                 a smaller batch"
            ),
        ));
    }
    to_u32(OP, workgroups_x * WORKGROUP_SIZE as usize)?;

    let uniform = Params {
        rows_per_chunk: to_u32(OP, rows_per_chunk)?,
        ..Params::new(OP, shape, params, lanes)?
    };
    let workgroups = [workgroups_x as u32, workgroups_y as u32, 1];
    if chunks == 1 {
        return gpu.dispatch(
            BACKWARD_WEIGHT_GEMM,
            &uniform,
            &[x.at(1), dy.at(4), dweight.at(7)],
            workgroups,
        );
    }
    to_u32(OP, chunks * dweight.len())?;
    let partial = gpu.scratch(
        "conv2d backward weight partial sums",
        dweight.id,
        chunks * dweight.len(),
    )?;
    gpu.dispatch(
        BACKWARD_WEIGHT_GEMM,
        &uniform,
        &[x.at(1), dy.at(4), partial.at(7)],
        workgroups,
    )?;
    sum_chunks(gpu, OP, &partial, chunks, dweight)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the value of `const NAME: u32 = ...u;` from the conv2d shader.
    fn shader_constant(name: &str) -> usize {
        let source = Shader::Conv2d.source();
        let prefix = format!("const {name}: u32 = ");
        let line = source
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("conv2d.wgsl declares no `{prefix}...`"));
        line.trim_end_matches(';')
            .trim_end_matches('u')
            .parse()
            .unwrap_or_else(|error| panic!("{name} in conv2d.wgsl: {error}"))
    }

    #[test]
    fn tile_sizes_match_shader() {
        assert_eq!(TILE, shader_constant("TILE"));
        assert_eq!(ROW, shader_constant("ROW"));
        assert_eq!(WEIGHT_TILE, shader_constant("WEIGHT_TILE"));
        assert_eq!(WEIGHT_ROW, shader_constant("WEIGHT_ROW"));
        let gemm = Shader::Conv2dSubgroup.source();
        assert!(gemm.contains(&format!("const GEMM_ROWS: u32 = {GEMM_ROWS}u;")));
        assert!(gemm.contains(&format!("const CLUSTER: u32 = {CLUSTER}u;")));
        assert!(gemm.contains(&format!("const WEIGHT_COLUMNS: u32 = {WEIGHT_COLUMNS}u;")));
        assert!(gemm.contains(&format!("const WEIGHT_CHANNELS: u32 = {WEIGHT_CHANNELS}u;")));
        assert!(gemm.contains(&format!("const SLIDE_CHANNELS: u32 = {SLIDE_CHANNELS}u;")));
        assert!(gemm.contains(&format!("const SLIDE_PIXELS: u32 = {SLIDE_PIXELS}u;")));
    }

    #[test]
    fn params_match_shader_struct_size() {
        // 20 u32 fields: a multiple of 16 bytes, as uniform buffers require.
        assert_eq!(std::mem::size_of::<Params>(), 80);
    }
}
