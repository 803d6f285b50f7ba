//! The run: virtual time, event by event. Every decision is the core's: [`compile`], the
//! route match, the choice and faults of [`Stream`], [`RouteState::merge_guard`] (the filter's
//! guard tick) and [`follow_ramp`]. The engine only plays Envoy: it delivers requests, hands
//! each one the filter let through to the router model (`super::router`), delivers its
//! response, runs each worker's tick, pushes configs and keeps the store.

use super::queue::{Queue, NANOS_PER_MS};
use super::random::Random;
use super::records::{GuardRecord, Periods, RequestRecord, Run, VersionAtClose};
use super::router::{self, Exchange, RouterPolicy};
use super::scenario::{Behaviour, Scenario};
use crate::config::compile;
use crate::metrics::{DestinationMetric, PluginMetric};
use crate::plan::Plan;
use crate::request::scripted_host::ScriptedHost;
use crate::request::{follow_ramp, Count, Stream, Verdict};
use crate::split::guard::memory_store::{CasMismatch, MemoryStore};
use crate::split::guard::{GuardEvent, RouteGuardState, SharedStore, Stored, Tally};
use crate::state::RouteState;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The plugin name the workers' guard keys carry.
const PLUGIN: &str = "simulation";

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
    queue: Queue<Event>,
    result: Run,
    guard_events: RefCell<Vec<GuardRecord>>,
    failed_merges: Cell<u64>,
    periods: Periods,
}

impl<'a> Engine<'a> {
    fn new(scenario: &'a Scenario, configs: Vec<&'a [u8]>) -> Self {
        let workers = scenario.workers.max(1);
        let mut engine = Engine {
            scenario,
            configs,
            workers: Vec::new(),
            store: MemoryStore::new(),
            random: Random::new(scenario.seed),
            queue: Queue::new(),
            result: Run::default(),
            guard_events: RefCell::new(Vec::new()),
            failed_merges: Cell::new(0),
            periods: Periods::default(),
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
        self.queue.schedule_ms(at_ms, event);
    }

    fn run(&mut self) {
        let end_nanos = self.scenario.duration_ms * NANOS_PER_MS;
        let period = self.scenario.period_ms.max(1);
        while let Some((at_nanos, event)) = self.queue.pop() {
            let at_ms = at_nanos / NANOS_PER_MS;
            while at_ms >= self.periods.start_ms + period
                && self.periods.start_ms < self.scenario.duration_ms
            {
                self.close_period(self.periods.start_ms + period);
            }
            match event {
                Event::Request if at_nanos < end_nanos => {
                    self.request(at_ms);
                    let rate = self.scenario.traffic.rate_per_s;
                    if rate > 0.0 {
                        let gap = (1e9 / rate).max(1.0) as u64;
                        self.queue.schedule_nanos(at_nanos + gap, Event::Request);
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
        while self.periods.start_ms < self.scenario.duration_ms {
            self.close_period(self.periods.start_ms + period);
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

    /// One request: drawn onto a worker, handled by the filter's core, played through Envoy's
    /// router to its version, recorded, and its end scheduled.
    fn request(&mut self, at_ms: u64) {
        let worker = self.random.below(self.workers.len() as u64) as usize;
        let Some(active) = self.workers.get(worker).map(|w| Rc::clone(&w.active)) else {
            return;
        };
        let (mut host, sticky_key) = self.new_request(worker, at_ms);
        let mut stream = Stream::default();
        let verdict = {
            let mut states = active.states.borrow_mut();
            stream.on_request_headers(&active.plan, &mut states, &mut host)
        };
        let mut record = RequestRecord {
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
            status: None,
            timed_out: false,
            attempts: 0,
            ended_ms: at_ms,
        };
        let routed = stream.chosen.and_then(|chosen| {
            let route = active.plan.routes.get(chosen.route)?;
            let version = route.destinations.get(chosen.destination)?.version.clone();
            Some((chosen, route, version))
        });
        let Some((chosen, route, version)) = routed else {
            if host.count_of(Count::Plugin(PluginMetric::Unmatched)) > 0 {
                self.result.unmatched += 1;
            }
            self.keep(record);
            return;
        };
        if let Some(state) = active.states.borrow().get(chosen.route) {
            record.weights = state.effective_weights(route);
            record.ejected = state.ejected().to_vec();
        }
        let exchange = self.through_envoy(verdict, &host, &version, at_ms);
        host.response_code = Some(i64::from(exchange.status));
        host.response_flags = Some(exchange.flags);
        record.route = Some(route.name.clone());
        record.version = Some(version.clone());
        record.fault = verdict == Verdict::Answered;
        record.error = record.fault || exchange.status >= 500;
        record.status = Some(exchange.status);
        record.timed_out = exchange.timed_out();
        record.attempts = exchange.attempts;
        record.ended_ms = at_ms.saturating_add(exchange.took_ms);
        let ends_ms = record.ended_ms;
        self.count(&record, exchange, chosen.destination);
        self.keep(record);
        let pending = Pending {
            worker,
            active: Rc::clone(&active),
            stream,
            host,
            version,
        };
        self.schedule(ends_ms, Event::End(Box::new(pending)));
    }

    /// A request's headers (method, path, authority, the scenario's headers, a sticky key) in
    /// a host on the worker's clock; the sticky key drawn.
    fn new_request(&mut self, worker: usize, at_ms: u64) -> (ScriptedHost, Option<u32>) {
        let traffic = &self.scenario.traffic;
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
        headers.extend(traffic.headers.iter().cloned());
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
        (host, sticky_key)
    }

    /// What Envoy answers a routed request, from the moment the filter is done with it: the
    /// fault's local reply, or the router's exchange with the version (after a delay fault's
    /// hold, which the deadline does not count). `took_ms` counts from `at_ms`.
    fn through_envoy(
        &mut self,
        verdict: Verdict,
        host: &ScriptedHost,
        version: &str,
        at_ms: u64,
    ) -> Exchange {
        let delay_ms = match verdict {
            Verdict::Answered => {
                return Exchange {
                    status: host.local_replies.first().map_or(0, |(status, ..)| *status),
                    flags: 0,
                    took_ms: 0,
                    attempts: 0,
                }
            }
            Verdict::Held { delay_ms } => delay_ms,
            Verdict::Continue => 0,
        };
        let routed_ms = at_ms.saturating_add(delay_ms);
        let policy = RouterPolicy::from_headers(&host.headers);
        let scenario = self.scenario;
        let mut exchange = router::exchange(&policy, &mut self.random, |after_ms| {
            behaviour(scenario, version, routed_ms.saturating_add(after_ms))
        });
        exchange.took_ms = exchange.took_ms.saturating_add(delay_ms);
        exchange
    }

    /// Counts a routed request in its period's row and its version's total.
    fn count(&mut self, record: &RequestRecord, exchange: Exchange, destination: usize) {
        let (Some(route), Some(version)) = (&record.route, &record.version) else {
            return;
        };
        *self.result.routed.entry(version.clone()).or_default() += 1;
        let row = self.periods.version_row(route, version);
        row.requests += 1;
        row.errors += u64::from(record.error);
        row.timeouts += u64::from(exchange.timed_out());
        row.retries += u64::from(exchange.attempts.saturating_sub(1));
        row.faults += u64::from(record.fault);
        row.probes += u64::from(record.ejected.get(destination).copied().unwrap_or(false));
    }

    fn keep(&mut self, record: RequestRecord) {
        if self.scenario.keep_requests {
            self.result.requests.push(record);
        }
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
        let timeouts = pending.stream.chosen.map_or(0, |chosen| {
            pending
                .host
                .count_of(Count::Destination(chosen, DestinationMetric::Timeouts))
        });
        if timeouts > 0 {
            *self
                .result
                .timeouts_counted
                .entry(pending.version.clone())
                .or_default() += timeouts as u64;
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

    fn close_period(&mut self, until_ms: u64) {
        let mut routes = Vec::new();
        if let Some(worker) = self.workers.first() {
            let active = &worker.active;
            let states = active.states.borrow();
            for (route, state) in active.plan.routes.iter().zip(states.iter()) {
                let weights = state.effective_weights(route);
                let versions = route
                    .destinations
                    .iter()
                    .enumerate()
                    .map(|(index, destination)| VersionAtClose {
                        version: destination.version.clone(),
                        weight: weights.get(index).copied().unwrap_or(0),
                        ejected: state.ejected().get(index).copied().unwrap_or(false),
                        latched: state.latched().get(index).copied().unwrap_or(false),
                    })
                    .collect();
                routes.push((route.name.clone(), versions));
            }
        }
        let rows = self
            .periods
            .close(until_ms, &self.guard_events.borrow(), routes);
        self.result.rows.extend(rows);
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

/// How `version` behaves at `at_ms`: the last window of the scenario's that holds it.
fn behaviour<'s>(scenario: &'s Scenario, version: &str, at_ms: u64) -> Option<&'s Behaviour> {
    scenario
        .behaviours
        .iter()
        .rev()
        .find(|b| b.version == version && b.from_ms <= at_ms && at_ms < b.until_ms)
}
