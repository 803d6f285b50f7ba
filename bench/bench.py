#!/usr/bin/env python3
"""The benchmark of traffic-split against Envoy's native routing (`make bench`, `make soak`).

`bench`: one front Envoy per variant (the table VARIANTS: native routing, empty Wasm filters,
the same split written in Envoy's Lua filter, our filter with full and with request-only
metrics), the same request through each, in rounds that alternate the variants, and the
medians of: front Envoy CPU time per request, requests per second at a fixed concurrency,
latency p50/p99. Also the module's size before and after `wasm-opt -Oz`, and each front Envoy's
RSS after its first 100k requests. The targets (the table TARGETS) are checked at the end, one
PASS/FAIL line each; the exit status is 1 when one fails. Written to build/bench.json.

`scale`: CPU per request against the number of routes (5 to 5,000, the matched one last, and a
request no route matches) and the matched route's destinations (2 to 50), for the filter and for
Envoy's own route table holding the same routes, in alternated rounds; time to /ready and memory
at 5 and 10,000 routes; the filter's compile time, heap and ns per match on the host
(examples/match_cost.rs). Prints a table, checks the targets (5,000 routes within 10 % of 5, and
below native), writes build/scale.json and the chart build/scale.png (gnuplot).

`soak`: 1M requests through the filter; the front Envoy's RSS after the first 100k and after
every further 100k, checked against its target in TARGETS. Written to build/soak.json.

The front Envoys run with --concurrency 1, pinned to CPU 0; the upstream Envoy (direct_response
listeners) and the load generator share the other CPUs, so the front Envoy is the bottleneck and
its CPU time per request is measured undisturbed. Standard library only.
"""

import argparse
import json
import operator
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "bench" / "envoy"
WRK_SCRIPT = ROOT / "bench" / "report.lua"
BUILD = ROOT / "build"
ENVOY = os.environ.get("ENVOY_BIN", str(ROOT / ".venv" / "bin" / "envoy"))
# What cargo builds, and the module we ship: `make build` keeps only the callbacks the filter
# uses (wasm-metadce) and optimises it for size (wasm-opt -Oz).
RAW_WASM = ROOT / "target/wasm32-wasip1/release/traffic_split.wasm"
WASM = Path(os.environ.get("TRAFFIC_SPLIT_WASM", BUILD / "traffic_split.wasm"))
# The modules a variant can load, by the name VARIANTS gives them; "filter" is the module under
# test (the shipped build/traffic_split.wasm, or --wasm).
MODULES = {
    "bare": ROOT / "target/wasm32-wasip1/release/bare_filter.wasm",
    "empty": ROOT / "target/wasm32-wasip1/release/empty_filter.wasm",
}
FILTER_MODULE = "filter"

# The benchmark's request: it matches the last of the five routes, by prefix, method and header.
REQUEST_PATH = "/api/items"
REQUEST_HEADER = "x-tenant: acme-corp"
VERSIONS = ("v1", "v2", "v3")
EXPECTED_SPLIT = (0.80, 0.15, 0.05)

# What each filter counts for the benchmark's route, one counter per version: the counters must
# add up to the requests the front Envoy sent upstream.
FILTER_COUNTERS = r"^wasmcustom\.traffic_split\.route\.api\.version\..*\.requests_total$"
LUA_COUNTERS = r"^http\.front\.lua\.traffic_split\.route\.api\.version\..*\.requests_total$"


@dataclass(frozen=True)
class Variant:
    """One front Envoy of the benchmark."""

    name: str
    label: str  # in the printed tables
    config: str  # its template in bench/envoy/
    module: str | None  # a key of MODULES, FILTER_MODULE, a module's path (--also), or no module
    measures: str
    # The filter's config fields besides traffic-split.yaml's (a JSON member and its comma).
    metrics_setting: str = ""
    # Fields added to the benchmarked route (e.g. a guard), as JSON text ending in a comma.
    route_setting: str = ""
    counters: str | None = None  # its own per-version request counters (FILTER_COUNTERS, ...)


VARIANTS = (
    Variant("native", "native", "native.yaml", None,
            "Envoy's own route table and weighted_clusters, no filter: the physical limit"),
    Variant("bare", "bare", "empty.yaml", "bare",
            "a module exporting only a request-headers callback (benches/bare-filter): one VM "
            "entry per request, the floor of any Wasm filter"),
    Variant("empty", "empty (SDK)", "empty.yaml", "empty",
            "an empty filter built with the proxy-wasm Rust SDK (benches/empty-filter), which "
            "exports every callback: the floor of a filter built the usual way"),
    Variant("lua", "lua", "lua.yaml", None,
            "the same routes, split, headers and per-version request counters in Envoy's Lua "
            "filter: what an Envoy user writes by hand instead of a Wasm module",
            counters=LUA_COUNTERS),
    Variant("traffic-split", "traffic-split", "traffic-split.yaml", FILTER_MODULE,
            "our filter, full metrics (requests, response classes, timeouts, latency)",
            counters=FILTER_COUNTERS),
    Variant("traffic-split-requests", "traffic-split (requests)", "traffic-split.yaml", FILTER_MODULE,
            'our filter with "metrics": "requests": per-version requests only, nothing at '
            "stream end; the work the lua variant does",
            metrics_setting='"metrics": "requests",', counters=FILTER_COUNTERS),
    Variant("traffic-split-guard", "traffic-split (guard)", "traffic-split.yaml", FILTER_MODULE,
            "our filter, full metrics, with a guard on the benchmarked route (that never trips): "
            "the guard's cost per request, and its timer's",
            route_setting='"guard": { "max_error_ratio": 0.5, "min_requests": 100, "window": "10s" },',
            counters=FILTER_COUNTERS),
)
# The variant soak runs, and the one --also modules are run like.
FILTER_VARIANT = next(variant for variant in VARIANTS if variant.name == "traffic-split")


@dataclass(frozen=True)
class Quantity:
    label: str
    unit: str  # of an absolute bound; a bound relative to a baseline variant is a ratio
    value: object  # (report, target) -> float


def paired_ratio(runs, variant, baseline, key):
    """The median over rounds of variant / baseline, both from the same round: steadier than
    the ratio of the medians when the machine drifts."""
    return statistics.median(ours[key] / base[key] for ours, base in zip(runs[variant], runs[baseline]))


def paired_ratio_of(key):
    return lambda report, target: paired_ratio(report["runs"], target.variant, target.baseline, key)


QUANTITIES = {
    "cpu": Quantity("CPU/request", "", paired_ratio_of("cpu_per_request_us")),
    "throughput": Quantity("req/s", "", paired_ratio_of("requests_per_s")),
    "module_kb": Quantity("module after wasm-opt -Oz", "KB",
                          lambda report, target: report["wasm_size"]["after_bytes"] / 1000),
    "rss_growth_kib": Quantity("RSS growth after the first step", "KiB",
                               lambda report, target: report["rss_growth_kib"]),
}
OPERATORS = {"<": operator.lt, "≤": operator.le, "≥": operator.ge}


@dataclass(frozen=True)
class Target:
    command: str  # "bench" or "soak": where it is checked
    quantity: str  # a key of QUANTITIES
    variant: str
    op: str  # a key of OPERATORS
    bound: float
    baseline: str | None = None  # the bound is a ratio to this variant, measured in the same rounds

    def label(self):
        quantity = QUANTITIES[self.quantity]
        if self.baseline:
            return f"{self.variant}: {quantity.label} {self.op} {self.bound:.2f} × {self.baseline}"
        return f"{self.variant}: {quantity.label} {self.op} {self.bound:g} {quantity.unit}"


# The targets (docs/performance.md).
TARGETS = (
    Target("bench", "cpu", "traffic-split-requests", "<", 1.0, baseline="lua"),
    Target("bench", "cpu", "traffic-split", "≤", 1.25, baseline="native"),
    Target("bench", "throughput", "traffic-split", "≥", 0.85, baseline="native"),
    Target("bench", "module_kb", "traffic-split", "≤", 300),
    Target("soak", "rss_growth_kib", "traffic-split", "≤", 1024),
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = sorted(os.sched_getaffinity(0))
# The front Envoy gets a CPU of its own; everything else shares the rest.
FRONT_CPUS = {ALL_CPUS[0]} if len(ALL_CPUS) > 1 else set(ALL_CPUS)
LOAD_CPUS = set(ALL_CPUS[1:]) or set(ALL_CPUS)


class Envoy:
    """One Envoy process: started from a template in bench/envoy/, ready once /ready says LIVE."""

    def __init__(self, name, template, values, workdir, cpus, log_level="warn"):
        started = time.monotonic()
        self.name = name
        self.dir = Path(workdir) / name
        self.dir.mkdir()
        config = self.dir / "envoy.yaml"
        config.write_text(Template((CONFIGS / template).read_text()).substitute(values))
        self.address_file = self.dir / "admin-address"
        self.log = self.dir / "envoy.log"
        self.process = subprocess.Popen(
            [ENVOY, "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
             "--admin-address-path", str(self.address_file), "--log-level", log_level,
             "--log-path", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        self.admin = self._wait_ready()
        # From the start of the process to /ready: configuration included.
        self.ready_s = time.monotonic() - started

    def _wait_ready(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: Envoy exited ({self.process.returncode}):\n{self.log_tail()}")
            address = self.address_file.read_text().strip() if self.address_file.exists() else ""
            if address:
                try:
                    if self.get("/ready").strip() == "LIVE":
                        return address
                except OSError:
                    pass
            time.sleep(0.02)  # poll interval, not a synchronisation
        raise RuntimeError(f"{self.name}: Envoy not ready after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self):
        return "\n".join(self.log.read_text().splitlines()[-20:]) if self.log.exists() else ""

    def get(self, path):
        address = getattr(self, "admin", None) or self.address_file.read_text().strip()
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
            return response.read().decode()

    def listener_ports(self):
        listeners = json.loads(self.get("/listeners?format=json"))["listener_statuses"]
        return {listener["name"]: listener["local_address"]["socket_address"]["port_value"]
                for listener in listeners}

    def url(self, path=REQUEST_PATH):
        return f"http://127.0.0.1:{self.listener_ports()['front']}{path}"

    def cpu_seconds(self):
        """User plus system time of all the process's threads, from /proc/<pid>/stat."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def rss_kib(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"{self.name}: no VmRSS")

    def counters(self, regex):
        text = self.get(f"/stats?usedonly&filter={regex}")
        return {name: int(value) for name, value in
                (line.split(": ", 1) for line in text.splitlines()) if value.isdigit()}

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_load(args, what):
    result = subprocess.run(args, capture_output=True, text=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, LOAD_CPUS))
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}")
    return result.stdout


def wrk(url, duration_s, connections):
    """A timed run at a fixed number of connections; wrk's summary as a dict."""
    out = run_load(["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "-H", REQUEST_HEADER,
                    "-s", str(WRK_SCRIPT), url], "wrk")
    return json.loads(out.strip().splitlines()[-1])


def h2load(url, requests, connections):
    """Exactly `requests` requests over HTTP/1.1; fails unless every one answered 2xx."""
    out = run_load(["h2load", "--h1", "-t1", f"-c{connections}", f"-n{requests}",
                    "-H", REQUEST_HEADER, url], "h2load")
    status = next(line for line in out.splitlines() if line.startswith("status codes:"))
    ok = int(status.split()[2])
    if ok != requests:
        raise RuntimeError(f"h2load: {ok} of {requests} requests answered 2xx:\n{out}")


def measure(envoy, duration_s, connections, path=REQUEST_PATH):
    before = envoy.cpu_seconds()
    summary = wrk(envoy.url(path), duration_s, connections)
    cpu = envoy.cpu_seconds() - before
    errors = sum(summary["errors"].values())
    if errors:
        raise RuntimeError(f"{envoy.name}: wrk saw errors: {summary['errors']}")
    requests = summary["requests"]
    return {
        "requests": requests,
        "cpu_s": round(cpu, 3),
        "cpu_per_request_us": cpu / requests * 1e6,
        "requests_per_s": requests / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
    }


def split_of(envoy):
    """The share of each version among the requests the front Envoy sent upstream."""
    counts = envoy.counters(r"^cluster\.service-v[0-9]\.upstream_rq_total$")
    per_version = [counts.get(f"cluster.service-{version}.upstream_rq_total", 0) for version in VERSIONS]
    total = sum(per_version) or 1
    return {version: round(count / total, 4) for version, count in zip(VERSIONS, per_version)}




def module_sizes():
    """The filter as cargo builds it, and as shipped (`make build`)."""
    return {"before_bytes": RAW_WASM.stat().st_size if RAW_WASM.exists() else None,
            "after_bytes": WASM.stat().st_size}


def start_upstream(workdir):
    upstream = Envoy("upstream", "upstream.yaml", {}, workdir, LOAD_CPUS)
    ports = upstream.listener_ports()
    return upstream, {f"{version}_port": ports[version] for version in VERSIONS}


def module_path(variant, filter_module):
    if variant.module is None:
        return None
    if variant.module == FILTER_MODULE:
        return filter_module
    return MODULES.get(variant.module, Path(variant.module))


def start_front(variant, workdir, ports, filter_module):
    module = module_path(variant, filter_module)
    values = dict(ports, wasm=module or "", metrics_setting=variant.metrics_setting,
                  route_setting=variant.route_setting)
    return Envoy(variant.name, variant.config, values, workdir, FRONT_CPUS)


def also_variant(name, module):
    """--also NAME=MODULE: another module, run like the traffic-split variant."""
    return Variant(name, name, FILTER_VARIANT.config, module, f"{module} under {FILTER_VARIANT.config}",
                   counters=FILTER_VARIANT.counters)


def git_commit():
    result = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True)
    return result.stdout.strip() or None


def run_context():
    """When, what and where a report was measured."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "machine": {"cpus": len(ALL_CPUS), "front_cpus": sorted(FRONT_CPUS),
                    "load_cpus": sorted(LOAD_CPUS), "kernel": platform.release()},
        "envoy": subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout.split("version:")[-1].strip(),
    }


def paired_difference(runs, variant, baseline):
    """The median over rounds of variant minus baseline CPU per request, both from the same
    round: steadier than the difference of the medians when the machine drifts."""
    if variant == baseline or variant not in runs or baseline not in runs:
        return None
    return statistics.median(ours["cpu_per_request_us"] - base["cpu_per_request_us"]
                             for ours, base in zip(runs[variant], runs[baseline]))


def median_of(runs):
    return {key: statistics.median(run[key] for run in runs) for key in
            ("cpu_per_request_us", "requests_per_s", "p50_ms", "p99_ms")}


def comparisons(runs, rss):
    """Each variant against native, paired by round, and its CPU over the floors and lua."""
    result = {}
    for variant in runs:
        if variant == "native":
            continue
        result[variant] = {
            "cpu_vs_native": paired_ratio(runs, variant, "native", "cpu_per_request_us"),
            "throughput_vs_native": paired_ratio(runs, variant, "native", "requests_per_s"),
            "rss_vs_native": rss[variant] / rss["native"],
            "over_native_us": paired_difference(runs, variant, "native"),
            "over_bare_us": paired_difference(runs, variant, "bare"),
            "over_empty_us": paired_difference(runs, variant, "empty"),
            "over_lua_us": paired_difference(runs, variant, "lua"),
        }
    return result


def check_targets(report, command):
    """Every target of `command` against the report: PASS/FAIL, or SKIP when a variant it
    compares was left out of the run."""
    results = []
    for target in TARGETS:
        if target.command != command:
            continue
        needed = {target.variant, target.baseline} - {None}
        if command == "bench" and not needed <= set(report["runs"]):
            value, passed = None, None
        else:
            value = QUANTITIES[target.quantity].value(report, target)
            passed = OPERATORS[target.op](value, target.bound)
        results.append({"target": target.label(), "value": None if value is None else round(value, 3),
                        "bound": target.bound, "pass": passed})
    return results


def print_targets(results):
    print("\ntargets:")
    for result in results:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[result["pass"]]
        value = "not run" if result["value"] is None else f"{result['value']:.3f}"
        print(f"  {verdict}  {result['target']:<48} {value:>9}")


def failed(results):
    return any(result["pass"] is False for result in results)


def bench(options):
    sizes = module_sizes()
    filter_module = Path(options.wasm) if options.wasm else WASM
    print(f"traffic_split.wasm: {sizes['before_bytes']} bytes built, {sizes['after_bytes']} bytes "
          f"shipped (wasm-metadce, wasm-opt -Oz); benchmarking {filter_module}")
    variants = [variant for variant in VARIANTS if variant.name not in options.skip]
    variants += [also_variant(*item.split("=", 1)) for item in options.also]
    names = tuple(variant.name for variant in variants)
    for variant in variants:
        print(f"{variant.name:>22}: {variant.measures}")
    runs = {name: [] for name in names}
    rss, split = {}, {}
    with tempfile.TemporaryDirectory(prefix="traffic-split-bench-") as workdir:
        envoys = []
        try:
            upstream, ports = start_upstream(workdir)
            envoys.append(upstream)
            fronts = {}
            for variant in variants:
                fronts[variant.name] = start_front(variant, workdir, ports, filter_module)
                envoys.append(fronts[variant.name])
            # The first 100k requests of each front Envoy warm it up and measure its memory.
            for name, front in fronts.items():
                h2load(front.url(), options.warmup_requests, options.connections)
                rss[name] = front.rss_kib()
                split[name] = split_of(front)
                print(f"{name:>22}: RSS {rss[name] / 1024:.1f} MiB after "
                      f"{options.warmup_requests} requests; split {split[name]}")
                if any(abs(split[name][version] - share) > 0.01
                       for version, share in zip(VERSIONS, EXPECTED_SPLIT)):
                    print(f"warning: {name} does not split {EXPECTED_SPLIT}", file=sys.stderr)
            for round_index in range(options.rounds):
                # Rotate the order so that no variant always runs first or last.
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    run = measure(fronts[name], options.duration, options.connections)
                    runs[name].append(run)
                    print(f"round {round_index + 1}/{options.rounds} {name:>22}: "
                          f"{run['cpu_per_request_us']:6.2f} µs/req {run['requests_per_s']:9.0f} req/s "
                          f"p50 {run['p50_ms']:.3f} ms p99 {run['p99_ms']:.3f} ms")
            if options.check_metrics:
                for variant in variants:
                    if variant.counters:
                        check_counters(fronts[variant.name], variant.counters)
        finally:
            for envoy in envoys:
                envoy.stop()

    report = {
        **run_context(),
        "settings": {"rounds": options.rounds, "duration_s": options.duration,
                     "connections": options.connections, "warmup_requests": options.warmup_requests,
                     "request": f"GET {REQUEST_PATH} with {REQUEST_HEADER}", "wasm": str(filter_module),
                     "load": "wrk -t1, HTTP/1.1 keep-alive; upstreams over HTTP/2"},
        "variants": {variant.name: {"label": variant.label, "config": variant.config,
                                    "module": str(module_path(variant, filter_module) or ""),
                                    "measures": variant.measures} for variant in variants},
        "medians": {name: median_of(runs[name]) for name in names},
        "comparisons": comparisons(runs, rss),
        "wasm_size": sizes,
        "rss_after_warmup_kib": rss,
        "split": split,
        "runs": runs,
    }
    report["targets"] = check_targets(report, "bench")
    BUILD.mkdir(exist_ok=True)
    out = Path(options.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print_targets(report["targets"])
    print(f"\nwritten to {out}")
    if failed(report["targets"]):
        sys.exit(1)


def check_counters(front, counters, upstream_counters=r"^cluster\.service-v[0-9]\.upstream_rq_total$"):
    """The filter counted what it routed: its request counters add up to the upstream requests."""
    ours = front.counters(counters)
    upstream = front.counters(upstream_counters)
    if not ours or sum(ours.values()) != sum(upstream.values()):
        raise RuntimeError(f"{front.name}: the counters {ours} do not match the upstream requests {upstream}")


def print_tables(report):
    medians, rss, labels = report["medians"], report["rss_after_warmup_kib"], report["variants"]
    print(f"\n{'variant':<26} {'CPU/req µs':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}")
    for name, m in medians.items():
        print(f"{labels[name]['label']:<26} {m['cpu_per_request_us']:>10.2f} {m['requests_per_s']:>9.0f} "
              f"{m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f} {rss[name] / 1024:>8.1f}")

    def delta(value):
        return "—" if value is None else f"{value:+.2f}"

    print("\npaired by round (medians of per-round ratios and differences):")
    print(f"{'variant':<26} {'CPU×native':>10} {'req/s×native':>12} {'RSS×native':>10} "
          f"{'µs>native':>9} {'µs>bare':>8} {'µs>empty':>8} {'µs>lua':>8}")
    for name, c in report["comparisons"].items():
        print(f"{labels[name]['label']:<26} {c['cpu_vs_native']:>10.3f} {c['throughput_vs_native']:>12.3f} "
              f"{c['rss_vs_native']:>10.3f} {delta(c['over_native_us']):>9} {delta(c['over_bare_us']):>8} "
              f"{delta(c['over_empty_us']):>8} {delta(c['over_lua_us']):>8}")
    sizes = report["wasm_size"]
    print(f"\ntraffic_split.wasm: {sizes['before_bytes']} bytes built, {sizes['after_bytes']} bytes shipped")
    for name, variant in report["variants"].items():
        if variant["module"] and name not in ("bare", "empty"):
            print(f"  {name} loads {variant['module']}: {Path(variant['module']).stat().st_size} bytes")


def soak(options):
    wasm = Path(options.wasm) if options.wasm else WASM
    step = options.sample_every
    samples = []
    with tempfile.TemporaryDirectory(prefix="traffic-split-soak-") as workdir:
        envoys = []
        try:
            upstream, ports = start_upstream(workdir)
            envoys.append(upstream)
            front = start_front(FILTER_VARIANT, workdir, ports, wasm)
            envoys.append(front)
            url = front.url()
            started = time.monotonic()
            for sent in range(step, options.requests + 1, step):
                h2load(url, step, options.connections)
                samples.append({"requests": sent, "rss_kib": front.rss_kib()})
                print(f"{sent:>9} requests: RSS {samples[-1]['rss_kib'] / 1024:.1f} MiB "
                      f"({time.monotonic() - started:.0f} s)")
            check_counters(front, FILTER_VARIANT.counters)
        finally:
            for envoy in envoys:
                envoy.stop()
    first, last = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "requests": samples[-1]["requests"],
        "wasm": str(wasm),
        "samples": samples,
        "rss_growth_kib": last - first,
        "rss_growth_ratio": last / first,
    }
    report["targets"] = check_targets(report, "soak")
    BUILD.mkdir(exist_ok=True)
    Path(options.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nRSS after {samples[0]['requests']}: {first} KiB, after {samples[-1]['requests']}: {last} KiB, "
          f"growth {last - first} KiB ({(last / first - 1) * 100:+.2f} %)")
    print_targets(report["targets"])
    print(f"written to {options.out}")
    if failed(report["targets"]):
        sys.exit(1)


# --- scale: CPU per request against the number of routes (`make bench-scale`) ---------------

SCALE_ROUTES = (5, 50, 500, 5000)
SCALE_DESTINATIONS = (2, 10, 50)
# Configure time and memory are measured at this size too, outside the timed rounds.
SCALE_STARTUP_ROUTES = (5, 10_000)
# The requests of the scale run: the last route matches the first, no route the second (it goes
# to the catch-all in both variants, so each does the same work upstream).
SCALE_REQUESTS = {"matched": REQUEST_PATH, "unmatched": "/nothing/here"}
SCALE_UPSTREAM_COUNTERS = r"^cluster\.service-[0-9]+\.upstream_rq_total$"
SCALE_VARIANTS = {"native": "scale-native.yaml", "traffic-split": "scale-traffic-split.yaml"}
# The targets: the largest table within 10 % of the smallest, and below Envoy's own
# route table of the same size (ratios paired by round).
SCALE_FLATNESS_BOUND = 1.10
SCALE_NATIVE_BOUND = 1.0
MATCH_COST = ROOT / "target/release/examples/match_cost"


def scale_route_match(index):
    """The match of route `index` of a scale config other than the last: four shapes in turn
    (prefix, exact path and method, regex, prefix and header), each of its own service, none
    matching either of the scale run's requests."""
    service = f"/svc-{index}"
    return [
        {"prefix": f"{service}/"},
        {"exact": f"{service}/health", "methods": ["GET"]},
        {"regex": f"{service}/v[0-9]+/items/[0-9]+"},
        {"prefix": f"{service}/", "headers": [{"name": "x-tenant", "exact": f"tenant-{index}"}]},
    ][index % 4]


# The last route: the benchmark's route (prefix, method and a header prefix), 1 s timeout.
SCALE_MATCHED_ROUTE = {"prefix": "/api", "methods": ["GET"],
                       "headers": [{"name": "x-tenant", "prefix": "acme"}]}


def scale_routes(routes, destinations):
    """(name, match, [(version, cluster, weight)], timeout) of each route, in order."""
    table = [(f"svc-{index}", scale_route_match(index),
              [("v1", "service-1", 90), ("v2", "service-2", 10)], None)
             for index in range(routes - 1)]
    table.append(("api", SCALE_MATCHED_ROUTE,
                  [(f"v{k}", f"service-{k}", 1) for k in range(1, destinations + 1)], "1s"))
    return table


def scale_plugin_config(routes, destinations):
    config = {"routes": []}
    for name, match, split, timeout in scale_routes(routes, destinations):
        route = {"name": name, "match": match,
                 "destinations": [{"version": version, "cluster": cluster, "weight": weight}
                                  for version, cluster, weight in split]}
        if timeout:
            route["timeout"] = timeout
        config["routes"].append(route)
    return config


def native_route(match, split, timeout):
    """One route of Envoy's route table doing what the filter's route does."""
    native = {}
    if "exact" in match:
        native["path"] = match["exact"]
    elif "regex" in match:
        native["safe_regex"] = {"regex": match["regex"]}
    else:
        native["prefix"] = match.get("prefix", "/")
    headers = [{"name": ":method", "string_match": {"exact": method}} for method in match.get("methods", [])]
    for header in match.get("headers", []):
        if "present" in header:
            headers.append({"name": header["name"], "present_match": True})
        else:
            kind = "exact" if "exact" in header else "prefix"
            headers.append({"name": header["name"], "string_match": {kind: header[kind]}})
    if headers:
        native["headers"] = headers
    action = {"weighted_clusters": {"clusters": [
        {"name": cluster, "weight": weight, "request_headers_to_add": [
            {"header": {"key": "x-split-version", "value": version},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}
        for version, cluster, weight in split]}}
    if timeout:
        action["timeout"] = timeout
    return {"match": native, "route": action}


def scale_clusters(destinations, ports):
    """service-1 .. service-N, spread over the upstream's three listeners."""
    return [{"name": f"service-{k}", "connect_timeout": "1s",
             "typed_extension_protocol_options": {
                 "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                     "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                     "explicit_http_config": {"http2_protocol_options": {}}}},
             "load_assignment": {"cluster_name": f"service-{k}", "endpoints": [{"lb_endpoints": [
                 {"endpoint": {"address": {"socket_address": {
                     "address": "127.0.0.1", "port_value": ports[f"{VERSIONS[(k - 1) % 3]}_port"]}}}}]}]}}
            for k in range(1, max(destinations, 2) + 1)]


def start_scale_front(variant, routes, destinations, workdir, ports, wasm, configs, log_level="warn"):
    """A front Envoy of one variant with a generated table; the plugin config is kept in
    `configs` for the host measurement."""
    name = f"{variant}-{routes}-routes-{destinations}-destinations"
    values = {"clusters": json.dumps(scale_clusters(destinations, ports)), "wasm": wasm}
    if variant == "native":
        values["routes"] = json.dumps([native_route(match, split, timeout) for _, match, split, timeout
                                       in scale_routes(routes, destinations)]
                                      + [{"match": {"prefix": "/"}, "route": {"cluster": "service-1"}}])
    else:
        plugin_config = json.dumps(scale_plugin_config(routes, destinations))
        (configs / f"{name}.json").write_text(plugin_config)
        values["plugin_config"] = json.dumps(plugin_config)
    return Envoy(name, SCALE_VARIANTS[variant], values, workdir, FRONT_CPUS, log_level)


def host_match_cost(config):
    """The filter's compile time, heap and matching cost on the host (examples/match_cost.rs)."""
    result = {}
    for request, path in SCALE_REQUESTS.items():
        out = subprocess.run([str(MATCH_COST), str(config), f"GET {path}", REQUEST_HEADER],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"match_cost {config}: {out.stderr}")
        result[request] = json.loads(out.stdout)
    return result


def envoy_heap_kib(front):
    """Envoy's own heap in use (tcmalloc's allocated bytes: the metrics, the route table). The
    RSS also holds what tcmalloc keeps after freeing (parsing a large config leaves much), V8
    and code."""
    return {"envoy_heap_allocated_kib": int(json.loads(front.get("/memory"))["allocated"]) // 1024}


def vm_memory_kib(front):
    """The filter's VM memory once configured, from its log line; None without the filter."""
    found = re.findall(r"traffic-split: configured \d+ route\(s\); VM memory (\d+) KiB", front.log.read_text())
    return int(found[-1]) if found else None


def describe_startup(entry):
    vm = f", VM {entry['vm_memory_kib'] / 1024:.1f} MiB" if entry.get("vm_memory_kib") else ""
    return (f"{entry['variant']:>13} {entry['routes']:>6} routes: ready in {entry['ready_s']:.2f} s, "
            f"RSS {entry['rss_kib'] / 1024:.1f} MiB, Envoy heap {entry['envoy_heap_allocated_kib'] / 1024:.1f} "
            f"MiB allocated{vm}")


def scale_startup(workdir, ports, wasm, configs, options):
    """Time to /ready and RSS after a few requests, by variant and table size, one Envoy at a
    time; and the filter's own compile time and heap on the host."""
    startup = []
    startup_dir = Path(workdir) / "startup"
    startup_dir.mkdir()
    for routes in SCALE_STARTUP_ROUTES:
        for variant in SCALE_VARIANTS:
            # At info, the filter logs its VM's memory once configured.
            front = start_scale_front(variant, routes, 2, startup_dir, ports, wasm, configs, "info")
            try:
                h2load(front.url(), 1000, 1)
                entry = {"variant": variant, "routes": routes, "ready_s": round(front.ready_s, 3),
                         "rss_kib": front.rss_kib(),
                         **envoy_heap_kib(front)}
            finally:
                front.stop()
            # Envoy flushes its log file every few seconds, and at exit.
            entry["vm_memory_kib"] = vm_memory_kib(front)
            if variant == "traffic-split" and MATCH_COST.exists():
                entry["host"] = host_match_cost(configs / f"{front.name}.json")
            startup.append(entry)
            print(f"startup {describe_startup(entry)}")
    return startup


def scale_cases(routes_counts, destination_counts):
    """(variant, routes, destinations, request) of every timed run: the matched request for
    every size, the unmatched one at the first destination count (it reaches no route's split)."""
    return [(variant, routes, destinations, request)
            for variant in SCALE_VARIANTS for routes in routes_counts for destinations in destination_counts
            for request in SCALE_REQUESTS
            if request == "matched" or destinations == destination_counts[0]]


def scale_series(destination_counts):
    """(variant, destinations, request) of each column of the table and line of the chart: the
    matched request at each destination count, then the unmatched one."""
    return [(variant, destinations, "matched") for variant in SCALE_VARIANTS
            for destinations in destination_counts] + \
           [(variant, destination_counts[0], "unmatched") for variant in SCALE_VARIANTS]


def case_key(variant, routes, destinations, request):
    return f"{variant}/{routes}/{destinations}/{request}"


def paired_case_ratio(runs, case, baseline):
    return statistics.median(ours / base for ours, base in zip(runs[case_key(*case)], runs[case_key(*baseline)]))


def scale_targets(runs, routes_counts, destination_counts):
    smallest, largest = routes_counts[0], routes_counts[-1]
    results = []
    for destinations, request in [(d, "matched") for d in destination_counts] + [(destination_counts[0], "unmatched")]:
        ours = ("traffic-split", largest, destinations, request)
        flat = paired_case_ratio(runs, ours, ("traffic-split", smallest, destinations, request))
        results.append({"target": f"traffic-split {request}, {destinations} dest.: {largest} routes ≤ "
                                  f"{SCALE_FLATNESS_BOUND:.2f} × {smallest} routes",
                        "value": round(flat, 3), "bound": SCALE_FLATNESS_BOUND,
                        "pass": flat <= SCALE_FLATNESS_BOUND})
        native = paired_case_ratio(runs, ours, ("native", largest, destinations, request))
        results.append({"target": f"traffic-split {request}, {destinations} dest.: {largest} routes < "
                                  f"{SCALE_NATIVE_BOUND:.2f} × native",
                        "value": round(native, 3), "bound": SCALE_NATIVE_BOUND,
                        "pass": native < SCALE_NATIVE_BOUND})
    return results


def print_scale_table(report):
    columns = scale_series(report["settings"]["destinations"])
    print("\nCPU per request (µs), medians over the rounds; dest. = destinations of the matched route")
    header = ["routes"] + [f"{variant} {f'{d} dest.' if request == 'matched' else 'unmatched'}"
                           for variant, d, request in columns]
    print(" | ".join(f"{cell:>20}" if index else f"{cell:>6}" for index, cell in enumerate(header)))
    for routes in report["settings"]["routes"]:
        cells = [f"{routes:>6}"]
        for variant, destinations, request in columns:
            median = report["medians"].get(case_key(variant, routes, destinations, request))
            cells.append(f"{median:>20.2f}" if median is not None else f"{'—':>20}")
        print(" | ".join(cells))
    if report["host"]:
        print(f"\nthe filter on the host ({report['settings']['destinations'][0]} destinations): "
              "compile time, heap once compiled, ns per match with the index and with the in-order scan")
        for routes, host in report["host"].items():
            matched, unmatched = host["matched"], host["unmatched"]
            print(f"  {routes:>6} routes: compile {matched['compile_ms']:7.1f} ms, plan "
                  f"{matched['plan_bytes'] / 2**20:6.1f} MiB; matched {matched['match_ns']:5.0f} ns "
                  f"(scan {matched['linear_match_ns']:8.0f} ns), unmatched {unmatched['match_ns']:5.0f} ns "
                  f"(scan {unmatched['linear_match_ns']:8.0f} ns)")
    if report["startup"]:
        print("\nstartup (2 destinations per route): time to /ready, RSS after 1,000 requests; the "
              "filter's compile on the host")
        for entry in report["startup"]:
            host = entry.get("host", {}).get("matched")
            host_text = (f"; host: compile {host['compile_ms']:.1f} ms, heap peak "
                         f"{host['compile_peak_bytes'] / 2**20:.1f} MiB, plan {host['plan_bytes'] / 2**20:.1f} MiB, "
                         f"match {host['match_ns']:.0f} ns (in-order scan {host['linear_match_ns']:.0f} ns)"
                         if host else "")
            print(f"  {describe_startup(entry)}{host_text}")


def plot_scale(report, png):
    """The curve as a PNG, with gnuplot (Debian's gnuplot-nox); skipped when it is missing."""
    if subprocess.run(["sh", "-c", "command -v gnuplot"], capture_output=True).returncode:
        print("gnuplot is missing (make apt-tools): no chart", file=sys.stderr)
        return None
    settings = report["settings"]
    series = scale_series(settings["destinations"])
    data = png.with_suffix(".dat")
    with data.open("w") as out:
        for variant, destinations, request in series:
            title = f"{variant}, {f'{destinations} destinations' if request == 'matched' else 'unmatched'}"
            out.write(f'"{title}"\n')
            for routes in settings["routes"]:
                out.write(f"{routes} {report['medians'][case_key(variant, routes, destinations, request)]:.3f}\n")
            out.write("\n\n")
    plots = ", ".join(f"'{data}' index {index} using 1:2 with linespoints title columnheader(1) "
                      f"dashtype {1 if variant == 'traffic-split' else 2}"
                      for index, (variant, _, _) in enumerate(series))
    script = (f"set terminal pngcairo size 900,560 noenhanced\nset output '{png}'\n"
              "set logscale x\nset xrange [3:8000]\nset xlabel 'routes (the matched one last)'\n"
              "set ylabel 'front Envoy CPU per request (µs)'\nset yrange [0:*]\nset key top left\n"
              "set grid\nset title 'CPU per request against the number of routes'\n"
              f"plot {plots}\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return str(png)


def scale(options):
    routes_counts = (SCALE_ROUTES[0], SCALE_ROUTES[-1]) if options.quick else SCALE_ROUTES
    destination_counts = SCALE_DESTINATIONS[:1] if options.quick else SCALE_DESTINATIONS
    rounds = options.rounds or (1 if options.quick else 3)
    duration = options.duration or (2 if options.quick else 3)
    wasm = str(Path(options.wasm) if options.wasm else WASM)
    cases = scale_cases(routes_counts, destination_counts)
    runs = {case_key(*case): [] for case in cases}
    BUILD.mkdir(exist_ok=True)
    configs = BUILD / "scale-configs"
    configs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="traffic-split-scale-") as workdir:
        envoys = []
        try:
            upstream, ports = start_upstream(workdir)
            envoys.append(upstream)
            startup = [] if options.no_startup else scale_startup(workdir, ports, wasm, configs, options)
            fronts = {}
            for variant in SCALE_VARIANTS:
                for routes in routes_counts:
                    for destinations in destination_counts:
                        front = start_scale_front(variant, routes, destinations, workdir, ports, wasm, configs)
                        envoys.append(front)
                        fronts[(variant, routes, destinations)] = front
                        h2load(front.url(), options.warmup_requests, options.connections)
                        if variant == "traffic-split":
                            # Every matched request went where the filter sent it.
                            check_counters(front, FILTER_COUNTERS, SCALE_UPSTREAM_COUNTERS)
                        h2load(front.url(SCALE_REQUESTS["unmatched"]), options.warmup_requests,
                               options.connections)
                        print(f"{front.name}: ready in {front.ready_s:.2f} s")
            for round_index in range(rounds):
                shift = round_index % len(cases)
                for case in cases[shift:] + cases[:shift]:
                    variant, routes, destinations, request = case
                    run = measure(fronts[(variant, routes, destinations)], duration, options.connections,
                                  SCALE_REQUESTS[request])
                    runs[case_key(*case)].append(run["cpu_per_request_us"])
                    print(f"round {round_index + 1}/{rounds} {case_key(*case):>36}: "
                          f"{run['cpu_per_request_us']:6.2f} µs/req {run['requests_per_s']:8.0f} req/s")
        finally:
            for envoy in envoys:
                envoy.stop()
    report = {
        **run_context(),
        "settings": {"routes": list(routes_counts), "destinations": list(destination_counts),
                     "rounds": rounds, "duration_s": duration, "connections": options.connections,
                     "requests": {name: f"GET {path} with {REQUEST_HEADER}" for name, path in SCALE_REQUESTS.items()},
                     "wasm": wasm, "quick": options.quick},
        "medians": {key: statistics.median(values) for key, values in runs.items()},
        "runs": runs,
        "startup": startup,
        # The filter alone on the host, at each size of the curve: compile and match.
        "host": {routes: host_match_cost(configs / f"traffic-split-{routes}-routes-{destination_counts[0]}"
                                                   f"-destinations.json")
                 for routes in routes_counts} if MATCH_COST.exists() else {},
    }
    report["targets"] = scale_targets(runs, routes_counts, destination_counts)
    out = Path(options.out)
    report["chart"] = plot_scale(report, out.with_suffix(".png"))
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_scale_table(report)
    print_targets(report["targets"])
    print(f"\nwritten to {out}" + (f" and {report['chart']}" if report["chart"] else ""))
    if failed(report["targets"]):
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("bench", help="every variant of VARIANTS, in alternated rounds")
    run.add_argument("--rounds", type=int, default=9)
    run.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    run.add_argument("--connections", type=int, default=16)
    run.add_argument("--warmup-requests", type=int, default=100_000)
    run.add_argument("--wasm", help="the module to benchmark (default: the shipped build/traffic_split.wasm)")
    run.add_argument("--also", action="append", default=[], metavar="NAME=MODULE",
                     help="also benchmark another module like the traffic-split variant (repeatable)")
    run.add_argument("--skip", action="append", default=[], metavar="VARIANT",
                     choices=[variant.name for variant in VARIANTS if variant.name != "native"],
                     help="leave a variant out (repeatable); its targets are reported as SKIP")
    run.add_argument("--no-check-metrics", dest="check_metrics", action="store_false")
    run.add_argument("--out", default=str(BUILD / "bench.json"))
    run.set_defaults(handler=bench)
    long = commands.add_parser("soak", help="1M requests through the filter, watching RSS")
    long.add_argument("--requests", type=int, default=1_000_000)
    long.add_argument("--sample-every", type=int, default=100_000)
    long.add_argument("--connections", type=int, default=16)
    long.add_argument("--wasm", help="the module to soak (default: the shipped build/traffic_split.wasm)")
    long.add_argument("--out", default=str(BUILD / "soak.json"))
    long.set_defaults(handler=soak)
    curve = commands.add_parser("scale", help="CPU per request against the number of routes, beside native")
    curve.add_argument("--quick", action="store_true",
                       help=f"{SCALE_ROUTES[0]} and {SCALE_ROUTES[-1]} routes, {SCALE_DESTINATIONS[0]} "
                            "destinations, one short round: a check of the plumbing")
    curve.add_argument("--rounds", type=int, help="default 3 (1 with --quick)")
    curve.add_argument("--duration", type=int, help="seconds per timed run; default 3 (2 with --quick)")
    curve.add_argument("--connections", type=int, default=16)
    curve.add_argument("--warmup-requests", type=int, default=10_000)
    curve.add_argument("--no-startup", action="store_true",
                       help=f"skip the startup measurement at {SCALE_STARTUP_ROUTES} routes")
    curve.add_argument("--wasm", help="the module to benchmark (default: the shipped build/traffic_split.wasm)")
    curve.add_argument("--out", default=str(BUILD / "scale.json"))
    curve.set_defaults(handler=scale)
    options = parser.parse_args()
    for tool in ("wrk", "h2load", "wasm-opt"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"{tool} is missing: run `make apt-tools`")
    also = getattr(options, "also", [])
    for item in also:
        if "=" not in item:
            sys.exit(f"--also {item}: expected NAME=MODULE")
        if item.split("=", 1)[0] in {variant.name for variant in VARIANTS}:
            sys.exit(f"--also {item}: the name is one of the benchmark's variants")
    needed = [WASM] + (list(MODULES.values()) if options.command == "bench" else [])
    needed += [Path(item.split("=", 1)[1]) for item in also]
    for module in needed:
        if not module.exists():
            sys.exit(f"{module} is missing: run `make bench` (it builds the filter and the empty "
                     f"modules) or `make bench-baseline` (build/hand-abi.wasm)")
    options.handler(options)


if __name__ == "__main__":
    main()
