//! The run: virtual time, event by event. Every decision is the core's: each simulated Envoy
//! worker is a core [`Worker`] (configure on each push, tick, the streams' callbacks), as in
//! the proxy-wasm adapter and the native module. The engine only plays Envoy: it delivers
//! requests, hands each one the filter let through to the router model (`super::router`),
//! delivers its response, runs each worker's tick, pushes configs and keeps the store.

use super::host::SimHost;
use super::queue::{Queue, NANOS_PER_MS};
use super::random::Random;
use super::records::{GuardRecord, Periods, RequestRecord, Run, VersionAtClose};
use super::router::{self, Exchange, RouterPolicy};
use super::scenario::{Behaviour, Scenario};
use crate::config::compile;
use crate::metrics::{DestinationMetric, PluginMetric};
use crate::request::scripted_host::ScriptedHost;
use crate::request::{Count, Stream, Verdict};
use crate::split::guard::memory_store::MemoryStore;
use crate::split::guard::{GuardEvent, RouteGuardState, SharedStore, Tally};
use crate::worker::{Capabilities, DefinedMetrics, Refused, RouteEvent, TickReport, Worker};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The plugin name the workers' guard keys carry.
const PLUGIN: &str = "simulation";

/// One simulated Envoy worker: the core [`Worker`] of its configuration (streams keep the one
/// they started under), which config that is, its VM's metric definitions, and its clock.
struct EnvoyWorker {
    worker: Rc<Worker>,
    generation: usize,
    defined: DefinedMetrics,
    last_metric_id: Cell<u32>,
    clock_offset_ms: i64,
}

impl EnvoyWorker {
    /// A worker's VM and its first configuration, at `wall_ms` on its clock.
    fn start(json: &[u8], wall_ms: u64, store: &MemoryStore) -> Result<Self, Refused> {
        let last_metric_id = Cell::new(0);
        let mut defined = DefinedMetrics::default();
        let worker = configured(json, wall_ms, store, &last_metric_id, &mut defined)?;
        Ok(EnvoyWorker {
            worker: Rc::new(worker),
            generation: 0,
            defined,
            last_metric_id,
            clock_offset_ms: 0,
        })
    }

    /// A push: config `generation` replaces the one serving, unless it is refused. Streams
    /// under way end under the one they started with.
    fn push(&mut self, generation: usize, json: &[u8], wall_ms: u64, store: &MemoryStore) {
        let pushed = configured(
            json,
            wall_ms,
            store,
            &self.last_metric_id,
            &mut self.defined,
        );
        if let Ok(worker) = pushed {
            self.worker = Rc::new(worker);
            self.generation = generation;
        }
    }

    fn wall_ms(&self, start_ms: u64, at_ms: u64) -> u64 {
        start_ms
            .saturating_add(at_ms)
            .saturating_add_signed(self.clock_offset_ms)
    }
}

/// A worker's configuration, as Envoy's `on_configure` makes it: compiled, its metrics defined
/// (each name once per VM), the decisions already in the store taken in before its first
/// request, its ramps at the clock.
fn configured(
    json: &[u8],
    wall_ms: u64,
    store: &MemoryStore,
    last_metric_id: &Cell<u32>,
    defined: &mut DefinedMetrics,
) -> Result<Worker, Refused> {
    let host = SimHost::new(wall_ms * NANOS_PER_MS, store, last_metric_id);
    Worker::configure(json, PLUGIN, Capabilities::default(), &host, defined)
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
    configured: Rc<Worker>,
    stream: Stream,
    host: ScriptedHost,
    version: String,
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
    let mut engine = Engine::new(scenario, configs)?;
    engine.run();
    Ok(engine.result)
}

struct Engine<'a> {
    scenario: &'a Scenario,
    /// Every config's JSON, compiled by each worker on its push, as each VM does.
    configs: Vec<&'a [u8]>,
    workers: Vec<EnvoyWorker>,
    store: MemoryStore,
    random: Random,
    queue: Queue<Event>,
    result: Run,
    guard_events: RefCell<Vec<GuardRecord>>,
    failed_merges: Cell<u64>,
    periods: Periods,
}

impl<'a> Engine<'a> {
    fn new(scenario: &'a Scenario, configs: Vec<&'a [u8]>) -> Result<Self, String> {
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
        let first = engine.configs.first().copied().unwrap_or_default();
        for _ in 0..workers {
            let envoy = EnvoyWorker::start(first, scenario.start_ms, &engine.store)
                .map_err(|refused| refused.0)?;
            engine.workers.push(envoy);
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
        Ok(engine)
    }

    /// Every worker compiles the pushed config `generation` at `at_ms` on its clock. Every
    /// config compiled once before the run, so none is refused here.
    fn push(&mut self, generation: usize, at_ms: u64) {
        let Some(json) = self.configs.get(generation).copied() else {
            return;
        };
        for envoy in &mut self.workers {
            let wall_ms = envoy.wall_ms(self.scenario.start_ms, at_ms);
            envoy.push(generation, json, wall_ms, &self.store);
        }
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
                Event::Push(generation) => self.push(generation, at_ms),
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
        if let Some(envoy) = self.workers.first() {
            let worker = &envoy.worker;
            for (route, key) in worker.plan().routes.iter().zip(worker.guard_keys()) {
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
        let Some((configured, generation)) = self
            .workers
            .get(worker)
            .map(|envoy| (Rc::clone(&envoy.worker), envoy.generation))
        else {
            return;
        };
        let (mut host, sticky_key) = self.new_request(worker, at_ms);
        let mut stream = Stream::default();
        let verdict = configured.on_request_headers(&mut stream, &mut host);
        let mut record = RequestRecord {
            at_ms,
            worker,
            generation,
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
            let route = configured.plan().routes.get(chosen.route)?;
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
        if let Some((weights, ejected)) = configured.with_state(chosen.route, |state| {
            (state.effective_weights(route), state.ejected().to_vec())
        }) {
            record.weights = weights;
            record.ejected = ejected;
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
            configured: Rc::clone(&configured),
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
        let configured = &pending.configured;
        configured.on_response_headers(&mut pending.stream, &mut pending.host);
        configured.on_end(&pending.stream, &mut pending.host);
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

    /// Worker `index`'s timer tick: the core's merge of every guard and its ramps. With the
    /// scenario's `conflict_ratio`, another worker's tick lands between this one's first read
    /// of the store and its write, so that the write conflicts and is retried.
    fn tick(&mut self, index: usize, at_ms: u64) {
        let workers = self.workers.len();
        let other = (workers > 1 && self.random.chance(self.scenario.conflict_ratio))
            .then(|| (index + 1 + self.random.below(workers as u64 - 1) as usize) % workers);
        let Some(envoy) = self.workers.get(index) else {
            return;
        };
        let mut host = SimHost::new(
            self.wall_ms(index, at_ms) * NANOS_PER_MS,
            &self.store,
            &envoy.last_metric_id,
        );
        if let Some((o, other)) = other.and_then(|o| Some((o, self.workers.get(o)?))) {
            let other_host = SimHost::new(
                self.wall_ms(o, at_ms) * NANOS_PER_MS,
                &self.store,
                &other.last_metric_id,
            );
            let other_worker = Rc::clone(&other.worker);
            let (records, failed) = (&self.guard_events, &self.failed_merges);
            host = host.interleave(Box::new(move || {
                let report = other_worker.tick(&other_host);
                record_tick(&other_worker, o, at_ms, report, records, failed);
            }));
        }
        let report = envoy.worker.tick(&host);
        record_tick(
            &envoy.worker,
            index,
            at_ms,
            report,
            &self.guard_events,
            &self.failed_merges,
        );
    }

    fn close_period(&mut self, until_ms: u64) {
        let mut routes = Vec::new();
        if let Some(envoy) = self.workers.first() {
            let worker = &envoy.worker;
            let states = worker.states();
            for (route, state) in worker.plan().routes.iter().zip(states.iter()) {
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

/// Records what a worker's tick decided: its guard events, and the merges the store refused.
fn record_tick(
    worker: &Worker,
    index: usize,
    at_ms: u64,
    report: TickReport,
    records: &RefCell<Vec<GuardRecord>>,
    failed: &Cell<u64>,
) {
    failed.set(failed.get() + u64::from(report.failed_merges));
    let mut records = records.borrow_mut();
    for RouteEvent { route, event } in report.guard_events {
        let Some(route) = worker.plan().routes.get(route) else {
            continue;
        };
        let destination = match event {
            GuardEvent::Tripped { destination, .. }
            | GuardEvent::Returned { destination, .. }
            | GuardEvent::Held { destination, .. } => destination,
        };
        records.push(GuardRecord {
            at_ms,
            worker: index,
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

/// How `version` behaves at `at_ms`: the last window of the scenario's that holds it.
fn behaviour<'s>(scenario: &'s Scenario, version: &str, at_ms: u64) -> Option<&'s Behaviour> {
    scenario
        .behaviours
        .iter()
        .rev()
        .find(|b| b.version == version && b.from_ms <= at_ms && at_ms < b.until_ms)
}
