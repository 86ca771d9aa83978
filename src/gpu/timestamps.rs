//! Kernel timing with timestamp queries: each dispatch's compute pass writes a timestamp
//! before and after it, so the time inside kernels can be told from the host's time.

use super::GpuBackend;
use super::kernels::Kernel;
use crate::error::{Error, Result};

/// Most timestamps one timing session records: two per dispatch. wgpu allows at most 4096
/// queries per set; dispatches beyond 2048 go untimed.
const MAX_TIMESTAMPS: u32 = 4096;

/// The query set of an active timing session and the kernel of each pair of timestamps.
pub(crate) struct KernelTimer {
    query_set: wgpu::QuerySet,
    kernels: Vec<Kernel>,
}

/// The time one dispatch spent on the device.
#[derive(Clone, Debug)]
pub struct KernelTime {
    /// The kernel's entry point, such as `forward`, and its shader file.
    pub kernel: String,
    pub seconds: f64,
}

impl GpuBackend {
    /// Starts recording the device time of every following dispatch. Returns false when the
    /// adapter has no timestamp queries.
    pub fn start_kernel_timing(&self) -> bool {
        if !self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return false;
        }
        let mut timer = self.timer.borrow_mut();
        if timer.is_none() {
            let query_set = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: MAX_TIMESTAMPS,
            });
            *timer = Some(KernelTimer {
                query_set,
                kernels: Vec::new(),
            });
        }
        if let Some(timer) = timer.as_mut() {
            timer.kernels.clear();
        }
        true
    }

    /// The timestamp writes for the next dispatch of `kernel`, when timing is active and the
    /// query set has room.
    pub(crate) fn next_timestamps(&self, kernel: Kernel) -> Option<(wgpu::QuerySet, u32)> {
        let mut timer = self.timer.borrow_mut();
        let timer = timer.as_mut()?;
        let index = 2 * timer.kernels.len() as u32;
        if index + 2 > MAX_TIMESTAMPS {
            return None;
        }
        timer.kernels.push(kernel);
        Some((timer.query_set.clone(), index))
    }

    /// Stops timing and returns the device time of each dispatch recorded since
    /// [`GpuBackend::start_kernel_timing`], waiting for the device to finish.
    pub fn finish_kernel_timing(&self) -> Result<Vec<KernelTime>> {
        let Some(timer) = self.timer.borrow_mut().take() else {
            return Ok(Vec::new());
        };
        let count = 2 * timer.kernels.len() as u32;
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = u64::from(count) * 8;
        let resolved = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        {
            let mut slot = self.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| {
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wgcnn step"),
                    })
            });
            encoder.resolve_query_set(&timer.query_set, 0..count, &resolved, 0);
        }
        let raw = self.read_buffer(&resolved)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
        let period = f64::from(self.ctx.queue.get_timestamp_period()) * 1e-9;
        if period <= 0.0 {
            return Err(Error::Gpu(
                "the adapter reports a zero timestamp period".into(),
            ));
        }
        Ok(timer
            .kernels
            .iter()
            .zip(ticks.chunks_exact(2))
            .map(|(kernel, pair)| KernelTime {
                kernel: format!("{} ({})", kernel.entry_point, kernel.shader.file_name()),
                seconds: pair[1].saturating_sub(pair[0]) as f64 * period,
            })
            .collect())
    }
}
