#!/usr/bin/env python3
"""CPU per request against the number of routes (`make bench-scale`).

CPU per request against the number of routes (5 to 5,000, the matched one last, and a request
no route matches) and the matched route's destinations (2 to 50), for the filter and for Envoy's
own route table holding the same routes, in alternated rounds; time to /ready and memory at 5
and 10,000 routes; the filter's compile time, heap and ns per match on the host
(examples/match_cost.rs). Prints a table, checks the targets (5,000 routes within 10 % of 5, and
below native), writes build/scale.json and the chart build/scale.png (gnuplot).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import (BUILD, FILTER_COUNTERS, NATIVE_MODULE, REQUEST_HEADER, REQUEST_PATH, ROOT, SCALE_VARIANTS,
                     WASM, check_counters, check_tools, envoy_heap_kib, failed, h2load, measure,
                     print_targets, run_context, start_scale_front, start_upstream, vm_memory_kib)

SCALE_ROUTES = (5, 50, 500, 5000)
SCALE_DESTINATIONS = (2, 10, 50)
# Configure time and memory are measured at this size too, outside the timed rounds.
SCALE_STARTUP_ROUTES = (5, 10_000)
# The requests of the scale run: the last route matches the first, no route the second (it goes
# to the catch-all in both variants, so each does the same work upstream).
SCALE_REQUESTS = {"matched": REQUEST_PATH, "unmatched": "/nothing/here"}
SCALE_UPSTREAM_COUNTERS = r"^cluster\.service-[0-9]+\.upstream_rq_total$"
# The targets: the largest table within 10 % of the smallest, and below Envoy's own
# route table of the same size (ratios paired by round).
SCALE_FLATNESS_BOUND = 1.10
SCALE_NATIVE_BOUND = 1.0
MATCH_COST = ROOT / "target/release/examples/match_cost"


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
                        if variant != "native":
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
    parser.add_argument("--quick", action="store_true",
                        help=f"{SCALE_ROUTES[0]} and {SCALE_ROUTES[-1]} routes, {SCALE_DESTINATIONS[0]} "
                             "destinations, one short round: a check of the plumbing")
    parser.add_argument("--rounds", type=int, help="default 3 (1 with --quick)")
    parser.add_argument("--duration", type=int, help="seconds per timed run; default 3 (2 with --quick)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup-requests", type=int, default=10_000)
    parser.add_argument("--no-startup", action="store_true",
                        help=f"skip the startup measurement at {SCALE_STARTUP_ROUTES} routes")
    parser.add_argument("--wasm", help="the module to benchmark (default: the shipped build/traffic_split.wasm)")
    parser.add_argument("--out", default=str(BUILD / "scale.json"))
    options = parser.parse_args()
    check_tools([WASM, NATIVE_MODULE])
    scale(options)


if __name__ == "__main__":
    main()
