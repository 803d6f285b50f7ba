#!/usr/bin/env python3
"""The benchmark of traffic-split against Envoy's native routing (`make bench`, `make soak`).

`bench`: four front Envoys, one per variant (native: Envoy's own weighted_clusters; bare and
empty: an empty Wasm filter before the same routes, exporting one callback or, built with the
SDK, all of them; traffic-split: our filter), send the same request through each, in rounds
that alternate the variants, and report the medians of: front Envoy CPU time per request,
requests per second at a fixed concurrency, latency p50/p99. Also the module's size before and
after `wasm-opt -Oz`, and each front Envoy's RSS after its first 100k requests. Written to
build/bench.json.

`soak`: 1M requests through the filter; the front Envoy's RSS after the first 100k and after
every further 100k. Written to build/soak.json.

The front Envoys run with --concurrency 1, pinned to CPU 0; the upstream Envoy (direct_response
listeners) and the load generator share the other CPUs, so the front Envoy is the bottleneck and
its CPU time per request is measured undisturbed. Standard library only.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "bench" / "envoy"
WRK_SCRIPT = ROOT / "bench" / "report.lua"
BUILD = ROOT / "build"
ENVOY = os.environ.get("ENVOY_BIN", str(ROOT / ".venv" / "bin" / "envoy"))
WASM = Path(os.environ.get("TRAFFIC_SPLIT_WASM", ROOT / "target/wasm32-wasip1/release/traffic_split.wasm"))
EMPTY_WASM = ROOT / "target/wasm32-wasip1/release/empty_filter.wasm"
BARE_WASM = ROOT / "target/wasm32-wasip1/release/bare_filter.wasm"
OPT_WASM = BUILD / "traffic_split.opt.wasm"

VARIANTS = ("native", "bare", "empty", "traffic-split")
# Each variant's front Envoy config (bench/envoy/) and the module it loads, if any. "bare" is
# empty.yaml with a module that exports only a request-headers callback (benches/bare-filter):
# Envoy enters a module only for the callbacks it exports, so bare is the lowest floor of a
# Wasm filter, and "empty" (benches/empty-filter, built with the proxy-wasm Rust SDK, which
# exports every callback) the floor of a filter built the usual way.
TEMPLATES = {"native": "native.yaml", "bare": "empty.yaml", "empty": "empty.yaml",
             "traffic-split": "traffic-split.yaml"}
# The benchmark's request: it matches the last of the five routes, by prefix, method and header.
REQUEST_PATH = "/api/items"
REQUEST_HEADER = "x-tenant: acme-corp"
VERSIONS = ("v1", "v2", "v3")
EXPECTED_SPLIT = (0.80, 0.15, 0.05)

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = sorted(os.sched_getaffinity(0))
# The front Envoy gets a CPU of its own; everything else shares the rest.
FRONT_CPUS = {ALL_CPUS[0]} if len(ALL_CPUS) > 1 else set(ALL_CPUS)
LOAD_CPUS = set(ALL_CPUS[1:]) or set(ALL_CPUS)

TARGETS = {
    "cpu_per_request_vs_native": 1.12,  # at most
    "cpu_per_request_over_empty_us": 1.0,  # at most
    "throughput_vs_native": 0.90,  # at least
    "optimized_wasm_kb": 300,  # at most
}


class Envoy:
    """One Envoy process: started from a template in bench/envoy/, ready once /ready says LIVE."""

    def __init__(self, name, template, values, workdir, cpus):
        self.name = name
        self.dir = Path(workdir) / name
        self.dir.mkdir()
        config = self.dir / "envoy.yaml"
        config.write_text(Template((CONFIGS / template).read_text()).substitute(values))
        self.address_file = self.dir / "admin-address"
        self.log = self.dir / "envoy.log"
        self.process = subprocess.Popen(
            [ENVOY, "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
             "--admin-address-path", str(self.address_file), "--log-level", "warn",
             "--log-path", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        self.admin = self._wait_ready()

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

    def url(self):
        return f"http://127.0.0.1:{self.listener_ports()['front']}{REQUEST_PATH}"

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


def measure(envoy, duration_s, connections):
    before = envoy.cpu_seconds()
    summary = wrk(envoy.url(), duration_s, connections)
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


def optimize_wasm():
    BUILD.mkdir(exist_ok=True)
    subprocess.run(["wasm-opt", "-Oz", "--strip-debug", "--strip-producers", str(WASM),
                    "-o", str(OPT_WASM)], check=True)
    return {"before_bytes": WASM.stat().st_size, "after_bytes": OPT_WASM.stat().st_size}


def start_upstream(workdir):
    upstream = Envoy("upstream", "upstream.yaml", {}, workdir, LOAD_CPUS)
    ports = upstream.listener_ports()
    return upstream, {f"{version}_port": ports[version] for version in VERSIONS}


def start_front(variant, workdir, ports, wasm, template=None):
    values = dict(ports, wasm=wasm, empty_wasm=BARE_WASM if variant == "bare" else EMPTY_WASM)
    return Envoy(variant, template or TEMPLATES[variant], values, workdir, FRONT_CPUS)


def git_commit():
    result = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True)
    return result.stdout.strip() or None


def paired_difference(runs, variant, baseline):
    """The median over rounds of variant minus baseline CPU per request, both from the same
    round: steadier than the difference of the medians when the machine drifts."""
    return statistics.median(ours["cpu_per_request_us"] - base["cpu_per_request_us"]
                             for ours, base in zip(runs[variant], runs[baseline]))


def median_of(runs):
    return {key: statistics.median(run[key] for run in runs) for key in
            ("cpu_per_request_us", "requests_per_s", "p50_ms", "p99_ms")}


def verdict(value, target, at_most=True):
    return {"value": round(value, 3), "target": target,
            "pass": value <= target if at_most else value >= target}


def bench(options):
    sizes = optimize_wasm()
    wasm = Path(options.wasm) if options.wasm else OPT_WASM
    print(f"traffic_split.wasm: {sizes['before_bytes'] / 1024:.1f} KiB, "
          f"after wasm-opt -Oz: {sizes['after_bytes'] / 1024:.1f} KiB; benchmarking {wasm.name}")
    # --also NAME=MODULE: more modules under traffic-split.yaml, for taking the cost apart.
    extra = dict(item.split("=", 1) for item in options.also)
    variants = VARIANTS + tuple(extra)
    runs = {variant: [] for variant in variants}
    rss, split = {}, {}
    with tempfile.TemporaryDirectory(prefix="traffic-split-bench-") as workdir:
        envoys = []
        try:
            upstream, ports = start_upstream(workdir)
            envoys.append(upstream)
            fronts = {}
            for variant in VARIANTS:
                fronts[variant] = start_front(variant, workdir, ports, wasm)
                envoys.append(fronts[variant])
            for variant, module in extra.items():
                fronts[variant] = start_front(variant, workdir, ports, module, "traffic-split.yaml")
                envoys.append(fronts[variant])
            # The first 100k requests of each front Envoy warm it up and measure its memory.
            for variant, front in fronts.items():
                h2load(front.url(), options.warmup_requests, options.connections)
                rss[variant] = front.rss_kib()
                split[variant] = split_of(front)
                print(f"{variant:>14}: RSS {rss[variant] / 1024:.1f} MiB after "
                      f"{options.warmup_requests} requests; split {split[variant]}")
                if any(abs(split[variant][version] - share) > 0.01
                       for version, share in zip(VERSIONS, EXPECTED_SPLIT)):
                    print(f"warning: {variant} does not split {EXPECTED_SPLIT}", file=sys.stderr)
            for round_index in range(options.rounds):
                # Rotate the order so that no variant always runs first or last.
                shift = round_index % len(variants)
                order = variants[shift:] + variants[:shift]
                for variant in order:
                    run = measure(fronts[variant], options.duration, options.connections)
                    runs[variant].append(run)
                    print(f"round {round_index + 1}/{options.rounds} {variant:>14}: "
                          f"{run['cpu_per_request_us']:6.2f} µs/req {run['requests_per_s']:9.0f} req/s "
                          f"p50 {run['p50_ms']:.3f} ms p99 {run['p99_ms']:.3f} ms")
            if options.check_metrics:
                check_filter_metrics(fronts["traffic-split"])
        finally:
            for envoy in envoys:
                envoy.stop()

    medians = {variant: median_of(runs[variant]) for variant in variants}
    native, bare, empty, ours = (medians[variant] for variant in VARIANTS)
    ratios = {
        "cpu_per_request_vs_native": ours["cpu_per_request_us"] / native["cpu_per_request_us"],
        "cpu_per_request_vs_empty": ours["cpu_per_request_us"] / empty["cpu_per_request_us"],
        "cpu_per_request_over_empty_us": ours["cpu_per_request_us"] - empty["cpu_per_request_us"],
        "cpu_per_request_over_native_us": ours["cpu_per_request_us"] - native["cpu_per_request_us"],
        "paired_over_empty_us": paired_difference(runs, "traffic-split", "empty"),
        "cpu_per_request_over_bare_us": ours["cpu_per_request_us"] - bare["cpu_per_request_us"],
        "paired_over_bare_us": paired_difference(runs, "traffic-split", "bare"),
        "empty_over_bare_us": empty["cpu_per_request_us"] - bare["cpu_per_request_us"],
        "bare_vs_native": bare["cpu_per_request_us"] / native["cpu_per_request_us"],
        "empty_vs_native": empty["cpu_per_request_us"] / native["cpu_per_request_us"],
        "paired_over_native_us": paired_difference(runs, "traffic-split", "native"),
        "throughput_vs_native": ours["requests_per_s"] / native["requests_per_s"],
        "throughput_vs_empty": ours["requests_per_s"] / empty["requests_per_s"],
        "rss_vs_native": rss["traffic-split"] / rss["native"],
    }
    targets = {
        "cpu_per_request_vs_native": verdict(ratios["cpu_per_request_vs_native"], TARGETS["cpu_per_request_vs_native"]),
        "cpu_per_request_over_empty_us": verdict(ratios["cpu_per_request_over_empty_us"], TARGETS["cpu_per_request_over_empty_us"]),
        "throughput_vs_native": verdict(ratios["throughput_vs_native"], TARGETS["throughput_vs_native"], at_most=False),
        "optimized_wasm_kb": verdict(sizes["after_bytes"] / 1000, TARGETS["optimized_wasm_kb"]),
    }
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "machine": {"cpus": len(ALL_CPUS), "front_cpus": sorted(FRONT_CPUS),
                    "load_cpus": sorted(LOAD_CPUS), "kernel": platform.release()},
        "envoy": subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout.split("version:")[-1].strip(),
        "settings": {"rounds": options.rounds, "duration_s": options.duration,
                     "connections": options.connections, "warmup_requests": options.warmup_requests,
                     "request": f"GET {REQUEST_PATH} with {REQUEST_HEADER}", "wasm": str(wasm),
                     "load": "wrk -t1, HTTP/1.1 keep-alive; upstreams over HTTP/2"},
        "medians": medians,
        "also": extra,
        "ratios": ratios,
        "targets": targets,
        "wasm_size": sizes,
        "rss_after_warmup_kib": rss,
        "split": split,
        "runs": runs,
    }
    BUILD.mkdir(exist_ok=True)
    out = Path(options.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten to {out}")


def check_filter_metrics(front):
    """The filter counted what it routed: its request counters add up to the upstream requests."""
    ours = front.counters(r"^wasmcustom\.traffic_split\.route\.api\.version\..*\.requests_total$")
    upstream = front.counters(r"^cluster\.service-v[0-9]\.upstream_rq_total$")
    if not ours or sum(ours.values()) != sum(upstream.values()):
        raise RuntimeError(f"the filter's counters {ours} do not match the upstream requests {upstream}")


def print_table(report):
    medians, rss = report["medians"], report["rss_after_warmup_kib"]
    print(f"\n{'variant':<14} {'CPU/req µs':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}")
    for variant in medians:
        m = medians[variant]
        print(f"{variant:<14} {m['cpu_per_request_us']:>10.2f} {m['requests_per_s']:>9.0f} "
              f"{m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f} {rss[variant] / 1024:>8.1f}")
    r = report["ratios"]
    print(f"\ntraffic-split/native: CPU/req {r['cpu_per_request_vs_native']:.3f} "
          f"(+{r['cpu_per_request_over_native_us']:.2f} µs), req/s {r['throughput_vs_native']:.3f}, "
          f"RSS {r['rss_vs_native']:.3f}")
    print(f"traffic-split/empty:  CPU/req {r['cpu_per_request_vs_empty']:.3f} "
          f"(+{r['cpu_per_request_over_empty_us']:.2f} µs; paired by round +{r['paired_over_empty_us']:.2f} µs), "
          f"req/s {r['throughput_vs_empty']:.3f}")
    print(f"traffic-split/bare:   +{r['cpu_per_request_over_bare_us']:.2f} µs (paired by round "
          f"+{r['paired_over_bare_us']:.2f} µs); empty is bare +{r['empty_over_bare_us']:.2f} µs; "
          f"bare/native {r['bare_vs_native']:.3f}, empty/native {r['empty_vs_native']:.3f}")
    for variant in report["also"]:
        print(f"{variant}: paired by round over empty "
              f"{paired_difference(report['runs'], variant, 'empty'):+.2f} µs")
    sizes = report["wasm_size"]
    print(f"traffic_split.wasm: {sizes['before_bytes']} bytes, after wasm-opt -Oz {sizes['after_bytes']} bytes")
    print("\ntargets:")
    labels = {
        "cpu_per_request_vs_native": "CPU/req ≤ 1.12 × native",
        "cpu_per_request_over_empty_us": "CPU/req within 1 µs of empty",
        "throughput_vs_native": "req/s ≥ 0.90 × native",
        "optimized_wasm_kb": "optimized wasm ≤ 300 KB",
    }
    for key, label in labels.items():
        target = report["targets"][key]
        print(f"  {label:<30} {target['value']:>9.3f}  {'pass' if target['pass'] else 'FAIL'}")


def soak(options):
    if not options.wasm:
        optimize_wasm()
    wasm = Path(options.wasm) if options.wasm else OPT_WASM
    step = options.sample_every
    samples = []
    with tempfile.TemporaryDirectory(prefix="traffic-split-soak-") as workdir:
        envoys = []
        try:
            upstream, ports = start_upstream(workdir)
            envoys.append(upstream)
            front = start_front("traffic-split", workdir, ports, wasm)
            envoys.append(front)
            url = front.url()
            started = time.monotonic()
            for sent in range(step, options.requests + 1, step):
                h2load(url, step, options.connections)
                samples.append({"requests": sent, "rss_kib": front.rss_kib()})
                print(f"{sent:>9} requests: RSS {samples[-1]['rss_kib'] / 1024:.1f} MiB "
                      f"({time.monotonic() - started:.0f} s)")
            check_filter_metrics(front)
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
        "pass": last - first <= options.max_growth_kib,
        "max_growth_kib": options.max_growth_kib,
    }
    BUILD.mkdir(exist_ok=True)
    Path(options.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nRSS after {samples[0]['requests']}: {first} KiB, after {samples[-1]['requests']}: {last} KiB, "
          f"growth {last - first} KiB ({(last / first - 1) * 100:+.2f} %): "
          f"{'pass' if report['pass'] else 'FAIL'} (at most {options.max_growth_kib} KiB)")
    print(f"written to {options.out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("bench", help="native vs empty vs traffic-split")
    run.add_argument("--rounds", type=int, default=9)
    run.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    run.add_argument("--connections", type=int, default=16)
    run.add_argument("--warmup-requests", type=int, default=100_000)
    run.add_argument("--wasm", help="the module to benchmark (default: build/traffic_split.opt.wasm)")
    run.add_argument("--also", action="append", default=[], metavar="NAME=MODULE",
                     help="also benchmark another module under traffic-split.yaml (repeatable)")
    run.add_argument("--no-check-metrics", dest="check_metrics", action="store_false")
    run.add_argument("--out", default=str(BUILD / "bench.json"))
    run.set_defaults(handler=bench)
    long = commands.add_parser("soak", help="1M requests through the filter, watching RSS")
    long.add_argument("--requests", type=int, default=1_000_000)
    long.add_argument("--sample-every", type=int, default=100_000)
    long.add_argument("--connections", type=int, default=16)
    long.add_argument("--max-growth-kib", type=int, default=1024)
    long.add_argument("--wasm", help="the module to soak (default: build/traffic_split.opt.wasm)")
    long.add_argument("--out", default=str(BUILD / "soak.json"))
    long.set_defaults(handler=soak)
    options = parser.parse_args()
    for tool in ("wrk", "h2load", "wasm-opt"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"{tool} is missing: run `make apt-tools`")
    for module in (WASM, EMPTY_WASM) if options.command == "bench" else (WASM,):
        if not module.exists():
            sys.exit(f"{module} is missing: run `make bench` (it builds both modules)")
    options.handler(options)


if __name__ == "__main__":
    main()
