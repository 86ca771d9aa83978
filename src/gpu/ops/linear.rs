//! Launchers of `shaders/linear.wgsl` and `shaders/linear_subgroup.wgsl`: matrix products
//! with optional transposes serve the linear layer's forward pass and both gradients.

use bytemuck::{Pod, Zeroable};

use crate::cpu::linear::check_forward;
use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader, WORKGROUP_SIZE};
use crate::gpu::launch::to_u32;
use crate::gpu::ops::sum_chunks::{LOOP_BUDGET, MIN_SPLIT_INVOCATIONS, sum_chunks};
use crate::gpu::{GpuBackend, GpuTensor};
use crate::params::expect_shape;

const MATMUL_STRIDED: Kernel = Kernel::new(Shader::Linear, "matmul");
const ADD_BIAS: Kernel = Kernel::new(Shader::Linear, "add_bias");

/// Rows of the output that one invocation computes; `BLOCK_ROWS` in `shaders/linear.wgsl`.
const BLOCK_ROWS: usize = 8;
/// Columns of the output that one invocation of `matmul` computes; `STRIDED_COLUMNS` in
/// `shaders/linear.wgsl`.
const STRIDED_COLUMNS: usize = 4;
/// Invocations that share 16 vec4 columns in the vec4 kernels; `CLUSTER` in
/// `shaders/linear.wgsl` and `shaders/linear_subgroup.wgsl`.
const CLUSTER: usize = 8;
/// Terms of the sum over k that one invocation adds before a product is split into chunks
/// along k. Each value of k runs at most one iteration of the k loop plus the 8 of a row
/// loop that the compiler may keep, so 4096 stay under the loop budget of Mesa's gallivm
/// (see [`LOOP_BUDGET`]); a multiple of 4 for the vec4 kernels.
const K_CHUNK: usize = 4096;
/// The minimum number of terms of k per chunk when a product is split for more invocations
/// than the loop budget needs. It is a multiple of 4.
const MIN_K_CHUNK: usize = 256;

/// Mirrors `Params` in `shaders/linear.wgsl` and `shaders/linear_subgroup.wgsl`.
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
    k_chunk: u32,
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

/// The families of product kernels, from the most general to the fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// `matmul` of `shaders/linear.wgsl` only: any sizes and transposes, scalar loads. The
    /// tests force it to check that kernel on aligned shapes too.
    #[cfg(test)]
    Strided,
    /// The vec4 kernels of `shaders/linear.wgsl`.
    Vec4,
    /// The vec4 kernels of `shaders/linear_subgroup.wgsl`, where they exist.
    Subgroup,
}

impl Variant {
    /// Returns the fastest variant this adapter runs. The subgroup kernels need subgroup
    /// operations and subgroups of at least `CLUSTER` invocations.
    fn best(gpu: &GpuBackend) -> Self {
        let ctx = gpu.context();
        if ctx.features.contains(wgpu::Features::SUBGROUP)
            && ctx.info.subgroup_min_size as usize >= CLUSTER
        {
            Variant::Subgroup
        } else {
            Variant::Vec4
        }
    }
}

/// Chooses the kernel for an `m x k` by `k x n` product with these transposes, at most as
/// special as `variant`. The vec4 kernels read operands as `vec4` along their rows, so those rows
/// must have a multiple of 4 elements.
fn choose_kernel(variant: Variant, [m, n, k]: [usize; 3], transposes: (bool, bool)) -> Kernel {
    let layout = match transposes {
        (false, false) if k % 4 == 0 && n % 4 == 0 => "matmul_nn",
        (false, true) if k % 4 == 0 => "matmul_nt",
        (true, false) if m % 4 == 0 && n % 4 == 0 => "matmul_tn",
        _ => return MATMUL_STRIDED,
    };
    match (variant, layout) {
        #[cfg(test)]
        (Variant::Strided, _) => MATMUL_STRIDED,
        (Variant::Subgroup, "matmul_nn" | "matmul_nt") => {
            Kernel::new(Shader::LinearSubgroup, layout)
        }
        _ => Kernel::new(Shader::Linear, layout),
    }
}

/// Records `c = op(a) op(b)`, where `op` transposes an operand when its flag is set, with
/// the fastest kernel up to `variant` that fits the shapes.
fn product(
    gpu: &GpuBackend,
    op: &'static str,
    a: Operand<'_>,
    b: Operand<'_>,
    variant: Variant,
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
        k_chunk: 0,
    };
    let kernel = choose_kernel(variant, [m, n, k], (a.transpose, b.transpose));
    let lanes = if kernel == MATMUL_STRIDED {
        n.div_ceil(STRIDED_COLUMNS)
    } else {
        // Each cluster of invocations covers 16 vec4 columns.
        n.div_ceil(4).div_ceil(2 * CLUSTER) * CLUSTER
    };
    // Chunks of k within the loop budget and, for a small output, enough of them for
    // MIN_SPLIT_INVOCATIONS working invocations, with at least MIN_K_CHUNK terms each.
    let working = lanes * m.div_ceil(BLOCK_ROWS);
    let chunks = k
        .div_ceil(K_CHUNK)
        .max(MIN_SPLIT_INVOCATIONS.div_ceil(working).min(k / MIN_K_CHUNK))
        .max(1);
    let k_chunk = k.div_ceil(chunks).next_multiple_of(4);
    let chunks = k.div_ceil(k_chunk.max(1));
    let params = Params {
        k_chunk: to_u32(op, k_chunk.max(4))?,
        ..params
    };
    let [x, y, _] = workgroups(gpu, op, lanes, m)?;
    let record = |out: &GpuTensor| {
        let bindings = if kernel == MATMUL_STRIDED {
            [a.tensor.at(1), b.tensor.at(2), out.at(4)]
        } else {
            [a.tensor.at(5), b.tensor.at(6), out.at(4)]
        };
        gpu.dispatch(kernel, &params, &bindings, [x, y, chunks as u32])
    };
    if chunks == 1 {
        return record(c);
    }
    if chunks > LOOP_BUDGET {
        return Err(Error::shape(
            op,
            format!(
                "k = {k} needs {chunks} chunks of {K_CHUNK}, more than the {LOOP_BUDGET} that \
                 one sum of chunks adds; split the product along k"
            ),
        ));
    }
    to_u32(op, chunks * m * n)?;
    let partial = gpu.scratch("matmul partial sums", c.id, chunks * m * n)?;
    record(&partial)?;
    sum_chunks(gpu, op, &partial, chunks, c)
}

/// Workgroups for `lanes` invocations along the columns of an output of `m` rows: x runs
/// along the columns, y along blocks of `BLOCK_ROWS` rows.
fn workgroups(gpu: &GpuBackend, op: &'static str, lanes: usize, m: usize) -> Result<[u32; 3]> {
    let x = lanes.div_ceil(WORKGROUP_SIZE as usize);
    let y = m.div_ceil(BLOCK_ROWS);
    let max_per_dimension = gpu.context().limits.max_compute_workgroups_per_dimension as usize;
    if x > max_per_dimension || y > max_per_dimension {
        return Err(Error::shape(
            op,
            format!(
                "the product needs {x}x{y} workgroups for {m} rows, more than the adapter's \
                 {max_per_dimension} per dimension; split the product into smaller ones"
            ),
        ));
    }
    Ok([x as u32, y as u32, 1])
}

/// Records `c[i, j] += bias[j]`.
fn add_bias(gpu: &GpuBackend, op: &'static str, bias: &GpuTensor, c: &mut GpuTensor) -> Result<()> {
    let &[m, n] = c.shape.as_slice() else {
        return Err(Error::shape(
            op,
            format!("output must be 2-D, got {:?}", c.shape),
        ));
    };
    expect_shape(op, "bias", &bias.shape, &[n])?;
    let params = Params {
        m: to_u32(op, m)?,
        n: to_u32(op, n)?,
        ..Params::zeroed()
    };
    gpu.dispatch_1d(ADD_BIAS, &params, &[bias.at(3), c.at(4)], (m * n) as u64)
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
        Variant::best(gpu),
        c,
    )
}

impl GpuBackend {
    /// Records the matrix product `c = op(a) op(b)`, where `op` transposes an operand when
    /// its flag is set, on the kernels that the linear layer runs on.
    ///
    /// The fast kernels read rows as `vec4` and take these shapes:
    /// - no transpose, with `k` and `n` multiples of 4;
    /// - `b` transposed, with `k` a multiple of 4;
    /// - `a` transposed, with `m` and `n` multiples of 4.
    ///
    /// Other shapes run on a general kernel, which was 3 to 8 times slower at 512x512x512
    /// on lavapipe.
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
        Variant::best(gpu),
        y,
    )?;
    match bias {
        Some(bias) => add_bias(gpu, OP, bias, y),
        None => Ok(()),
    }
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
        Variant::best(gpu),
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
        Variant::best(gpu),
        dweight,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::gpu::{BackendChoice, GpuOptions};

    #[test]
    fn block_sizes_match_shaders() {
        let linear = Shader::Linear.source();
        assert!(linear.contains(&format!("const BLOCK_ROWS: u32 = {BLOCK_ROWS}u;")));
        assert!(linear.contains(&format!("const STRIDED_COLUMNS: u32 = {STRIDED_COLUMNS}u;")));
        assert!(linear.contains(&format!("const CLUSTER: u32 = {CLUSTER}u;")));
        let subgroup = Shader::LinearSubgroup.source();
        assert!(subgroup.contains(&format!("const BLOCK_ROWS: u32 = {BLOCK_ROWS}u;")));
        assert!(subgroup.contains(&format!("const CLUSTER: u32 = {CLUSTER}u;")));
    }

    /// `op(a) op(b)` by the definition, accumulated in f64.
    fn naive_product(
        a: &[f32],
        b: &[f32],
        [m, n, k]: [usize; 3],
        (ta, tb): (bool, bool),
    ) -> Vec<f32> {
        let a_at = |i: usize, kk: usize| if ta { a[kk * m + i] } else { a[i * k + kk] };
        let b_at = |kk: usize, j: usize| if tb { b[j * k + kk] } else { b[kk * n + j] };
        let mut c = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k)
                    .map(|kk| f64::from(a_at(i, kk)) * f64::from(b_at(kk, j)))
                    .sum();
                c.push(sum as f32);
            }
        }
        c
    }

    /// Every variant the adapter runs, for every transpose and for sizes that reach each
    /// kernel, with blocks cut by the edges of c, against the naive product.
    #[test]
    fn every_variant_matches_naive_product() {
        use ndarray::{ArrayD, IxDyn};
        // Sizes [m, n, k]: aligned ones reach the vec4 kernels of every layout, and 5 or 13
        // leaves partial blocks.
        let sizes = [
            [8, 64, 16],
            [13, 20, 12],
            [4, 132, 8],
            [37, 68, 36],
            [5, 4, 4],
            [3, 7, 5],
        ];
        // The same adapters as the integration tests: `WGCNN_TEST_BACKENDS`, default both.
        let list = std::env::var("WGCNN_TEST_BACKENDS").unwrap_or_else(|_| "vulkan,gl".into());
        let backends = list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty());
        for backend in backends.map(|name| name.parse::<BackendChoice>().unwrap()) {
            let options = GpuOptions::from_env().unwrap().with_backend(backend);
            let gpu = GpuBackend::new(&options)
                .unwrap_or_else(|error| panic!("GPU tests need a `{backend}` adapter: {error}"));
            let mut variants = vec![Variant::Strided, Variant::Vec4];
            if Variant::best(&gpu) == Variant::Subgroup {
                variants.push(Variant::Subgroup);
            }
            for variant in variants {
                for [m, n, k] in sizes {
                    for transposes in [(false, false), (false, true), (true, false), (true, true)] {
                        let a_values: Vec<f32> = (0..m * k)
                            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                            .collect();
                        let b_values: Vec<f32> = (0..k * n)
                            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 32.0)
                            .collect();
                        let a_shape = if transposes.0 { [k, m] } else { [m, k] };
                        let b_shape = if transposes.1 { [n, k] } else { [k, n] };
                        let a_host =
                            ArrayD::from_shape_vec(IxDyn(&a_shape), a_values.clone()).unwrap();
                        let b_host =
                            ArrayD::from_shape_vec(IxDyn(&b_shape), b_values.clone()).unwrap();
                        let a = gpu.tensor("a", a_host.view()).unwrap();
                        let b = gpu.tensor("b", b_host.view()).unwrap();
                        let mut c = gpu.full("c", &[m, n], f32::NAN).unwrap();
                        product(
                            &gpu,
                            "matmul",
                            Operand {
                                name: "a",
                                tensor: &a,
                                transpose: transposes.0,
                            },
                            Operand {
                                name: "b",
                                tensor: &b,
                                transpose: transposes.1,
                            },
                            variant,
                            &mut c,
                        )
                        .unwrap();
                        let actual = gpu.read(&c).unwrap();
                        let expected = naive_product(&a_values, &b_values, [m, n, k], transposes);
                        let kernel = choose_kernel(variant, [m, n, k], transposes);
                        let what = format!(
                            "{variant:?} {} {m}x{n}x{k} {transposes:?} on {}",
                            kernel.entry_point,
                            gpu.device_name()
                        );
                        let mut diff = 0.0f64;
                        let mut norm = 0.0f64;
                        for (&x, &e) in actual.iter().zip(&expected) {
                            assert!(!x.is_nan(), "{what}: NaN in the output");
                            diff += (f64::from(x) - f64::from(e)).powi(2);
                            norm += f64::from(e).powi(2);
                        }
                        // f32 sums of at most 36 products, in another order than f64.
                        assert!(
                            (diff / norm).sqrt() < 1e-5,
                            "{what}: relative error {}",
                            (diff / norm).sqrt()
                        );
                    }
                }
            }
        }
    }
}
