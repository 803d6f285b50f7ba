//! A [`StreamHost`] that holds one request in memory, records what the stream does with it and
//! fails the host calls it is told to fail: the host of the stream's unit tests, of the
//! property tests and of the fuzz targets (tests/fuzz-checks/).

use super::headers::serialize_pairs;
use super::host::{Chosen, Count, HostError, StreamHost};

/// The status a failed call returns (proxy-wasm's `InternalFailure`); any error would do.
const FAILED: HostError = HostError(10);

#[derive(Clone, Debug, Default)]
pub struct ScriptedHost {
    /// The request's headers, in order, as Envoy holds them: (name, value).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub fail_read: bool,
    /// Header names whose add or replace fails.
    pub fail_writes_of: Vec<String>,
    pub fail_removes: bool,
    pub fail_response_code: bool,
    pub fail_response_flags: bool,
    pub fail_local_reply: bool,
    pub fail_random: bool,
    /// The random bytes handed out, one each, from this value on.
    pub random_seed: u8,
    pub response_code: Option<i64>,
    pub response_flags: Option<u64>,
    pub clock: u64,
    /// How often the stream read the header map, and the response flags.
    pub reads: usize,
    pub flags_reads: usize,
    /// Host calls that returned an error, of any kind.
    pub failed_calls: usize,
    pub counts: Vec<Count>,
    pub durations: Vec<(Chosen, u64)>,
    /// Local replies sent: (status, body, the header's name).
    pub local_replies: Vec<(u16, String, String)>,
    /// Response headers added (a sticky cookie's `Set-Cookie`).
    pub response_headers: Vec<(String, String)>,
    /// The weight gauges set: (destination, weight).
    pub weights_set: Vec<(Chosen, u32)>,
}

impl ScriptedHost {
    pub fn with_headers(headers: &[(&str, &str)]) -> Self {
        ScriptedHost {
            headers: headers
                .iter()
                .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
                .collect(),
            ..ScriptedHost::default()
        }
    }

    /// Every value the request has for a header, as bytes.
    pub fn raw_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| value.as_slice())
            .collect()
    }

    /// Every value the request has for a header, as text (for assertions).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.raw_values(name)
            .into_iter()
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect()
    }

    pub fn count_of(&self, what: Count) -> usize {
        self.counts.iter().filter(|&&seen| seen == what).count()
    }

    fn fail(&mut self) -> HostError {
        self.failed_calls += 1;
        FAILED
    }

    fn write(&mut self, name: &str, value: &str, replace: bool) -> Result<(), HostError> {
        if self.fail_writes_of.iter().any(|failing| failing == name) {
            return Err(self.fail());
        }
        if replace {
            self.headers.retain(|(key, _)| key != name.as_bytes());
        }
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        Ok(())
    }
}

impl StreamHost for ScriptedHost {
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError> {
        self.reads += 1;
        if self.fail_read {
            return Err(self.fail());
        }
        Ok(serialize_pairs(&self.headers))
    }

    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.write(name, value, true)
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.write(name, value, false)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        if self.fail_removes {
            return Err(self.fail());
        }
        self.headers.retain(|(key, _)| key != name.as_bytes());
        Ok(())
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        if self.fail_writes_of.iter().any(|failing| failing == name) {
            return Err(self.fail());
        }
        self.response_headers
            .push((name.to_string(), value.to_string()));
        Ok(())
    }

    fn random_bytes(&mut self, bytes: &mut [u8]) -> Result<(), HostError> {
        if self.fail_random {
            return Err(self.fail());
        }
        for byte in bytes {
            *byte = self.random_seed;
            self.random_seed = self.random_seed.wrapping_add(1);
        }
        Ok(())
    }

    fn response_code(&mut self) -> Result<Option<i64>, HostError> {
        if self.fail_response_code {
            return Err(self.fail());
        }
        Ok(self.response_code)
    }

    fn response_flags(&mut self) -> Result<Option<u64>, HostError> {
        self.flags_reads += 1;
        if self.fail_response_flags {
            return Err(self.fail());
        }
        Ok(self.response_flags)
    }

    fn now_nanos(&mut self) -> u64 {
        self.clock
    }

    fn count(&mut self, what: Count) {
        self.counts.push(what);
    }

    fn set_weight(&mut self, destination: Chosen, weight: u32) {
        self.weights_set.push((destination, weight));
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        body: &str,
        header: (&str, &str),
    ) -> Result<(), HostError> {
        if self.fail_local_reply {
            return Err(self.fail());
        }
        self.local_replies
            .push((status, body.to_string(), header.0.to_string()));
        Ok(())
    }

    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64) {
        self.durations.push((chosen, microseconds));
    }
}
