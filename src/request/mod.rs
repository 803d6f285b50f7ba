//! What the filter does for one HTTP stream, against a small host trait.
//! - [`stream`]: the stream's callbacks: request headers, response headers, end;
//! - [`host`]: the [`StreamHost`] trait and what a stream tells it to count;
//! - [`headers`]: the header map as proxy-wasm serializes it, read in place and written;
//! - `scripted_host` (feature `testing`, and unit tests): an in-memory host that fails on cue.

pub mod headers;
pub mod host;
mod host_request;
#[cfg(any(test, feature = "testing"))]
pub mod scripted_host;
pub mod stream;

pub use host::{Chosen, Count, HostError, StreamHost};
pub use stream::{follow_rollout, Stream, Verdict, FAULT_BODY, FAULT_HEADER};
