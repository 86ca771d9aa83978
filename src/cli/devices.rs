//! `wgcnn devices`: the adapters wgpu finds.

use clap::Args;
use wgcnn::gpu::{BackendChoice, GpuOptions, list_adapters, no_adapter_error};

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Graphics API to list: auto, vulkan, metal, dx12 or gl.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
}

pub fn run(args: DevicesArgs) -> wgcnn::Result<()> {
    let adapters = if args.backend == BackendChoice::Auto {
        [
            BackendChoice::Vulkan,
            BackendChoice::Metal,
            BackendChoice::Dx12,
            BackendChoice::Gl,
        ]
        .into_iter()
        .flat_map(list_adapters)
        .collect()
    } else {
        list_adapters(args.backend)
    };
    if adapters.is_empty() {
        // With --backend, the error lists the adapters of the other backends. Without it,
        // there are none, and the error explains how to install a driver.
        return Err(no_adapter_error(&GpuOptions {
            backend: args.backend,
            backend_setting: "--backend",
            ..GpuOptions::default()
        }));
    }
    for adapter in adapters {
        let info = &adapter.info;
        let limits = &adapter.limits;
        println!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        println!("  driver: {} {}", info.driver, info.driver_info);
        println!(
            "  max storage binding: {} MiB, max buffer: {} MiB",
            limits.max_storage_buffer_binding_size / (1 << 20),
            limits.max_buffer_size / (1 << 20)
        );
        println!(
            "  max workgroups per dimension: {}, invocations per workgroup: {}, workgroup storage: {} KiB",
            limits.max_compute_workgroups_per_dimension,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_storage_size / 1024
        );
        println!(
            "  subgroups: {}, timestamp queries: {}",
            if adapter.subgroups { "yes" } else { "no" },
            if adapter.timestamps { "yes" } else { "no" }
        );
    }
    Ok(())
}
