//! The run: virtual time, event by event. Every decision is the core's: [`compile`], the
//! route match, the choice and faults of [`Stream`], [`RouteState::merge_guard`] (the filter's
//! guard tick) and [`follow_ramp`]. The engine only plays Envoy: it delivers requests and
//! responses, runs each worker's tick, pushes configs and keeps the store.

use super::scenario::{Behaviour, Scenario};
use crate::config::compile;
use crate::metrics::PluginMetric;
use crate::plan::Plan;
use crate::request::scripted_host::ScriptedHost;
use crate::request::{follow_ramp, Count, Stream, Verdict};
use crate::split::guard::memory_store::{CasMismatch, MemoryStore};
use crate::split::guard::{GuardEvent, RouteGuardState, SharedStore, Stored, Tally};
use crate::state::RouteState;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::rc::Rc;

const NANOS_PER_MS: u64 = 1_000_000;
/// The `UR` bit of Envoy's `response.flags`.
const UPSTREAM_RESET_FLAG: u64 = 0x10;
/// The plugin name the workers' guard keys carry.
const PLUGIN: &str = "simulation";

/// One routed (or unmatched) request.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub at_ms: u64,
    pub worker: usize,
    /// Which config it ran under: 0 the first, then one per push.
    pub generation: usize,
    pub route: Option<String>,
    pub version: Option<String>,
    /// The weights in force on its worker when it was split (after the ramp moved), and which
    /// versions that worker had out, in destination order.
    pub weights: Vec<u32>,
    pub ejected: Vec<bool>,
    pub sticky_key: Option<u32>,
    /// An injected abort answered it.
    pub fault: bool,
    /// It ended as an error (503, a reset, or an abort), whatever the guard counts.
    pub error: bool,
}

/// A guard decision, as the worker whose merge made it saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardRecord {
    pub at_ms: u64,
    pub worker: usize,
    pub route: String,
    pub version: String,
    pub event: GuardEvent,
}

/// One version of one route over one period.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct VersionRow {
    pub version: String,
    /// The weight in force on worker 0 at the end of the period.
    pub weight: u32,
    pub requests: u64,
    pub errors: u64,
    pub faults: u64,
    /// Requests sent while their worker had the version out (probes).
    pub probes: u64,
    pub trips: u64,
    pub returns: u64,
    /// Out of the split on worker 0 at the end of the period.
    pub ejected: bool,
    /// ... latched there until the config changes (a halted rollout).
    pub latched: bool,
}

/// One route over one period.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Row {
    pub from_ms: u64,
    pub until_ms: u64,
    pub route: String,
    pub versions: Vec<VersionRow>,
}

/// What a run recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub requests: Vec<RequestRecord>,
    pub guard_events: Vec<GuardRecord>,
    pub rows: Vec<Row>,
    /// Per version name: requests routed to it, and requests that ended there (every worker,
    /// every config).
    pub routed: BTreeMap<String, u64>,
    pub ended: BTreeMap<String, u64>,
    pub unmatched: u64,
    /// Merges the store refused after every retry (the outcomes wait for the next tick).
    pub failed_merges: u64,
    /// At the end, per guarded route of the last config: each version's outcomes in the
    /// shared state's window.
    pub shared_windows: BTreeMap<String, Vec<Tally>>,
}

/// A worker's config, as the adapter's `Active`: streams keep the one they started under.
struct Active {
    generation: usize,
    plan: Plan,
    states: RefCell<Vec<RouteState>>,
    keys: Vec<Option<String>>,
}

impl Active {
    fn new(generation: usize, plan: Plan, now_nanos: u64) -> Self {
        let mut states = RouteState::for_plan(&plan);
        let mut host = ScriptedHost::default();
        for (index, (route, state)) in plan.routes.iter().zip(states.iter_mut()).enumerate() {
            follow_ramp(index, route, state, now_nanos, &mut host);
        }
        Active {
            generation,
            keys: plan
                .routes
                .iter()
                .map(|route| crate::worker::guard::guard_state_key(PLUGIN, route))
                .collect(),
            plan,
            states: RefCell::new(states),
        }
    }
}

struct Worker {
    active: Rc<Active>,
    clock_offset_ms: i64,
}

impl Worker {
    fn wall_ms(&self, start_ms: u64, at_ms: u64) -> u64 {
        start_ms
            .saturating_add(at_ms)
            .saturating_add_signed(self.clock_offset_ms)
    }
}

enum Event {
    Request,
    End(Box<Pending>),
    Tick(usize),
    Push(usize),
    ClockStep(usize),
}

struct Pending {
    worker: usize,
    active: Rc<Active>,
    stream: Stream,
    host: ScriptedHost,
    version: String,
}

/// splitmix64: small, fast and the same everywhere; the seed alone decides a run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }

    fn chance(&mut self, ratio: f64) -> bool {
        ratio > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < ratio
    }
}

/// The store as a worker's merge sees it when another worker's merge lands between its read
/// and its write: the first `set` runs `interleaved` first, so that it conflicts.
struct Interleaved<'a> {
    store: &'a MemoryStore,
    interleaved: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl SharedStore for Interleaved<'_> {
    type Error = CasMismatch;

    fn get(&self, key: &str) -> Result<Stored, CasMismatch> {
        self.store.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        let other = self.interleaved.borrow_mut().take();
        if let Some(other) = other {
            other();
        }
        self.store.set(key, value, cas)
    }
}

/// Runs a scenario. `Err`: the first config (or a pushed one) does not compile, with the
/// errors as the checker prints them.
pub fn run(scenario: &Scenario) -> Result<Run, String> {
    let configs: Vec<&[u8]> = std::iter::once(scenario.config.as_slice())
        .chain(scenario.pushes.iter().map(|push| push.config.as_slice()))
        .collect();
    for json in &configs {
        compile(json).map_err(|errors| crate::config::describe_errors(&errors))?;
    }
    let mut engine = Engine::new(scenario, configs);
    engine.run();
    Ok(engine.result)
}

struct Engine<'a> {
    scenario: &'a Scenario,
    /// Every config's JSON, compiled by each worker on its push, as each VM does.
    configs: Vec<&'a [u8]>,
    workers: Vec<Worker>,
    store: MemoryStore,
    random: Random,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    result: Run,
    guard_events: RefCell<Vec<GuardRecord>>,
    failed_merges: Cell<u64>,
    period: BTreeMap<String, BTreeMap<String, VersionRow>>,
    period_start_ms: u64,
}

impl<'a> Engine<'a> {
    fn new(scenario: &'a Scenario, configs: Vec<&'a [u8]>) -> Self {
        let workers = scenario.workers.max(1);
        let mut engine = Engine {
            scenario,
            configs,
            workers: Vec::new(),
            store: MemoryStore::new(),
            random: Random(scenario.seed),
            queue: BinaryHeap::new(),
            events: Vec::new(),
            result: Run::default(),
            guard_events: RefCell::new(Vec::new()),
            failed_merges: Cell::new(0),
            period: BTreeMap::new(),
            period_start_ms: 0,
        };
        for _ in 0..workers {
            let active = engine.configure(0, scenario.start_ms);
            engine.workers.push(Worker {
                active,
                clock_offset_ms: 0,
            });
        }
        let tick = scenario.tick_ms.max(1);
        for worker in 0..workers {
            // Workers' timers are not in step: each starts at its own phase.
            let phase = tick * worker as u64 / workers as u64;
            engine.schedule(phase, Event::Tick(worker));
        }
        for (index, push) in scenario.pushes.iter().enumerate() {
            engine.schedule(push.at_ms, Event::Push(index + 1));
        }
        for (index, step) in scenario.clock_steps.iter().enumerate() {
            engine.schedule(step.at_ms, Event::ClockStep(index));
        }
        engine.schedule(0, Event::Request);
        engine
    }

    fn configure(&self, generation: usize, wall_ms: u64) -> Rc<Active> {
        // Every config compiled once before the run; a refusal here cannot happen.
        let plan = self
            .configs
            .get(generation)
            .and_then(|json| compile(json).ok())
            .unwrap_or_else(|| Plan::pass_through(String::new(), String::new()));
        let active = Active::new(generation, plan, wall_ms * NANOS_PER_MS);
        // As the filter's on_configure does: the decisions already in shared data before the
        // first request.
        if let Ok(mut states) = active.states.try_borrow_mut() {
            let routes = active.plan.routes.iter().zip(states.iter_mut());
            for ((route, state), key) in routes.zip(&active.keys) {
                if let Some(key) = key {
                    state.load_guard(route, &self.store, key, wall_ms);
                }
            }
        }
        Rc::new(active)
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.schedule_nanos(at_ms * NANOS_PER_MS, event);
    }

    fn schedule_nanos(&mut self, at_nanos: u64, event: Event) {
        let id = self.events.len();
        self.events.push(Some(event));
        self.queue.push(Reverse((at_nanos, id as u64, id)));
    }

    fn run(&mut self) {
        let end_nanos = self.scenario.duration_ms * NANOS_PER_MS;
        let period = self.scenario.period_ms.max(1);
        while let Some(Reverse((at_nanos, _, id))) = self.queue.pop() {
            let at_ms = at_nanos / NANOS_PER_MS;
            while at_ms >= self.period_start_ms + period
                && self.period_start_ms < self.scenario.duration_ms
            {
                self.close_period(self.period_start_ms + period);
            }
            let Some(event) = self.events.get_mut(id).and_then(Option::take) else {
                continue;
            };
            match event {
                Event::Request if at_nanos < end_nanos => {
                    self.request(at_ms);
                    let rate = self.scenario.traffic.rate_per_s;
                    if rate > 0.0 {
                        let gap = (1e9 / rate).max(1.0) as u64;
                        self.schedule_nanos(at_nanos + gap, Event::Request);
                    }
                }
                Event::Request => {}
                Event::End(pending) => self.end(*pending, at_ms),
                Event::Tick(worker) => {
                    self.tick(worker, at_ms);
                    if at_nanos < end_nanos {
                        self.schedule(at_ms + self.scenario.tick_ms.max(1), Event::Tick(worker));
                    }
                }
                Event::Push(generation) => {
                    for index in 0..self.workers.len() {
                        let wall = self.wall_ms(index, at_ms);
                        let active = self.configure(generation, wall);
                        if let Some(worker) = self.workers.get_mut(index) {
                            worker.active = active;
                        }
                    }
                }
                Event::ClockStep(index) => {
                    if let Some(step) = self.scenario.clock_steps.get(index) {
                        if let Some(worker) = self.workers.get_mut(step.worker) {
                            worker.clock_offset_ms = step.offset_ms;
                        }
                    }
                }
            }
        }
        while self.period_start_ms < self.scenario.duration_ms {
            self.close_period(self.period_start_ms + period);
        }
        self.result.guard_events = self.guard_events.take();
        if let Some(worker) = self.workers.first() {
            let active = &worker.active;
            for (route, key) in active.plan.routes.iter().zip(&active.keys) {
                let Some(key) = key else { continue };
                let Ok((Some(bytes), _)) = self.store.get(key) else {
                    continue;
                };
                let state = RouteGuardState::decode(&bytes, route.destinations.len());
                let windows = state
                    .versions
                    .iter()
                    .map(|version| {
                        let mut window = Tally::default();
                        for (_, tally) in &version.buckets {
                            window.add(*tally);
                        }
                        window
                    })
                    .collect();
                self.result
                    .shared_windows
                    .insert(route.name.clone(), windows);
            }
        }
        self.result.failed_merges = self.failed_merges.get();
    }

    fn wall_ms(&self, worker: usize, at_ms: u64) -> u64 {
        self.workers
            .get(worker)
            .map_or(self.scenario.start_ms + at_ms, |w| {
                w.wall_ms(self.scenario.start_ms, at_ms)
            })
    }

    fn behaviour(&self, version: &str, at_ms: u64) -> Option<&Behaviour> {
        self.scenario
            .behaviours
            .iter()
            .rev()
            .find(|b| b.version == version && b.from_ms <= at_ms && at_ms < b.until_ms)
    }

    fn request(&mut self, at_ms: u64) {
        let traffic = &self.scenario.traffic;
        let worker = self.random.below(self.workers.len() as u64) as usize;
        let method = traffic
            .methods
            .get(self.random.below(traffic.methods.len() as u64) as usize)
            .cloned()
            .unwrap_or_else(|| "GET".to_owned());
        let mut headers = vec![
            (":method".to_owned(), method),
            (":path".to_owned(), traffic.path.clone()),
            (":authority".to_owned(), traffic.authority.clone()),
        ];
        let mut sticky_key = None;
        if let Some((header, keys)) = &traffic.sticky_header {
            let key = self.random.below(u64::from(*keys).max(1)) as u32;
            sticky_key = Some(key);
            headers.push((header.clone(), format!("key-{key}")));
        }
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut host = ScriptedHost::with_headers(&pairs);
        host.clock = self.wall_ms(worker, at_ms) * NANOS_PER_MS;
        host.random_seed = self.random.next() as u8;
        let Some(active) = self.workers.get(worker).map(|w| Rc::clone(&w.active)) else {
            return;
        };
        let mut stream = Stream::default();
        let verdict = {
            let mut states = active.states.borrow_mut();
            stream.on_request_headers(&active.plan, &mut states, &mut host)
        };
        let Some(chosen) = stream.chosen else {
            if host.count_of(Count::Plugin(PluginMetric::Unmatched)) > 0 {
                self.result.unmatched += 1;
            }
            if self.scenario.keep_requests {
                self.result.requests.push(RequestRecord {
                    at_ms,
                    worker,
                    generation: active.generation,
                    route: None,
                    version: None,
                    weights: Vec::new(),
                    ejected: Vec::new(),
                    sticky_key,
                    fault: false,
                    error: false,
                });
            }
            return;
        };
        let Some(route) = active.plan.routes.get(chosen.route) else {
            return;
        };
        let version = route
            .destinations
            .get(chosen.destination)
            .map(|d| d.version.clone())
            .unwrap_or_default();
        let (weights, ejected) = {
            let states = active.states.borrow();
            states
                .get(chosen.route)
                .map_or((Vec::new(), Vec::new()), |state| {
                    (state.effective_weights(route), state.ejected().to_vec())
                })
        };
        let probe = ejected.get(chosen.destination).copied().unwrap_or(false);
        *self.result.routed.entry(version.clone()).or_default() += 1;
        let behaviour = self.behaviour(&version, at_ms).cloned();
        let mut latency_ms = behaviour.as_ref().map_or(0, |b| b.latency_ms);
        let (fault, error) = match verdict {
            Verdict::Answered => {
                host.response_code = host
                    .local_replies
                    .first()
                    .map(|(status, ..)| i64::from(*status));
                latency_ms = 0;
                (true, true)
            }
            Verdict::Continue | Verdict::Held { .. } => {
                if let Verdict::Held { delay_ms } = verdict {
                    latency_ms += delay_ms;
                }
                let reset = behaviour
                    .as_ref()
                    .is_some_and(|b| self.random.chance(b.reset_ratio));
                let failed = behaviour
                    .as_ref()
                    .is_some_and(|b| self.random.chance(b.error_ratio));
                if reset {
                    host.response_code = None;
                    host.response_flags = Some(UPSTREAM_RESET_FLAG);
                } else {
                    host.response_code = Some(if failed { 503 } else { 200 });
                }
                (false, reset || failed)
            }
        };
        let row = self.version_row(&route.name, &version);
        row.requests += 1;
        row.errors += u64::from(error);
        row.faults += u64::from(fault);
        row.probes += u64::from(probe);
        if self.scenario.keep_requests {
            self.result.requests.push(RequestRecord {
                at_ms,
                worker,
                generation: active.generation,
                route: Some(route.name.clone()),
                version: Some(version.clone()),
                weights,
                ejected,
                sticky_key,
                fault,
                error,
            });
        }
        let pending = Pending {
            worker,
            active: Rc::clone(&active),
            stream,
            host,
            version,
        };
        self.schedule(at_ms + latency_ms, Event::End(Box::new(pending)));
    }

    fn end(&mut self, mut pending: Pending, at_ms: u64) {
        pending.host.clock = self.wall_ms(pending.worker, at_ms) * NANOS_PER_MS;
        pending.stream.on_response_headers(&mut pending.host);
        {
            let mut states = pending.active.states.borrow_mut();
            pending
                .stream
                .on_end(&pending.active.plan, &mut states, &mut pending.host);
        }
        *self.result.ended.entry(pending.version).or_default() += 1;
    }

    fn tick(&mut self, worker: usize, at_ms: u64) {
        // Another worker whose merge lands in the middle of this one's (the first route's).
        let workers = self.workers.len();
        let other = (workers > 1 && self.random.chance(self.scenario.conflict_ratio))
            .then(|| (worker + 1 + self.random.below(workers as u64 - 1) as usize) % workers)
            .and_then(|o| {
                let active = Rc::clone(&self.workers.get(o)?.active);
                Some((o, active, self.wall_ms(o, at_ms)))
            });
        let wall = self.wall_ms(worker, at_ms);
        let Some(active) = self.workers.get(worker).map(|w| Rc::clone(&w.active)) else {
            return;
        };
        let mut used_interleave = false;
        for index in 0..active.plan.routes.len() {
            let Some(Some(key)) = active.keys.get(index) else {
                continue;
            };
            let interleaved: Option<Box<dyn FnOnce() + '_>> = match &other {
                Some((o, other, other_wall)) if !used_interleave => {
                    used_interleave = true;
                    let (o, other, other_wall) = (*o, Rc::clone(other), *other_wall);
                    let store = &self.store;
                    let records = &self.guard_events;
                    let failed = &self.failed_merges;
                    Some(Box::new(move || {
                        merge_route(&other, o, key, store, other_wall, at_ms, records, failed);
                    }))
                }
                _ => None,
            };
            let store = Interleaved {
                store: &self.store,
                interleaved: RefCell::new(interleaved),
            };
            merge_route(
                &active,
                worker,
                key,
                &store,
                wall,
                at_ms,
                &self.guard_events,
                &self.failed_merges,
            );
        }
        let mut host = ScriptedHost::default();
        let mut states = active.states.borrow_mut();
        for (index, (route, state)) in active.plan.routes.iter().zip(states.iter_mut()).enumerate()
        {
            follow_ramp(index, route, state, wall * NANOS_PER_MS, &mut host);
        }
    }

    fn version_row(&mut self, route: &str, version: &str) -> &mut VersionRow {
        self.period
            .entry(route.to_owned())
            .or_default()
            .entry(version.to_owned())
            .or_insert_with(|| VersionRow {
                version: version.to_owned(),
                ..VersionRow::default()
            })
    }

    fn close_period(&mut self, until_ms: u64) {
        let from_ms = self.period_start_ms;
        for record in self.guard_events.borrow().iter() {
            if record.at_ms < from_ms || record.at_ms >= until_ms {
                continue;
            }
            let row = self
                .period
                .entry(record.route.clone())
                .or_default()
                .entry(record.version.clone())
                .or_insert_with(|| VersionRow {
                    version: record.version.clone(),
                    ..VersionRow::default()
                });
            match record.event {
                GuardEvent::Tripped { .. } => row.trips += 1,
                GuardEvent::Returned { .. } => row.returns += 1,
                GuardEvent::Held { .. } => {}
            }
        }
        let mut period = std::mem::take(&mut self.period);
        if let Some(worker) = self.workers.first() {
            let active = &worker.active;
            let states = active.states.borrow();
            for (route, state) in active.plan.routes.iter().zip(states.iter()) {
                let versions = period.entry(route.name.clone()).or_default();
                let weights = state.effective_weights(route);
                for (index, destination) in route.destinations.iter().enumerate() {
                    let row = versions
                        .entry(destination.version.clone())
                        .or_insert_with(|| VersionRow {
                            version: destination.version.clone(),
                            ..VersionRow::default()
                        });
                    row.weight = weights.get(index).copied().unwrap_or(0);
                    row.ejected = state.ejected().get(index).copied().unwrap_or(false);
                    row.latched = state.latched().get(index).copied().unwrap_or(false);
                }
            }
        }
        for (route, versions) in period {
            self.result.rows.push(Row {
                from_ms,
                until_ms,
                route,
                versions: versions.into_values().collect(),
            });
        }
        self.period_start_ms = until_ms;
    }
}

/// One worker's guard tick for one route, as the filter's `merge_all` runs it. The route is
/// found by its shared-data key, so that an interleaved worker merges its own route of that key.
#[allow(clippy::too_many_arguments)]
fn merge_route<S: SharedStore>(
    active: &Active,
    worker: usize,
    key: &str,
    store: &S,
    wall_ms: u64,
    at_ms: u64,
    records: &RefCell<Vec<GuardRecord>>,
    failed: &Cell<u64>,
) {
    let Some(index) = active.keys.iter().position(|k| k.as_deref() == Some(key)) else {
        return;
    };
    let Some(route) = active.plan.routes.get(index) else {
        return;
    };
    let result = {
        let mut states = active.states.borrow_mut();
        let Some(state) = states.get_mut(index) else {
            return;
        };
        state.merge_guard(route, store, key, &|| wall_ms)
    };
    match result {
        Ok((events, _)) => {
            let mut records = records.borrow_mut();
            for event in events {
                let destination = match event {
                    GuardEvent::Tripped { destination, .. }
                    | GuardEvent::Returned { destination, .. }
                    | GuardEvent::Held { destination, .. } => destination,
                };
                records.push(GuardRecord {
                    at_ms,
                    worker,
                    route: route.name.clone(),
                    version: route
                        .destinations
                        .get(destination)
                        .map(|d| d.version.clone())
                        .unwrap_or_default(),
                    event,
                });
            }
        }
        Err(_) => {
            failed.set(failed.get() + 1);
        }
    }
}
