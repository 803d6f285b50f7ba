//! The lowest floor of a proxy-wasm HTTP filter, for `make bench`: the module exports only
//! what Envoy needs to load it and one callback, request headers, which returns Continue.
//! Envoy enters a module only for the callbacks it exports, so this is one VM entry per
//! request, where an SDK-built filter (`benches/empty-filter`) gets seven. The difference
//! between the two is the price of the SDK's exports, not of any work.

/// Where the host places values it returns; this module asks for none, but the ABI wants it.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Accepts any configuration.
#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_context_id: u32, _configuration_size: usize) -> u32 {
    1
}

/// Continue.
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: usize, _end: u32) -> u32 {
    0
}
