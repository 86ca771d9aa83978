//! Adapter selection and device creation.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

/// Environment variable that selects the backend: `auto`, `vulkan`, `metal`, `dx12` or `gl`.
pub const BACKEND_ENV: &str = "WGCNN_BACKEND";
/// Environment variable with a case-insensitive substring of the adapter's name.
pub const ADAPTER_ENV: &str = "WGCNN_ADAPTER";
/// Environment variable with the longest wait for the GPU, in seconds (default 300).
pub const TIMEOUT_ENV: &str = "WGCNN_GPU_TIMEOUT";

/// The graphics API wgpu runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// Vulkan, Metal or DX12 when one has an adapter, else OpenGL.
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    /// The wgpu backends to search, in the order they are tried.
    fn search_order(self) -> Vec<wgpu::Backends> {
        match self {
            BackendChoice::Auto => vec![wgpu::Backends::PRIMARY, wgpu::Backends::GL],
            BackendChoice::Vulkan => vec![wgpu::Backends::VULKAN],
            BackendChoice::Metal => vec![wgpu::Backends::METAL],
            BackendChoice::Dx12 => vec![wgpu::Backends::DX12],
            BackendChoice::Gl => vec![wgpu::Backends::GL],
        }
    }
}

impl BackendChoice {
    /// The graphics APIs this choice searches, for messages.
    fn searched_names(self) -> String {
        match self {
            BackendChoice::Auto => "vulkan, metal, dx12, gl".to_string(),
            other => other.to_string(),
        }
    }
}

impl FromStr for BackendChoice {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            _ => Err(Error::UnknownBackend(name.to_string())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
        };
        f.write_str(name)
    }
}

/// How to choose and drive the GPU.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Graphics API. Default [`BackendChoice::Auto`].
    pub backend: BackendChoice,
    /// Case-insensitive substring the adapter's name must contain. Default none.
    pub adapter_name: Option<String>,
    /// Maximum wait for one GPU submission before [`Error::Timeout`]. Default 300 s.
    pub timeout: Duration,
    /// The setting that `backend` came from, such as `--backend` or `WGCNN_BACKEND`, so that
    /// errors name what to change. Default `backend`.
    pub backend_setting: &'static str,
    /// The setting that `adapter_name` came from, as for `backend_setting`. Default
    /// `adapter name`.
    pub adapter_setting: &'static str,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            adapter_name: None,
            timeout: Duration::from_secs(300),
            backend_setting: "backend",
            adapter_setting: "adapter name",
        }
    }
}

impl GpuOptions {
    /// Options with the backend, adapter filter and timeout read from `WGCNN_BACKEND`,
    /// `WGCNN_ADAPTER` and `WGCNN_GPU_TIMEOUT` when they are set.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the variable when `WGCNN_BACKEND` names no known
    /// backend or `WGCNN_GPU_TIMEOUT` is not a positive number of seconds.
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        if let Ok(name) = std::env::var(BACKEND_ENV) {
            options.backend = name.parse().map_err(|_| {
                Error::invalid(
                    BACKEND_ENV,
                    format!(
                        "is `{name}`, an unknown backend; set it to auto, vulkan, metal, dx12 \
                         or gl, or unset it"
                    ),
                )
            })?;
            options.backend_setting = BACKEND_ENV;
        }
        if let Ok(filter) = std::env::var(ADAPTER_ENV)
            && !filter.is_empty()
        {
            options.adapter_name = Some(filter);
            options.adapter_setting = ADAPTER_ENV;
        }
        if let Ok(text) = std::env::var(TIMEOUT_ENV) {
            options.timeout = text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    Error::invalid(
                        TIMEOUT_ENV,
                        format!("must be a positive number of seconds, such as 300 (the default); got `{text}`"),
                    )
                })?;
        }
        Ok(options)
    }

    /// These options with another backend.
    pub fn with_backend(mut self, backend: BackendChoice) -> Self {
        self.backend = backend;
        self.backend_setting = Self::default().backend_setting;
        self
    }

    /// Lists the backend and adapter filters these options set, each as text such as
    /// "--backend metal" or "WGCNN_ADAPTER `intel`" and with the setting it came from.
    fn filters(&self) -> Vec<(String, &'static str)> {
        let mut filters = Vec::new();
        if self.backend != BackendChoice::Auto {
            filters.push((
                format!("{} {}", self.backend_setting, self.backend),
                self.backend_setting,
            ));
        }
        if let Some(name) = &self.adapter_name {
            filters.push((
                format!("{} `{name}`", self.adapter_setting),
                self.adapter_setting,
            ));
        }
        filters
    }
}

/// One adapter as `wgcnn devices` lists it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub subgroups: bool,
    pub timestamps: bool,
    /// Whether the adapter runs compute shaders, which wgcnn needs.
    pub compute_shaders: bool,
}

impl AdapterSummary {
    /// Formats the name and backend for the adapter lists in error messages.
    fn label(&self) -> String {
        if self.compute_shaders {
            format!("{} ({:?})", self.info.name, self.info.backend)
        } else {
            format!(
                "{} ({:?}, without compute shaders)",
                self.info.name, self.info.backend
            )
        }
    }
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends;
    wgpu::Instance::new(descriptor)
}

/// Lists every adapter of the chosen backend.
pub fn list_adapters(backend: BackendChoice) -> Vec<AdapterSummary> {
    let mut found = Vec::new();
    for backends in backend.search_order() {
        let instance = new_instance(backends);
        for adapter in pollster::block_on(instance.enumerate_adapters(backends)) {
            let features = adapter.features();
            found.push(AdapterSummary {
                info: adapter.get_info(),
                limits: adapter.limits(),
                subgroups: features.contains(wgpu::Features::SUBGROUP),
                timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
                compute_shaders: adapter
                    .get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS),
            });
        }
    }
    found
}

/// Builds the error for `options` when no adapter matched them. When the machine has
/// adapters on any backend and `options` filter by backend or name, the error lists those
/// adapters and names the settings to change. Install advice comes only when there is no
/// adapter at all, or when no filter could have excluded the ones there are.
pub fn no_adapter_error(options: &GpuOptions) -> Error {
    let seen: Vec<String> = list_adapters(BackendChoice::Auto)
        .iter()
        .map(AdapterSummary::label)
        .collect();
    let filters = options.filters();
    if seen.is_empty() || filters.is_empty() {
        return Error::NoAdapter {
            tried: options.backend.searched_names(),
            filter: options
                .adapter_name
                .as_ref()
                .map(|name| format!("; {} `{name}`", options.adapter_setting))
                .unwrap_or_default(),
            seen: if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            },
        };
    }
    let requested: Vec<String> = filters.iter().map(|(text, _)| text.clone()).collect();
    let settings: Vec<&str> = filters.iter().map(|(_, setting)| *setting).collect();
    Error::NoMatchingAdapter {
        requested: requested.join(" and "),
        seen: seen.join(", "),
        settings: settings.join(" or "),
        pronoun: if settings.len() == 1 { "it" } else { "them" },
    }
}

/// Ranks device types: a real GPU first, a software one last.
fn device_type_rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// A wgpu device with the limits wgcnn asked for, and the errors it reported.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub timeout: Duration,
    /// Errors wgpu reported, oldest first, each with whether it was an out-of-memory error.
    errors: Arc<Mutex<Vec<(bool, String)>>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

/// The limits wgcnn requests: wgpu's downlevel defaults, raised to what the adapter offers for
/// the resources that bound model and batch size.
fn required_limits(supported: &wgpu::Limits) -> wgpu::Limits {
    let mut limits = wgpu::Limits::downlevel_defaults();
    limits.max_storage_buffer_binding_size = supported.max_storage_buffer_binding_size;
    limits.max_buffer_size = supported.max_buffer_size;
    limits.max_compute_workgroup_storage_size = supported.max_compute_workgroup_storage_size;
    limits.max_compute_invocations_per_workgroup = supported.max_compute_invocations_per_workgroup;
    limits.max_compute_workgroup_size_x = supported.max_compute_workgroup_size_x;
    limits.max_compute_workgroup_size_y = supported.max_compute_workgroup_size_y;
    limits.max_compute_workgroups_per_dimension = supported.max_compute_workgroups_per_dimension;
    limits.max_storage_buffers_per_shader_stage =
        supported.max_storage_buffers_per_shader_stage.min(10);
    limits
}

impl GpuContext {
    /// Chooses an adapter and creates a device on it.
    ///
    /// Among the adapters that match the backend and name filter, a discrete GPU wins over an
    /// integrated one, and a software adapter comes last.
    ///
    /// # Errors
    /// [`Error::NoMatchingAdapter`] or [`Error::NoAdapter`], as [`no_adapter_error`] chooses;
    /// [`Error::RequestDevice`] when the adapter refuses the device.
    pub fn new(options: &GpuOptions) -> Result<Self> {
        let filter = options.adapter_name.as_ref().map(|f| f.to_lowercase());
        let mut chosen = None;
        for backends in options.backend.search_order() {
            let instance = new_instance(backends);
            let mut adapters: Vec<wgpu::Adapter> =
                pollster::block_on(instance.enumerate_adapters(backends));
            adapters.retain(|adapter| {
                let info = adapter.get_info();
                let name_matches = filter
                    .as_ref()
                    .is_none_or(|f| info.name.to_lowercase().contains(f));
                let can_compute = adapter
                    .get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
                name_matches && can_compute
            });
            adapters.sort_by_key(|adapter| device_type_rank(adapter.get_info().device_type));
            if let Some(adapter) = adapters.into_iter().next() {
                chosen = Some(adapter);
                break;
            }
        }
        let Some(adapter) = chosen else {
            return Err(no_adapter_error(options));
        };
        Self::from_adapter(adapter, options.timeout)
    }

    fn from_adapter(adapter: wgpu::Adapter, timeout: Duration) -> Result<Self> {
        let info = adapter.get_info();
        let supported = adapter.limits();
        let limits = required_limits(&supported);
        let optional = wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let features = adapter.features() & optional;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("wgcnn device"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|error| {
                Error::RequestDevice {
                    adapter: info.name.clone(),
                    message: error.to_string(),
                }
            })?;

        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            log::error!("wgpu reported: {error}");
            if let Ok(mut errors) = sink.lock() {
                let out_of_memory = matches!(error, wgpu::Error::OutOfMemory { .. });
                errors.push((out_of_memory, error.to_string()));
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut lost) = lost_sink.lock() {
                *lost = Some(if message.is_empty() {
                    format!("{reason:?}")
                } else {
                    format!("{reason:?}: {message}")
                });
            }
        });
        log::info!(
            "using adapter `{}` ({:?}, {:?})",
            info.name,
            info.backend,
            info.device_type
        );
        Ok(Self {
            device,
            queue,
            info,
            limits,
            features,
            timeout,
            errors,
            lost,
        })
    }

    /// Builds an [`Error::Gpu`] with `message`, or [`Error::DeviceLost`] when the device is gone,
    /// since a lost device makes every later call fail with a less telling message.
    pub(crate) fn failure(&self, message: String) -> Error {
        // Device-lost callbacks run from a poll, so one is made first to let it arrive.
        let _ = self.device.poll(wgpu::PollType::Poll);
        match self.lost.lock().ok().and_then(|lost| lost.clone()) {
            Some(lost) => Error::DeviceLost(lost),
            None => Error::Gpu(message),
        }
    }

    /// Returns the first error wgpu reported since the last check, if any.
    pub fn check_errors(&self) -> Result<()> {
        if let Ok(lost) = self.lost.lock()
            && let Some(message) = lost.as_ref()
        {
            return Err(Error::DeviceLost(message.clone()));
        }
        let mut errors = self
            .errors
            .lock()
            .map_err(|_| Error::Gpu("the error log lock was poisoned".into()))?;
        if errors.is_empty() {
            return Ok(());
        }
        let (out_of_memory, first) = errors.remove(0);
        let more = errors.len();
        errors.clear();
        drop(errors);
        if out_of_memory {
            return Err(Error::GpuOutOfMemory {
                what: format!("an allocation ({first})"),
            });
        }
        if more > 0 {
            Err(self.failure(format!("{first} (and {more} more errors)")))
        } else {
            Err(self.failure(first))
        }
    }

    /// Whether the adapter is a software rasterizer running on the CPU (lavapipe, llvmpipe).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Waits until the device has finished all submitted work.
    ///
    /// # Errors
    /// [`Error::Timeout`] after [`GpuOptions::timeout`]; [`Error::DeviceLost`] or
    /// [`Error::Gpu`] when the device failed.
    pub fn wait(&self, what: &'static str) -> Result<()> {
        let poll = self.device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: Some(self.timeout),
        });
        match poll {
            Ok(_) => self.check_errors(),
            Err(wgpu::PollError::Timeout) => Err(Error::Timeout {
                what,
                seconds: self.timeout.as_secs_f64(),
            }),
            Err(error) => {
                self.check_errors()?;
                Err(Error::Gpu(error.to_string()))
            }
        }
    }
}
