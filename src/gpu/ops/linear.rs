//! Launchers of `shaders/linear.wgsl`: one matrix product kernel, with or without a bias,
//! serves the linear layer's forward pass and both gradients.

use bytemuck::{Pod, Zeroable};

use crate::cpu::linear::check_forward;
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader, WORKGROUP_SIZE};
use crate::gpu::launch::to_u32;
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::expect_shape;

const MATMUL: Kernel = Kernel::new(Shader::Linear, "matmul");
const MATMUL_BIAS: Kernel = Kernel::new(Shader::Linear, "matmul_bias");

/// Rows and columns of the output block that one invocation computes; `TILE_M` and `TILE_N`
/// in `shaders/linear.wgsl`.
const TILE_M: usize = 8;
const TILE_N: usize = 4;

/// Mirrors `Params` in `shaders/linear.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row_stride: u32,
    a_col_stride: u32,
    b_row_stride: u32,
    b_col_stride: u32,
    _padding: u32,
}

/// An operand of a matrix product: a row-major 2-D tensor, used as is or transposed.
struct Operand<'a> {
    name: &'static str,
    tensor: &'a GpuTensor,
    transpose: bool,
}

impl Operand<'_> {
    /// Rows and columns of the operand after the optional transpose.
    fn dims(&self, op: &'static str) -> Result<[usize; 2]> {
        let &[rows, cols] = self.tensor.shape.as_slice() else {
            return Err(Error::shape(
                op,
                format!("{} must be 2-D, got {:?}", self.name, self.tensor.shape),
            ));
        };
        Ok(if self.transpose {
            [cols, rows]
        } else {
            [rows, cols]
        })
    }

    /// Strides of `[row, column]` of the operand after the optional transpose.
    fn strides(&self) -> [usize; 2] {
        let row_len = self.tensor.shape[1];
        if self.transpose {
            [1, row_len]
        } else {
            [row_len, 1]
        }
    }
}

/// Records `c = op(a) op(b) (+ bias)`, where `op` transposes an operand when its flag is set,
/// and the bias of length `n` is added to every row of `c`.
fn product(
    gpu: &GpuBackend,
    op: &'static str,
    a: Operand<'_>,
    b: Operand<'_>,
    bias: Option<&GpuTensor>,
    c: &mut GpuTensor,
) -> Result<()> {
    let [m, k] = a.dims(op)?;
    let [b_rows, n] = b.dims(op)?;
    if b_rows != k {
        return Err(Error::shape(
            op,
            format!(
                "{} {:?} and {} {:?} do not chain: the product needs {m}x{k} times {k}x{n}, \
                 got {m}x{k} times {b_rows}x{n}",
                a.name, a.tensor.shape, b.name, b.tensor.shape
            ),
        ));
    }
    expect_shape(op, "output", &c.shape, &[m, n])?;
    if let Some(bias) = bias {
        expect_shape(op, "bias", &bias.shape, &[n])?;
    }
    for tensor in [a.tensor, b.tensor, &*c] {
        to_u32(op, tensor.len())?;
    }

    let [a_row_stride, a_col_stride] = a.strides();
    let [b_row_stride, b_col_stride] = b.strides();
    let params = Params {
        m: to_u32(op, m)?,
        n: to_u32(op, n)?,
        k: to_u32(op, k)?,
        a_row_stride: to_u32(op, a_row_stride)?,
        a_col_stride: to_u32(op, a_col_stride)?,
        b_row_stride: to_u32(op, b_row_stride)?,
        b_col_stride: to_u32(op, b_col_stride)?,
        _padding: 0,
    };
    let workgroups = workgroups(gpu, op, m, n)?;
    match bias {
        Some(bias) => gpu.dispatch(
            MATMUL_BIAS,
            &params,
            &[a.tensor.at(1), b.tensor.at(2), bias.at(3), c.at(4)],
            workgroups,
        ),
        None => gpu.dispatch(
            MATMUL,
            &params,
            &[a.tensor.at(1), b.tensor.at(2), c.at(4)],
            workgroups,
        ),
    }
}

/// Workgroups for an `m x n` output: x runs along block columns, y along block rows.
fn workgroups(gpu: &GpuBackend, op: &'static str, m: usize, n: usize) -> Result<[u32; 3]> {
    let lanes = WORKGROUP_SIZE as usize;
    let x = n.div_ceil(TILE_N).div_ceil(lanes);
    let y = m.div_ceil(TILE_M);
    let max_per_dimension = gpu.context().limits.max_compute_workgroups_per_dimension as usize;
    if x > max_per_dimension || y > max_per_dimension {
        return Err(Error::shape(
            op,
            format!(
                "a {m}x{n} product needs {x}x{y} workgroups, more than the adapter's \
                 {max_per_dimension} per dimension; use a smaller batch size"
            ),
        ));
    }
    Ok([x as u32, y as u32, 1])
}

/// Records `c = op(a) op(b)`, where `op` transposes an operand when its flag is set.
///
/// # Shapes
/// `op(a)`: `[m, k]`; `op(b)`: `[k, n]`; `c`: `[m, n]`.
pub(crate) fn matmul(
    gpu: &GpuBackend,
    a: &GpuTensor,
    b: &GpuTensor,
    transpose_a: bool,
    transpose_b: bool,
    c: &mut GpuTensor,
) -> Result<()> {
    product(
        gpu,
        "matmul",
        Operand {
            name: "a",
            tensor: a,
            transpose: transpose_a,
        },
        Operand {
            name: "b",
            tensor: b,
            transpose: transpose_b,
        },
        None,
        c,
    )
}

impl GpuBackend {
    /// Records the matrix product `c = op(a) op(b)`, where `op` transposes an operand when
    /// its flag is set. The linear layer runs on the same kernel.
    ///
    /// # Shapes
    /// `op(a)`: `[m, k]`; `op(b)`: `[k, n]`; `c`: `[m, n]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when an operand is not 2-D or the shapes do not chain.
    pub fn matmul(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        transpose_a: bool,
        transpose_b: bool,
        c: &mut GpuTensor,
    ) -> Result<()> {
        matmul(self, a, b, transpose_a, transpose_b, c)
    }
}

pub(crate) fn forward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    y: &mut GpuTensor,
) -> Result<()> {
    const OP: &str = "linear";
    let out_shape = check_forward(
        OP,
        &x.shape,
        &weight.shape,
        bias.map(|b| b.shape.as_slice()),
    )?;
    expect_shape(OP, "y", &y.shape, &out_shape)?;
    product(
        gpu,
        OP,
        Operand {
            name: "x",
            tensor: x,
            transpose: false,
        },
        Operand {
            name: "weight",
            tensor: weight,
            transpose: true,
        },
        bias,
        y,
    )
}

pub(crate) fn backward_input(
    gpu: &GpuBackend,
    dy: &GpuTensor,
    weight: &GpuTensor,
    dx: &mut GpuTensor,
) -> Result<()> {
    product(
        gpu,
        "linear backward_input",
        Operand {
            name: "dy",
            tensor: dy,
            transpose: false,
        },
        Operand {
            name: "weight",
            tensor: weight,
            transpose: false,
        },
        None,
        dx,
    )
}

pub(crate) fn backward_weight(
    gpu: &GpuBackend,
    x: &GpuTensor,
    dy: &GpuTensor,
    dweight: &mut GpuTensor,
) -> Result<()> {
    product(
        gpu,
        "linear backward_weight",
        Operand {
            name: "dy",
            tensor: dy,
            transpose: true,
        },
        Operand {
            name: "x",
            tensor: x,
            transpose: false,
        },
        None,
        dweight,
    )
}

#[cfg(test)]
mod tests {
    use super::{TILE_M, TILE_N};
    use crate::gpu::kernels::Shader;

    #[test]
    fn tile_sizes_match_shader() {
        let source = Shader::Linear.source();
        assert!(source.contains(&format!("const TILE_M: u32 = {TILE_M}u;")));
        assert!(source.contains(&format!("const TILE_N: u32 = {TILE_N}u;")));
    }
}
