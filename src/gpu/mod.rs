//! The GPU path: wgpu context, tensors in storage buffers, and one launcher per WGSL kernel.
//!
//! [`GpuBackend`] records every op into one command encoder and submits it when a result is
//! read, a buffer is overwritten, or [`crate::Backend::submit`] is called. Pipelines, uniform
//! buffers, bind groups and readback buffers are created on first use and cached, so a
//! repeated training step creates none of them ([`GpuBackend::resource_counters`] shows it).

mod backend_impl;
pub mod context;
pub mod kernels;
mod launch;
mod ops;
pub mod tensor;
mod timestamps;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use context::{
    AdapterSummary, BackendChoice, GpuContext, GpuOptions, list_adapters, no_adapter_error,
};
pub use kernels::WORKGROUP_SIZE;
pub use ops::conv2d::Conv2dVariant;
pub use tensor::{GpuLabels, GpuTensor};
pub use timestamps::KernelTime;

use crate::error::{Error, Result};
use kernels::{Kernel, Shader};

/// How many GPU objects the backend has created so far. A training step that runs after a
/// first, warming step must leave all three unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceCounters {
    pub pipelines: u64,
    pub buffers: u64,
    pub bind_groups: u64,
}

/// A uniform buffer that contains one dispatch's parameters, and the bytes last written to it.
struct UniformSlot {
    buffer: wgpu::Buffer,
    contents: Vec<u8>,
}

/// The key of a cached bind group: the kernel, the uniform slot and every bound buffer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BindGroupKey {
    kernel: Kernel,
    slot: u64,
    buffers: Vec<u64>,
}

/// Bind groups cached beyond this count are dropped, so that tensors created for one-off
/// calls (such as evaluation at another batch size) do not keep their buffers alive forever.
const MAX_CACHED_BIND_GROUPS: usize = 4096;

/// The key of a cached scratch tensor: what it holds, the id of the output it serves, and
/// its length.
type ScratchKey = (&'static str, u64, usize);

/// Scratch tensors cached beyond this count are dropped, as bind groups are.
const MAX_CACHED_SCRATCH: usize = 256;

/// The GPU implementation of [`crate::Backend`].
pub struct GpuBackend {
    ctx: GpuContext,
    modules: RefCell<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: RefCell<HashMap<Kernel, wgpu::ComputePipeline>>,
    uniforms: RefCell<HashMap<(Kernel, u64), UniformSlot>>,
    bind_groups: RefCell<HashMap<BindGroupKey, wgpu::BindGroup>>,
    readback: RefCell<HashMap<u64, wgpu::Buffer>>,
    scratch: RefCell<HashMap<ScratchKey, GpuTensor>>,
    conv2d_variant: Cell<Option<Conv2dVariant>>,
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    /// Buffers and uniform slots read or written by the commands not yet submitted.
    pending_buffers: RefCell<HashSet<u64>>,
    pending_slots: RefCell<HashSet<(Kernel, u64)>>,
    counters: Cell<ResourceCounters>,
    timer: RefCell<Option<timestamps::KernelTimer>>,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl GpuBackend {
    /// Chooses an adapter as `options` specify and creates the backend on it.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] or [`Error::RequestDevice`], see [`GpuContext::new`].
    pub fn new(options: &GpuOptions) -> Result<Self> {
        Ok(Self::from_context(GpuContext::new(options)?))
    }

    /// Wraps a context that was created elsewhere.
    pub fn from_context(ctx: GpuContext) -> Self {
        Self {
            ctx,
            modules: RefCell::default(),
            pipelines: RefCell::default(),
            uniforms: RefCell::default(),
            bind_groups: RefCell::default(),
            readback: RefCell::default(),
            scratch: RefCell::default(),
            conv2d_variant: Cell::default(),
            encoder: RefCell::default(),
            pending_buffers: RefCell::default(),
            pending_slots: RefCell::default(),
            counters: Cell::default(),
            timer: RefCell::default(),
        }
    }

    /// The device, queue and adapter information.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Makes the convolution and its gradients run `variant` wherever it applies to the
    /// shape, or choose by shape and adapter again with `None`. Tests use it to check every
    /// variant against the CPU path.
    pub fn force_conv2d_variant(&self, variant: Option<Conv2dVariant>) {
        self.conv2d_variant.set(variant);
    }

    pub(crate) fn forced_conv2d_variant(&self) -> Option<Conv2dVariant> {
        self.conv2d_variant.get()
    }

    /// The GPU objects created so far.
    pub fn resource_counters(&self) -> ResourceCounters {
        self.counters.get()
    }

    fn count(&self, update: impl FnOnce(&mut ResourceCounters)) {
        let mut counters = self.counters.get();
        update(&mut counters);
        self.counters.set(counters);
    }

    /// Fails when a buffer of `bytes` does not fit the device's limits.
    pub(crate) fn check_size(&self, name: &str, bytes: u64) -> Result<()> {
        let limits = &self.ctx.limits;
        let binding = limits.max_storage_buffer_binding_size;
        if bytes > binding {
            return Err(Error::TensorTooLarge {
                name: name.to_string(),
                bytes,
                limit: binding,
                what: "storage buffer binding (max_storage_buffer_binding_size)",
            });
        }
        if bytes > limits.max_buffer_size {
            return Err(Error::TensorTooLarge {
                name: name.to_string(),
                bytes,
                limit: limits.max_buffer_size,
                what: "buffer (max_buffer_size)",
            });
        }
        Ok(())
    }

    /// Creates a storage buffer holding `contents`.
    pub(crate) fn create_storage_buffer(
        &self,
        name: &str,
        contents: &[u8],
    ) -> Result<Arc<wgpu::Buffer>> {
        self.create_storage_buffer_with(name, contents.len() as u64, |mut mapped| {
            mapped.copy_from_slice(contents);
        })
    }

    /// Creates a storage buffer of `bytes` bytes whose contents `fill` writes, straight into
    /// the mapped buffer: no copy of them is made on the host, so the largest allocation is
    /// the buffer's own.
    ///
    /// # Errors
    /// [`Error::TensorTooLarge`] beyond the adapter's limits, [`Error::GpuOutOfMemory`] when
    /// the driver cannot allocate the buffer.
    pub(crate) fn create_storage_buffer_with(
        &self,
        name: &str,
        bytes: u64,
        fill: impl FnOnce(wgpu::WriteOnly<'_, [u8]>),
    ) -> Result<Arc<wgpu::Buffer>> {
        self.check_size(name, bytes)?;
        let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: true,
        });
        // A failed allocation leaves an invalid buffer; its error names it first.
        self.ctx.check_errors().map_err(|error| match error {
            Error::GpuOutOfMemory { .. } => Error::GpuOutOfMemory {
                what: format!("tensor `{name}` ({bytes} bytes)"),
            },
            error => error,
        })?;
        let mut mapped = buffer.slice(..).get_mapped_range_mut().map_err(|error| {
            self.ctx
                .failure(format!("failed to map buffer `{name}`: {error}"))
        })?;
        fill(mapped.slice(..));
        drop(mapped);
        buffer.unmap();
        self.count(|c| c.buffers += 1);
        self.ctx.check_errors()?;
        Ok(Arc::new(buffer))
    }

    /// A scratch tensor of `len` elements that holds `purpose` (such as the partial sums of
    /// a split reduction) for the output tensor `owner`. It is created on the first call and
    /// returned again after, so a repeated training step creates no buffers; its contents
    /// are whatever the last user left.
    pub(crate) fn scratch(
        &self,
        purpose: &'static str,
        owner: u64,
        len: usize,
    ) -> Result<GpuTensor> {
        let key = (purpose, owner, len);
        if let Some(tensor) = self.scratch.borrow().get(&key) {
            return Ok(tensor.clone());
        }
        let buffer = self.create_storage_buffer_with(
            purpose,
            (len as u64).saturating_mul(4),
            |mut mapped| mapped.fill(0),
        )?;
        let tensor = GpuTensor {
            buffer,
            shape: vec![len],
            id: tensor::next_id(),
        };
        let mut cache = self.scratch.borrow_mut();
        if cache.len() >= MAX_CACHED_SCRATCH {
            log::debug!("dropping {} cached scratch tensors", cache.len());
            cache.clear();
        }
        cache.insert(key, tensor.clone());
        Ok(tensor)
    }

    fn pipeline(&self, kernel: Kernel) -> Result<wgpu::ComputePipeline> {
        if let Some(pipeline) = self.pipelines.borrow().get(&kernel) {
            return Ok(pipeline.clone());
        }
        let module = {
            let mut modules = self.modules.borrow_mut();
            modules
                .entry(kernel.shader)
                .or_insert_with(|| {
                    self.ctx
                        .device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(kernel.shader.file_name()),
                            source: wgpu::ShaderSource::Wgsl(kernel.shader.source().into()),
                        })
                })
                .clone()
        };
        let constants = [("WORKGROUP_SIZE", f64::from(WORKGROUP_SIZE))];
        let pipeline = self
            .ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry_point),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        self.ctx.check_errors().map_err(|error| {
            Error::Gpu(format!(
                "failed to build kernel `{}` of {}: {error}",
                kernel.entry_point,
                kernel.shader.file_name()
            ))
        })?;
        self.count(|c| c.pipelines += 1);
        self.pipelines.borrow_mut().insert(kernel, pipeline.clone());
        Ok(pipeline)
    }

    /// Submits the commands recorded so far.
    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(encoder) = self.encoder.borrow_mut().take() {
            self.ctx.queue.submit([encoder.finish()]);
        }
        self.pending_buffers.borrow_mut().clear();
        self.pending_slots.borrow_mut().clear();
        self.ctx.check_errors()
    }

    /// Overwrites a buffer from the host, after the recorded commands that use it.
    pub(crate) fn write_buffer(&self, id: u64, buffer: &wgpu::Buffer, bytes: &[u8]) -> Result<()> {
        if self.pending_buffers.borrow().contains(&id) {
            self.flush()?;
        }
        self.ctx.queue.write_buffer(buffer, 0, bytes);
        Ok(())
    }

    /// Copies a buffer to the host, after all recorded commands.
    pub(crate) fn read_buffer(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
        Ok(self.read_buffers(&[buffer])?.remove(0))
    }

    /// Copies several buffers to the host with one submission and one wait, after all
    /// recorded commands: the copies join the pending step's command encoder.
    pub(crate) fn read_buffers(&self, buffers: &[&wgpu::Buffer]) -> Result<Vec<Vec<u8>>> {
        // Buffer sizes are multiples of 4 bytes, the alignment copies need.
        let total: u64 = buffers.iter().map(|b| b.size()).sum();
        let staging = self
            .readback
            .borrow_mut()
            .entry(total)
            .or_insert_with(|| {
                self.count(|c| c.buffers += 1);
                self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: total,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .clone();

        {
            let mut slot = self.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| {
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wgcnn step"),
                    })
            });
            let mut offset = 0;
            for buffer in buffers {
                encoder.copy_buffer_to_buffer(buffer, 0, &staging, offset, buffer.size());
                offset += buffer.size();
            }
        }
        self.flush()?;

        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                sender.send(result).ok();
            });
        self.ctx.wait("reading a buffer back")?;
        match pollster::block_on(receiver.receive()) {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                return Err(self.ctx.failure(format!("failed to map a buffer: {error}")));
            }
            None => return Err(self.ctx.failure("the buffer mapping was cancelled".into())),
        }
        let bytes = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|error| {
                self.ctx
                    .failure(format!("failed to read a mapped buffer: {error}"))
            })?
            .to_vec();
        staging.unmap();

        let mut parts = Vec::with_capacity(buffers.len());
        let mut offset = 0;
        for buffer in buffers {
            let end = offset + buffer.size() as usize;
            parts.push(bytes[offset..end].to_vec());
            offset = end;
        }
        Ok(parts)
    }
}
