//! What a simulation runs: a config and its pushes, the traffic, how each version behaves over
//! time, the workers and their clocks. Times are virtual milliseconds from the start.

/// How a version answers from `from_ms` until `until_ms`; outside every window it answers
/// 200 at once. The last matching window wins.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    pub version: String,
    pub from_ms: u64,
    pub until_ms: u64,
    /// The share of its requests answered 503.
    pub error_ratio: f64,
    /// The share reset without a response (Envoy's `UR` flag).
    pub reset_ratio: f64,
    pub latency_ms: u64,
}

/// A config pushed to every worker at `at_ms` (each worker compiles it anew, as Envoy's
/// `on_configure`); streams already under way end under the config they started with.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    pub at_ms: u64,
    pub config: Vec<u8>,
}

/// From `at_ms` on, a worker's clock reads `offset_ms` from the true time (negative: behind;
/// a later step back is a smaller offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockStep {
    pub at_ms: u64,
    pub worker: usize,
    pub offset_ms: i64,
}

/// The requests: evenly spaced at `rate_per_s`, each on a worker drawn at random.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    pub rate_per_s: f64,
    pub path: String,
    pub authority: String,
    /// Drawn at random per request.
    pub methods: Vec<String>,
    /// A header carrying a sticky key, and how many distinct keys (drawn at random) it takes.
    pub sticky_header: Option<(String, u32)>,
    /// Further headers every request carries: (lower-case name, value).
    pub headers: Vec<(String, String)>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            rate_per_s: 100.0,
            path: "/".to_owned(),
            authority: "service".to_owned(),
            methods: vec!["GET".to_owned()],
            sticky_header: None,
            headers: Vec::new(),
        }
    }
}

/// A whole simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub config: Vec<u8>,
    pub pushes: Vec<Push>,
    /// The wall clock at virtual time 0, in ms since the epoch (a ramp's `start` is absolute).
    pub start_ms: u64,
    pub duration_ms: u64,
    pub workers: usize,
    pub seed: u64,
    pub traffic: Traffic,
    pub behaviours: Vec<Behaviour>,
    pub clock_steps: Vec<ClockStep>,
    /// How often each worker runs the root context's tick (the guard's merge, the ramps): the
    /// filter's `GUARD_TICK`.
    pub tick_ms: u64,
    /// The share of merges another worker's merge lands in the middle of (between the read
    /// and the compare-and-swap write), so that the write conflicts and is retried.
    pub conflict_ratio: f64,
    /// The length of a [`crate::sim::Row`].
    pub period_ms: u64,
    /// Keep every request's record (the invariants read them; the CLI does not need them).
    pub keep_requests: bool,
}

impl Scenario {
    pub fn new(config: &[u8]) -> Self {
        Scenario {
            config: config.to_vec(),
            pushes: Vec::new(),
            start_ms: 1_796_119_200_000,
            duration_ms: 60_000,
            workers: 2,
            seed: 1,
            traffic: Traffic::default(),
            behaviours: Vec::new(),
            clock_steps: Vec::new(),
            tick_ms: 250,
            conflict_ratio: 0.0,
            period_ms: 60_000,
            keep_requests: true,
        }
    }
}
