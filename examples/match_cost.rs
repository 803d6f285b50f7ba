//! What a plugin config costs on the host: the time to compile it (what `on_configure` does
//! before defining metrics), the heap it takes at the peak and once compiled, and the time
//! to match one request with the route index and with the plain in-order scan.
//!
//! ```text
//! cargo run --release --example match_cost -- CONFIG.json 'GET /api/items' 'x-tenant: acme-corp'
//! ```
//!
//! Prints one JSON object. `make bench-scale` runs it on the configs it generates; the figures
//! are in docs/performance.md. The heap is counted on the host, where pointers are twice the
//! size they are in the 32-bit Wasm module, so it is an upper bound for the module's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use traffic_split::config::{compile, describe_errors};
use traffic_split::plan::RequestView;

/// The system allocator, counting the bytes in use and their peak.
struct CountingAllocator;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let in_use = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(in_use, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(pointer, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// A request as its headers, `:method` and `:path` among them.
struct Request {
    headers: Vec<(String, Vec<u8>)>,
}

impl RequestView for Request {
    fn path(&mut self) -> Option<&[u8]> {
        self.header(":path")
    }
    fn method(&mut self) -> Option<&[u8]> {
        self.header(":method")
    }
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }
}

fn parse_request(request_line: &str, headers: &[String]) -> Option<Request> {
    let (method, path) = request_line.split_once(' ')?;
    let mut pairs = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
    ];
    for header in headers {
        let (name, value) = header.split_once(':')?;
        pairs.push((
            name.trim().to_ascii_lowercase(),
            value.trim().as_bytes().to_vec(),
        ));
    }
    Some(Request { headers: pairs })
}

/// Nanoseconds per call of `work`, the median of a few timed batches.
fn nanos_per_call(mut work: impl FnMut()) -> f64 {
    let batch = 2_000;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                work();
            }
            started.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (Some(config_path), Some(request_line)) = (arguments.first(), arguments.get(1)) else {
        eprintln!("usage: match_cost CONFIG.json 'METHOD PATH' ['NAME: VALUE']...");
        return ExitCode::from(2);
    };
    let Some(mut request) = parse_request(request_line, arguments.get(2..).unwrap_or_default())
    else {
        eprintln!("expected a request as 'METHOD PATH' and headers as 'NAME: VALUE'");
        return ExitCode::from(2);
    };
    let json = match std::fs::read(config_path) {
        Ok(json) => json,
        Err(error) => {
            eprintln!("{config_path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let plan = match compile(&json) {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("{config_path}: {}", describe_errors(&errors));
            return ExitCode::FAILURE;
        }
    };
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let peak_bytes = PEAK.load(Ordering::Relaxed) - before;
    let plan_bytes = IN_USE.load(Ordering::Relaxed) - before;

    let matched = plan.match_route(&mut request).map(|(index, _)| index);
    let linear = plan
        .routes
        .first_match_linear(&mut request)
        .map(|(index, _)| index);
    if matched != linear {
        eprintln!("the index matched {matched:?}, the in-order scan {linear:?}");
        return ExitCode::FAILURE;
    }
    let indexed_ns = nanos_per_call(|| {
        black_box(plan.match_route(black_box(&mut request)));
    });
    let linear_ns = nanos_per_call(|| {
        black_box(plan.routes.first_match_linear(black_box(&mut request)));
    });
    println!(
        "{{\"routes\": {}, \"config_bytes\": {}, \"compile_ms\": {compile_ms:.3}, \
         \"compile_peak_bytes\": {peak_bytes}, \"plan_bytes\": {plan_bytes}, \
         \"matched_route\": {}, \"match_ns\": {indexed_ns:.1}, \"linear_match_ns\": {linear_ns:.1}}}",
        plan.routes.len(),
        json.len(),
        matched.map_or("null".to_string(), |index| index.to_string()),
    );
    ExitCode::SUCCESS
}
