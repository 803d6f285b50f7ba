//! The proxy-wasm ABI (0.2.1), as much of it as the filter uses: the host functions it calls
//! and the callbacks it exports.
//!
//! Why not the proxy-wasm Rust SDK: its dispatcher exports every callback of the ABI, and Envoy
//! enters the VM for every callback a module exports, even one that only returns Continue. Each
//! entry into V8 costs about 0.45 µs, and a request through an SDK-based filter makes seven of
//! them (context create, request headers, response headers, response body, log, done, delete).
//! Envoy skips the callbacks a module does not export, so this module exports only the three a
//! request needs: context create (which root the stream belongs to), request headers (route,
//! pick, write) and delete (count the response, record the duration). See docs/performance.md.

use std::ptr::null_mut;

/// `proxy_log` levels.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Error = 4,
}

/// `proxy_define_metric` kinds.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum MetricKind {
    Counter = 0,
    Histogram = 2,
}

const STATUS_OK: u32 = 0;
const MAP_REQUEST_HEADERS: u32 = 0;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
/// What `proxy_on_request_headers` returns to let the request go on.
pub const ACTION_CONTINUE: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        kind: u32,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
}

/// Takes ownership of a buffer the host filled through [`proxy_on_memory_allocate`].
///
/// # Safety
/// `data` must be null or a pointer this module's allocator returned for exactly `size` bytes,
/// not yet freed: the host hands over buffers it got from `proxy_on_memory_allocate`.
unsafe fn take_host_buffer(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return (size == 0).then(Vec::new);
    }
    // SAFETY: per the contract above, `data` is a `Vec<u8>` of capacity `size` that
    // `proxy_on_memory_allocate` leaked; rebuilding it frees it when dropped.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Called by the host to place a value it returns (a header map, a property) in our memory.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

/// Tells the host which ABI the module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the host only reads `message_size` bytes from `message`.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// The plugin's configuration (`WasmPlugin.spec.pluginConfig`, or Envoy's `configuration`).
pub fn plugin_configuration(size: usize) -> Vec<u8> {
    let mut data = null_mut();
    let mut returned = 0;
    // SAFETY: on Ok the host wrote a buffer from our allocator and its size.
    unsafe {
        if proxy_get_buffer_bytes(
            BUFFER_PLUGIN_CONFIGURATION,
            0,
            size,
            &mut data,
            &mut returned,
        ) != STATUS_OK
        {
            return Vec::new();
        }
        take_host_buffer(data, returned).unwrap_or_default()
    }
}

/// Defines (or finds, if it exists) a metric; its id, or the host's status code on failure.
pub fn define_metric(kind: MetricKind, name: &str) -> Result<u32, u32> {
    let mut id = 0;
    // SAFETY: the host reads `name` and writes one u32 to `id`.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    if status == STATUS_OK {
        Ok(id)
    } else {
        Err(status)
    }
}

pub fn increment_metric(id: u32) {
    // SAFETY: no memory is shared.
    unsafe {
        proxy_increment_metric(id, 1);
    }
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: no memory is shared.
    unsafe {
        proxy_record_metric(id, value);
    }
}

/// The request's headers, serialized by the host (see `crate::headers`); empty if there are
/// none to give. One host call for the whole map: cheaper than two single-header reads.
pub fn request_header_pairs() -> Vec<u8> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: on Ok the host wrote a buffer from our allocator and its size.
    unsafe {
        if proxy_get_header_map_pairs(MAP_REQUEST_HEADERS, &mut data, &mut size) != STATUS_OK {
            return Vec::new();
        }
        take_host_buffer(data, size).unwrap_or_default()
    }
}

/// Sets a request header, replacing any value the client sent. Envoy also clears its route
/// cache, so the router resolves the route again against what the filter wrote.
pub fn replace_request_header(name: &str, value: &str) {
    // SAFETY: the host only reads the two slices.
    unsafe {
        proxy_replace_header_map_value(
            MAP_REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        );
    }
}

/// Adds a request header the request does not have: Envoy skips the search and removal a
/// replacement makes. Also clears the route cache.
pub fn add_request_header(name: &str, value: &str) {
    // SAFETY: the host only reads the two slices.
    unsafe {
        proxy_add_header_map_value(
            MAP_REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        );
    }
}

pub fn remove_request_header(name: &str) {
    // SAFETY: the host only reads the slice.
    unsafe {
        proxy_remove_header_map_value(MAP_REQUEST_HEADERS, name.as_ptr(), name.len());
    }
}

/// An Envoy attribute, by its path with the parts separated by NUL (`b"response\0code"`).
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the host reads `path`; on Ok it wrote a buffer from our allocator and its size.
    unsafe {
        if proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) != STATUS_OK {
            return None;
        }
        take_host_buffer(data, size)
    }
}

/// An integer attribute (Envoy returns them as 8 little-endian bytes).
pub fn integer_property(path: &[u8]) -> Option<i64> {
    let bytes = property(path)?;
    let bytes: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// Envoy's wall clock, in nanoseconds since the epoch.
pub fn now_nanos() -> u64 {
    let mut nanos = 0;
    // SAFETY: the host writes one u64.
    unsafe {
        proxy_get_current_time_nanoseconds(&mut nanos);
    }
    nanos
}
