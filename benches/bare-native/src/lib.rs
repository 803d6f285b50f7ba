//! The floor of an Envoy dynamic module, for `make bench`: every hook Envoy 1.40 requires of an
//! HTTP filter module, each returning at once. Envoy still creates its C++ filter per stream
//! and enters the module for each hook (new, request and response headers, stream complete,
//! destroy), so the difference between this floor and native routing is what loading any
//! dynamic module as an HTTP filter costs; the difference between the full native module and
//! this floor is what traffic-split does. Nothing here touches a header or a metric, so Envoy
//! routes every request by its route table's fallback (one version).
//!
//! Built with the `header-writes` feature, it is the floor of a module that splits the way
//! traffic-split does: its request hook writes the three headers the benchmark's request gets
//! (version, cluster, deadline), always the same ones, and clears the route cache so that Envoy
//! routes on them, and does nothing else. The difference between native routing and this floor
//! is what routing by headers a dynamic module writes costs in Envoy, before any decision,
//! header read or metric of the module's own.
//!
//! The hooks and the ABI version string are those of native/src (`../shared/notes` measured
//! which ones Envoy resolves); this crate does not link the native module, whose symbols would
//! clash with its own.

use std::ffi::{c_char, c_void};

/// Envoy 1.40's dynamic-module ABI (native/src/abi.rs `ABI_VERSION_C`).
const ABI_VERSION_C: &[u8] = b"v0.2.0\0";

/// A non-null handle for the config and every filter: Envoy only hands it back.
const HANDLE: *const c_void = ABI_VERSION_C.as_ptr().cast();

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION_C.as_ptr().cast()
}

/// A buffer Envoy lends (`envoy_dynamic_module_type_envoy_buffer`), never read here.
#[repr(C)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _envoy: *const c_void,
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    HANDLE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _config: *const c_void,
    _envoy: *const c_void,
) -> *const c_void {
    HANDLE
}

/// Hooks that take (a pointer, a pointer, a flag) and answer Continue (0).
macro_rules! continue_hooks {
    ($($name:ident),* $(,)?) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_envoy: *const c_void, _filter: *const c_void, _end: bool) -> u32 {
            0
        }
    )*};
}

#[cfg(not(feature = "header-writes"))]
continue_hooks!(envoy_dynamic_module_on_http_filter_request_headers);

continue_hooks!(
    envoy_dynamic_module_on_http_filter_request_body,
    envoy_dynamic_module_on_http_filter_response_headers,
    envoy_dynamic_module_on_http_filter_response_body,
);

/// Hooks that take (a pointer, a pointer) and answer Continue (0).
macro_rules! trailer_hooks {
    ($($name:ident),* $(,)?) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_envoy: *const c_void, _filter: *const c_void) -> u32 {
            0
        }
    )*};
}

trailer_hooks!(
    envoy_dynamic_module_on_http_filter_request_trailers,
    envoy_dynamic_module_on_http_filter_response_trailers,
);

/// Hooks whose arguments this floor never reads and that return nothing.
macro_rules! nothing_hooks {
    ($($name:ident),* $(,)?) => {$(
        #[no_mangle]
        pub extern "C" fn $name() {}
    )*};
}

nothing_hooks!(
    envoy_dynamic_module_on_http_filter_config_destroy,
    envoy_dynamic_module_on_http_filter_stream_complete,
    envoy_dynamic_module_on_http_filter_destroy,
    envoy_dynamic_module_on_http_filter_http_callout_done,
    envoy_dynamic_module_on_http_filter_http_stream_headers,
    envoy_dynamic_module_on_http_filter_http_stream_data,
    envoy_dynamic_module_on_http_filter_http_stream_trailers,
    envoy_dynamic_module_on_http_filter_http_stream_complete,
    envoy_dynamic_module_on_http_filter_http_stream_reset,
    envoy_dynamic_module_on_http_filter_scheduled,
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark,
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark,
);

/// The floor of a header-routing module (`header-writes`): what traffic-split writes for the
/// benchmark's request (bench/envoy/traffic-split-native.yaml, route `api`, its `1s` timeout),
/// in the same split, and the route cache cleared.
#[cfg(feature = "header-writes")]
mod header_writes {
    use std::cell::Cell;
    use std::ffi::{c_char, c_void};

    /// `envoy_dynamic_module_type_module_buffer` (native/src/abi.rs `ModuleBuffer`).
    #[repr(C)]
    pub struct ModuleBuffer {
        ptr: *const c_char,
        length: usize,
    }

    impl ModuleBuffer {
        fn of(text: &'static str) -> ModuleBuffer {
            ModuleBuffer {
                ptr: text.as_ptr().cast(),
                length: text.len(),
            }
        }
    }

    /// `envoy_dynamic_module_type_http_header_type`: the request headers.
    const REQUEST_HEADERS: u32 = 0;

    /// The (version, cluster) of each request in a cycle of 20: the benchmark's split, 80 / 15
    /// / 5, so that the upstreams see the same mix as under the full module.
    const SPLIT: [(&str, &str); 3] = [
        ("v1", "service-v1"),
        ("v2", "service-v2"),
        ("v3", "service-v3"),
    ];

    /// The deadline of the benchmark's route (`"timeout": "1s"`).
    const DEADLINE: (&str, &str) = ("x-envoy-upstream-rq-timeout-ms", "1000");

    thread_local! {
        static NEXT: Cell<u32> = const { Cell::new(0) };
    }

    fn next_destination() -> (&'static str, &'static str) {
        let at = NEXT.with(|next| {
            let at = next.get();
            next.set((at + 1) % 20);
            at
        });
        SPLIT[match at {
            0..16 => 0,
            16..19 => 1,
            _ => 2,
        }]
    }

    extern "C" {
        fn envoy_dynamic_module_callback_http_add_header(
            filter: *const c_void,
            header_type: u32,
            key: ModuleBuffer,
            value: ModuleBuffer,
        ) -> bool;
        fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *const c_void);
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
        envoy: *const c_void,
        _filter: *const c_void,
        _end: bool,
    ) -> u32 {
        let (version, cluster) = next_destination();
        for (name, value) in [
            ("x-split-version", version),
            ("x-split-cluster", cluster),
            DEADLINE,
        ] {
            // SAFETY: Envoy's filter pointer for this stream, within its hook; Envoy only reads
            // the two static buffers, within the call.
            unsafe {
                envoy_dynamic_module_callback_http_add_header(
                    envoy,
                    REQUEST_HEADERS,
                    ModuleBuffer::of(name),
                    ModuleBuffer::of(value),
                );
            }
        }
        // SAFETY: as above.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(envoy) };
        0
    }
}
