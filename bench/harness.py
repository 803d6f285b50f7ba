"""What the benchmark programs share (bench.py, scale.py, soak.py): the Envoy process, its
configs, the load generators, CPU and memory sampling, the targets and the report's context.

The front Envoys run pinned to CPU 0 (--concurrency 1 unless a memory case asks for more
workers); the upstream Envoy (direct_response listeners) and the load generator share the other
CPUs, so the front Envoy is the bottleneck and its CPU time per request is measured
undisturbed. Standard library only.
"""

import json
import operator
import os
import platform
import re
import statistics
import subprocess
import sys
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
# The templates of the native module's variants: another library in its place (the floor, an
# ablation, --also NAME=LIB.so) is linked as libtraffic_split.so into a folder of its Envoy's own.
NATIVE_TEMPLATE = "traffic-split-native.yaml"
BARE_NATIVE_TEMPLATE = "bare-native.yaml"
# The floor of a dynamic module (`make bench-build`: benches/bare-native).
BARE_NATIVE = ROOT / "target/native/libbare_native.so"
# The floor of a module that routes by the headers it writes (benches/bare-native, built with its
# `header-writes` feature into a target folder of its own).
HEADER_FLOOR_NATIVE = ROOT / "target/header-floor/native/libbare_native.so"
# The modules a variant can load, by the name VARIANTS gives them; "filter" is the module under
# test (the shipped build/traffic_split.wasm, or --wasm).
MODULES = {
    "bare": ROOT / "target/wasm32-wasip1/release/bare_filter.wasm",
    "bare-native": BARE_NATIVE,
    "header-floor-native": HEADER_FLOOR_NATIVE,
    "empty": ROOT / "target/wasm32-wasip1/release/empty_filter.wasm",
    # The second shipped module, without the response path (`make build`).
    "requests-module": Path(os.environ.get("TRAFFIC_SPLIT_REQUESTS_WASM",
                                           BUILD / "traffic_split_requests.wasm")),
}
FILTER_MODULE = "filter"
# The native module (`make build`): Envoy loads lib<name>.so from this folder.
NATIVE_MODULE = Path(os.environ.get("TRAFFIC_SPLIT_NATIVE", BUILD / "libtraffic_split.so"))
os.environ["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(NATIVE_MODULE.parent)

# The benchmark's request: it matches the last of the five routes, by prefix, method and header.
REQUEST_PATH = "/api/items"
REQUEST_HEADER = "x-tenant: acme-corp"
VERSIONS = ("v1", "v2", "v3")
EXPECTED_SPLIT = (0.80, 0.15, 0.05)

# What each filter counts for the benchmark's route, one counter per version: the counters must
# add up to the requests the front Envoy sent upstream.
FILTER_COUNTERS = r"^wasmcustom\.traffic_split\.plugin\.[A-Za-z0-9_-]+\.route\.api\.version\..*\.requests_total$"
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
    # HTTP filters before the router, in native.yaml (YAML list items, each on a new line).
    front_filters: str = ""
    counters: str | None = None  # its own per-version request counters (FILTER_COUNTERS, ...)


# The router emits upstream_rq_<code>, upstream_rq_<class>xx and upstream_rq_time again under
# the name this header gives (cluster.<cluster>.<name>.*): response metrics by route and
# version, counted by Envoy and not by the module, if the filter wrote it.
ALT_STAT_FILTER = """
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations:
                - append: { header: { key: x-envoy-upstream-alt-stat-name, value: api.v1 }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }"""

VARIANTS = (
    Variant("native", "native", "native.yaml", None,
            "Envoy's own route table and weighted_clusters, no filter: the physical limit"),
    Variant("native-alt-stat", "native + alt stat name", "native.yaml", None,
            "native, with a header_mutation filter setting x-envoy-upstream-alt-stat-name, so "
            "that the router also counts response codes and times under that name: what Envoy "
            "itself would spend on response metrics if the filter only named them",
            front_filters=ALT_STAT_FILTER),
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
    Variant("bare-native", "bare native module", BARE_NATIVE_TEMPLATE, "bare-native",
            "an Envoy dynamic module whose hooks all return at once (benches/bare-native): what "
            "loading any dynamic module as an HTTP filter costs, the native module's floor"),
    Variant("header-floor-native", "header-writing floor", NATIVE_TEMPLATE, "header-floor-native",
            "the bare native module, whose request hook also writes the three headers the native "
            "module writes for the benchmark's request (version, cluster, deadline) and clears "
            "the route cache: what routing by a module's headers costs in Envoy, before any "
            "decision or metric of the module's own"),
    Variant("traffic-split-native", "native module", NATIVE_TEMPLATE, None,
            "our filter as an Envoy dynamic module (build/libtraffic_split.so): the same core and "
            "config, full metrics, on Envoy's native module ABI instead of a Wasm VM",
            counters=FILTER_COUNTERS),
    Variant("traffic-split-requests", "traffic-split (requests)", "traffic-split.yaml", FILTER_MODULE,
            'our filter with "metrics": "requests": per-version requests only, nothing at '
            "stream end; the work the lua variant does",
            metrics_setting='"metrics": "requests",', counters=FILTER_COUNTERS),
    Variant("traffic-split-requests-module", "requests module", "traffic-split.yaml",
            "requests-module",
            'the module shipped for configs that need no response path '
            '(traffic_split_requests.wasm: no response-headers or log callback), with '
            '"metrics": "requests": what a user whose config needs no more deploys',
            metrics_setting='"metrics": "requests",', counters=FILTER_COUNTERS),
    Variant("traffic-split-guard", "traffic-split (guard)", "traffic-split.yaml", FILTER_MODULE,
            "our filter, full metrics, with a guard on the benchmarked route (that never trips): "
            "the guard's cost per request, and its timer's",
            route_setting='"guard": { "max_error_ratio": 0.5, "min_requests": 100, "window": "10s" },',
            counters=FILTER_COUNTERS),
)
# The variant soak runs, and the one --also modules are run like.
FILTER_VARIANT = next(variant for variant in VARIANTS if variant.name == "traffic-split")
# The variant a shared library given with --also is run like.
NATIVE_VARIANT = next(variant for variant in VARIANTS if variant.name == "traffic-split-native")


@dataclass(frozen=True)
class Quantity:
    label: str
    unit: str  # of an absolute bound; a bound relative to a baseline variant is a ratio
    value: object  # (report, target) -> float
    # (report, target) -> whether the run measured it (a variant left out, no memory table)
    measured: object = lambda report, target: True


def paired_ratio(runs, variant, baseline, key):
    """The median over rounds of variant / baseline, both from the same round: steadier than
    the ratio of the medians when the machine drifts."""
    return statistics.median(ours[key] / base[key] for ours, base in zip(runs[variant], runs[baseline]))


def paired_ratio_of(key):
    return lambda report, target: paired_ratio(report["runs"], target.variant, target.baseline, key)


def in_rounds(report, target):
    return {target.variant, target.baseline} - {None} <= set(report.get("runs", {}))


def rss_over_empty_mib(report, target):
    """The idle RSS of the variant's memory case over the SDK's empty filter's, 1 worker."""
    cases = report["memory"]["cases"]
    return (cases[target.variant]["rss_kib"] - cases["empty"]["rss_kib"]) / 1024


def in_memory_table(report, target):
    cases = (report.get("memory") or {}).get("cases", {})
    return target.variant in cases and "empty" in cases


def rss_over_native_mib(report, target):
    """The idle RSS of the variant's memory case over Envoy's without a filter, 1 worker."""
    cases = report["memory"]["cases"]
    return (cases[target.variant]["rss_kib"] - cases["native"]["rss_kib"]) / 1024


def in_memory_table_with_native(report, target):
    cases = (report.get("memory") or {}).get("cases", {})
    return target.variant in cases and "native" in cases


QUANTITIES = {
    "cpu": Quantity("CPU/request", "", paired_ratio_of("cpu_per_request_us"), in_rounds),
    "throughput": Quantity("req/s", "", paired_ratio_of("requests_per_s"), in_rounds),
    "rss_over_empty_mib": Quantity("idle RSS over empty (SDK), 1 worker", "MiB", rss_over_empty_mib,
                                   in_memory_table),
    "rss_over_native_mib": Quantity("idle RSS over Envoy without a filter, 1 worker", "MiB",
                                    rss_over_native_mib, in_memory_table_with_native),
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
    Target("bench", "cpu", "traffic-split-requests-module", "<", 1.0, baseline="lua"),
    Target("bench", "cpu", "traffic-split", "≤", 1.20, baseline="native"),
    Target("bench", "throughput", "traffic-split", "≥", 0.85, baseline="native"),
    Target("bench", "rss_over_empty_mib", "traffic-split", "≤", 10),
    Target("bench", "module_kb", "traffic-split", "≤", 300),
    # The native module's (issue 26): at the cost of Envoy's own routing.
    Target("bench", "cpu", "traffic-split-native", "≤", 1.05, baseline="native"),
    Target("bench", "throughput", "traffic-split-native", "≥", 0.95, baseline="native"),
    Target("bench", "rss_over_native_mib", "traffic-split-native", "≤", 3),
    Target("soak", "rss_growth_kib", "traffic-split", "≤", 1024),
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = sorted(os.sched_getaffinity(0))
# The front Envoy gets a CPU of its own; everything else shares the rest.
FRONT_CPUS = {ALL_CPUS[0]} if len(ALL_CPUS) > 1 else set(ALL_CPUS)
LOAD_CPUS = set(ALL_CPUS[1:]) or set(ALL_CPUS)


class Envoy:
    """One Envoy process: started from a template in bench/envoy/, ready once /ready says LIVE."""

    def __init__(self, name, template, values, workdir, cpus, log_level="warn", concurrency=1):
        started = time.monotonic()
        self.name = name
        self.dir = Path(workdir) / name
        # Another process of the same variant (--fresh-envoys) gets a folder of its own.
        again = 1
        while self.dir.exists():
            again += 1
            self.dir = Path(workdir) / f"{name}-{again}"
        self.dir.mkdir()
        config = self.dir / "envoy.yaml"
        config.write_text(Template((CONFIGS / template).read_text()).substitute(values))
        self.address_file = self.dir / "admin-address"
        self.log = self.dir / "envoy.log"
        env = None
        if values.get("native_module"):
            modules = self.dir / "modules"
            modules.mkdir()
            (modules / NATIVE_MODULE.name).symlink_to(Path(values["native_module"]).resolve())
            env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(modules))
        self.process = subprocess.Popen(
            [ENVOY, "-c", str(config), "--concurrency", str(concurrency), "--disable-hot-restart",
             "--admin-address-path", str(self.address_file), "--log-level", log_level,
             "--log-path", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
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
        return self.status_kib("VmRSS")

    def status_kib(self, field):
        """A memory field of /proc/<pid>/status (VmRSS, RssAnon, RssFile), in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise RuntimeError(f"{self.name}: no {field}")

    def settled_rss_kib(self, interval_s=0.25, timeout_s=10):
        """The RSS once it stops moving (workers create their VMs after /ready can say LIVE):
        the first value read twice in a row, polled."""
        previous, deadline = None, time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rss = self.rss_kib()
            if rss == previous:
                return rss
            previous = rss
            time.sleep(interval_s)  # poll interval, not a synchronisation
        return previous

    def stats_count(self):
        """How many stats Envoy holds (counters, gauges, histograms), from the admin's /stats."""
        return len(self.get("/stats").splitlines())

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


def front_values(variant, ports, module):
    """What a variant's template in bench/envoy/ is filled in with."""
    native = variant.config in (NATIVE_TEMPLATE, BARE_NATIVE_TEMPLATE)
    return dict(ports, wasm="" if native else module or "",
                native_module=(module or "") if native else "",
                metrics_setting=variant.metrics_setting,
                route_setting=variant.route_setting, front_filters=variant.front_filters)


def start_front(variant, workdir, ports, filter_module):
    module = module_path(variant, filter_module)
    values = front_values(variant, ports, module)
    return Envoy(variant.name, variant.config, values, workdir, FRONT_CPUS)


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


def check_targets(report, command):
    """Every target of `command` against the report: PASS/FAIL, or SKIP when a variant it
    compares was left out of the run."""
    results = []
    for target in TARGETS:
        if target.command != command:
            continue
        quantity = QUANTITIES[target.quantity]
        if not quantity.measured(report, target):
            value, passed = None, None
        else:
            value = quantity.value(report, target)
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


def check_tools(modules):
    """Exit with what to run when a tool or a module the run needs is missing."""
    for tool in ("wrk", "h2load", "wasm-opt"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"{tool} is missing: run `make apt-tools`")
    for module in modules:
        if not Path(module).exists():
            sys.exit(f"{module} is missing: run `make bench` (it builds the filter and the empty "
                     f"modules) or `make bench-baseline` (build/hand-abi.wasm)")


def check_counters(front, counters, upstream_counters=r"^cluster\.service-v[0-9]\.upstream_rq_total$"):
    """The filter counted what it routed: its request counters add up to the upstream requests."""
    ours = front.counters(counters)
    upstream = front.counters(upstream_counters)
    if not ours or sum(ours.values()) != sum(upstream.values()):
        raise RuntimeError(f"{front.name}: the counters {ours} do not match the upstream requests {upstream}")


# scale

# --- generated route tables (`make bench-scale`, and the memory table's config sizes) ---------

# The templates of the generated front Envoys: Envoy's own route table, or the filter's.
SCALE_VARIANTS = {"native": "scale-native.yaml", "traffic-split": "scale-traffic-split.yaml",
                  "traffic-split-native": "scale-traffic-split-native.yaml"}


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


def start_scale_front(variant, routes, destinations, workdir, ports, wasm, configs, log_level="warn",
                      plugin_fields=None, name=None, concurrency=1):
    """A front Envoy of one variant with a generated table; the plugin config is kept in
    `configs` (when given) for the host measurement. `plugin_fields` are added to the plugin
    config (e.g. `{"metrics": "requests"}`)."""
    name = name or f"{variant}-{routes}-routes-{destinations}-destinations"
    values = {"clusters": json.dumps(scale_clusters(destinations, ports)), "wasm": wasm}
    if variant == "native":
        values["routes"] = json.dumps([native_route(match, split, timeout) for _, match, split, timeout
                                       in scale_routes(routes, destinations)]
                                      + [{"match": {"prefix": "/"}, "route": {"cluster": "service-1"}}])
    else:
        plugin_config = json.dumps({**(plugin_fields or {}), **scale_plugin_config(routes, destinations)})
        if configs:
            (configs / f"{name}.json").write_text(plugin_config)
        values["plugin_config"] = json.dumps(plugin_config)
    return Envoy(name, SCALE_VARIANTS[variant], values, workdir, FRONT_CPUS, log_level, concurrency)


def envoy_heap_kib(front):
    """Envoy's own heap in use (tcmalloc's allocated bytes: the metrics, the route table). The
    RSS also holds what tcmalloc keeps after freeing (parsing a large config leaves much), V8
    and code."""
    return {"envoy_heap_allocated_kib": int(json.loads(front.get("/memory"))["allocated"]) // 1024}


def envoy_heap_detail_kib(front):
    """tcmalloc's view of Envoy's heap (admin /memory): in use, mapped (in use + cached + free
    pages), free pages still mapped. Freed memory that tcmalloc keeps stays in the RSS."""
    memory = json.loads(front.get("/memory"))
    return {"envoy_heap_allocated_kib": int(memory["allocated"]) // 1024,
            "envoy_heap_size_kib": int(memory["heap_size"]) // 1024,
            "envoy_pageheap_free_kib": int(memory["pageheap_free"]) // 1024}


def wasm_code_shape(path):
    """The functions a module defines and the size of its largest body (bytes), read from the
    code section: V8 compiles each function on its own, so its peak memory follows the largest."""
    data = Path(path).read_bytes()

    def leb(position):
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, position

    position = 8  # magic and version
    while position < len(data):
        section, position = data[position], position + 1
        size, position = leb(position)
        if section == 10:
            count, cursor = leb(position)
            sizes = []
            for _ in range(count):
                body, cursor = leb(cursor)
                sizes.append(body)
                cursor += body
            return {"functions": count, "largest_function_bytes": max(sizes, default=0),
                    "code_bytes": sum(sizes)}
        position += size
    return {"functions": 0, "largest_function_bytes": 0, "code_bytes": 0}


def vm_memory_kib(front):
    """The filter's VM memory once configured, from its log line; None without the filter."""
    found = re.findall(r"traffic-split: configured \d+ route\(s\); VM memory (\d+) KiB", front.log.read_text())
    return int(found[-1]) if found else None
