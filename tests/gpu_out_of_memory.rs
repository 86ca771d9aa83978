//! A GPU allocation the driver refuses becomes an error, and the device still works after.
//!
//! lavapipe allocates buffers with the host's `malloc`, so lowering this process's
//! address-space limit (`RLIMIT_AS`) just above what it uses makes the next large buffer a
//! real out-of-memory failure in the driver. The limit is process-wide, so this file contains
//! one test and lowers it only around the allocation.

#![cfg(target_os = "linux")]

mod common;

use common::gpu_backends;
use ndarray::{ArrayD, IxDyn};
use wgcnn::gpu::GpuBackend;
use wgcnn::{Backend, Error, Result};

/// Bytes of address space this process has mapped, from /proc.
fn mapped_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmSize:"))
        .expect("/proc/self/status has VmSize");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Runs `work` with the address-space limit at `headroom` bytes above what is mapped now.
fn with_address_space_headroom<T>(headroom: u64, work: impl FnOnce() -> T) -> T {
    // SAFETY: getrlimit and setrlimit only read and write the rlimit structs passed in.
    let old = unsafe {
        let mut old = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut old), 0);
        let lowered = libc::rlimit {
            rlim_cur: mapped_bytes() + headroom,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &lowered), 0);
        old
    };
    let result = work();
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &old), 0);
    }
    result
}

/// Uploads 128 MiB (the largest storage binding lavapipe allows) with 64 MiB of headroom.
fn upload_under_limit(gpu: &GpuBackend) -> Result<()> {
    // The host copy is made before the limit is lowered: only the driver's buffer is new.
    let data = ArrayD::<f32>::zeros(IxDyn(&[32 * 1024 * 1024]));
    with_address_space_headroom(64 << 20, || gpu.tensor("big", data.view()).map(drop))
}

#[test]
fn gpu_out_of_memory_is_an_error() {
    for gpu in gpu_backends() {
        let name = gpu.device_name();
        // Compile and run something first, so that the driver's own set-up is done.
        let warm = gpu.full("warm", &[1024], 1.0).unwrap();
        gpu.read(&warm).unwrap();

        let error = upload_under_limit(&gpu).expect_err("the allocation succeeded");
        let message = error.to_string();
        match error {
            Error::GpuOutOfMemory { .. } => {
                assert!(message.contains("`big`"), "{name}: {message}");
                assert!(message.contains("smaller batch size"), "{name}: {message}");
                // Nothing is lost: the device takes new work after the failed allocation.
                let after = gpu.full("after", &[1024], 2.0).unwrap();
                assert_eq!(gpu.read(&after).unwrap()[[7]], 2.0, "{name}");
            }
            // GL reports an allocation the driver refused as a lost context.
            Error::DeviceLost(_) if name.contains("(Gl)") => {}
            error => panic!("{name}: expected an out-of-memory error, got {error:?}: {message}"),
        }
    }
}
