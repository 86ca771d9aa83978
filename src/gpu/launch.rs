//! Recording one dispatch: cached pipeline, uniform parameters, cached bind group, dispatch.

use bytemuck::Pod;

use super::kernels::{Kernel, WORKGROUP_SIZE};
use super::tensor::{GpuLabels, GpuTensor};
use super::{BindGroupKey, GpuBackend, MAX_CACHED_BIND_GROUPS, UniformSlot};
use crate::error::{Error, Result};

/// A storage buffer bound at `binding` of group 0. Binding 0 is always the uniform parameters.
pub(crate) struct Binding<'a> {
    pub binding: u32,
    pub buffer: &'a wgpu::Buffer,
    pub id: u64,
}

impl GpuTensor {
    pub(crate) fn at(&self, binding: u32) -> Binding<'_> {
        Binding {
            binding,
            buffer: &self.buffer,
            id: self.id,
        }
    }
}

impl GpuLabels {
    pub(crate) fn at(&self, binding: u32) -> Binding<'_> {
        Binding {
            binding,
            buffer: &self.buffer,
            id: self.id,
        }
    }
}

/// Converts a size to the `u32` a shader indexes with.
pub(crate) fn to_u32(name: &'static str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::shape(
            name,
            format!("size {value} exceeds the 32-bit indices the kernels use"),
        )
    })
}

impl GpuBackend {
    /// Workgroup counts for `invocations` one-dimensional invocations. Counts above the
    /// per-dimension limit fold into the y dimension; the shader rebuilds the flat index as
    /// `gid.x + gid.y * num_workgroups.x * WORKGROUP_SIZE` and skips indices past the end.
    pub(crate) fn workgroups_1d(&self, kernel: Kernel, invocations: u64) -> Result<[u32; 3]> {
        let max_per_dimension = u64::from(self.ctx.limits.max_compute_workgroups_per_dimension);
        let groups = invocations.div_ceil(u64::from(WORKGROUP_SIZE)).max(1);
        let x = groups.min(max_per_dimension);
        let y = groups.div_ceil(x);
        if y > max_per_dimension {
            return Err(Error::Gpu(format!(
                "kernel `{}` needs {invocations} invocations, more than {max_per_dimension}² \
                 workgroups of {WORKGROUP_SIZE}; use a smaller batch size",
                kernel.entry_point
            )));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Records a one-dimensional dispatch of `invocations` invocations.
    pub(crate) fn dispatch_1d<P: Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding<'_>],
        invocations: u64,
    ) -> Result<()> {
        let workgroups = self.workgroups_1d(kernel, invocations)?;
        self.dispatch(kernel, params, bindings, workgroups)
    }

    /// Records one dispatch of `kernel` with `params` at binding 0 and `bindings` after it.
    ///
    /// The uniform buffer is keyed by the kernel and the last binding (the output), so a
    /// training step that repeats the same calls reuses every buffer and bind group. When the
    /// parameters change (a learning rate schedule, Adam's step count), the new bytes are
    /// written to that buffer, after submitting any recorded command that still reads the old
    /// ones.
    pub(crate) fn dispatch<P: Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding<'_>],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel)?;
        let slot = bindings.last().map_or(0, |b| b.id);
        let bytes = bytemuck::bytes_of(params);
        self.prepare_uniform(kernel, slot, bytes)?;

        let key = BindGroupKey {
            kernel,
            slot,
            buffers: bindings.iter().map(|b| b.id).collect(),
        };
        let bind_group = self.bind_group(key, &pipeline, kernel, slot, bindings);

        {
            let mut encoder_slot = self.encoder.borrow_mut();
            let encoder = encoder_slot.get_or_insert_with(|| {
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wgcnn step"),
                    })
            });
            let timestamps = self.next_timestamps(kernel);
            let timestamp_writes =
                timestamps
                    .as_ref()
                    .map(|(query_set, index)| wgpu::ComputePassTimestampWrites {
                        query_set,
                        beginning_of_pass_write_index: Some(*index),
                        end_of_pass_write_index: Some(index + 1),
                    });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry_point),
                timestamp_writes,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        let mut pending = self.pending_buffers.borrow_mut();
        pending.extend(bindings.iter().map(|b| b.id));
        self.pending_slots.borrow_mut().insert((kernel, slot));
        Ok(())
    }

    fn prepare_uniform(&self, kernel: Kernel, slot: u64, bytes: &[u8]) -> Result<()> {
        let stale = match self.uniforms.borrow().get(&(kernel, slot)) {
            Some(uniform) if uniform.contents == bytes => return Ok(()),
            Some(_) => true,
            None => false,
        };
        if stale {
            if self.pending_slots.borrow().contains(&(kernel, slot)) {
                self.flush()?;
            }
            let mut uniforms = self.uniforms.borrow_mut();
            let uniform = uniforms.get_mut(&(kernel, slot)).expect("checked above");
            self.ctx.queue.write_buffer(&uniform.buffer, 0, bytes);
            uniform.contents = bytes.to_vec();
            return Ok(());
        }

        let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(kernel.entry_point),
            size: bytes.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: true,
        });
        buffer
            .slice(..)
            .get_mapped_range_mut()
            .map_err(|error| {
                self.ctx
                    .failure(format!("failed to map a uniform buffer: {error}"))
            })?
            .copy_from_slice(bytes);
        buffer.unmap();
        self.count(|c| c.buffers += 1);
        self.uniforms.borrow_mut().insert(
            (kernel, slot),
            UniformSlot {
                buffer,
                contents: bytes.to_vec(),
            },
        );
        Ok(())
    }

    fn bind_group(
        &self,
        key: BindGroupKey,
        pipeline: &wgpu::ComputePipeline,
        kernel: Kernel,
        slot: u64,
        bindings: &[Binding<'_>],
    ) -> wgpu::BindGroup {
        if let Some(bind_group) = self.bind_groups.borrow().get(&key) {
            return bind_group.clone();
        }
        let uniforms = self.uniforms.borrow();
        let uniform = &uniforms[&(kernel, slot)].buffer;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(bindings.iter().map(|b| wgpu::BindGroupEntry {
            binding: b.binding,
            resource: b.buffer.as_entire_binding(),
        }));
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.entry_point),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        self.count(|c| c.bind_groups += 1);

        let mut cache = self.bind_groups.borrow_mut();
        if cache.len() >= MAX_CACHED_BIND_GROUPS {
            log::debug!("dropping {} cached bind groups", cache.len());
            cache.clear();
        }
        cache.insert(key, bind_group.clone());
        bind_group
    }
}
