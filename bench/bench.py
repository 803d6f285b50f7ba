#!/usr/bin/env python3
"""The benchmark of traffic-split against Envoy's native routing (`make bench`).

One front Envoy per variant (the table VARIANTS in harness.py: native routing, empty Wasm
filters, the same split written in Envoy's Lua filter, our filter with full and with
request-only metrics), the same request through each, in rounds that alternate the variants,
and the medians of: front Envoy CPU time per request, requests per second at a fixed
concurrency, latency p50/p99. Also the module's size before and after `wasm-opt -Oz`, and each
front Envoy's RSS after its first 100k requests. Then the memory table (memory.py): each
Envoy's RSS idle after configure, by module, worker count and config size. With ablation
modules (`--also`, `--ablations DIR`: the filter with one part removed), the CPU cost table:
what each removed part costs per request. The targets (the table TARGETS in harness.py) are
checked at the end, one PASS/FAIL line each; the exit status is 1 when one fails (unless
--no-targets). Written to build/bench.json.
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from harness import (BUILD, EXPECTED_SPLIT, FILTER_VARIANT, MODULES, NATIVE_MODULE, NATIVE_VARIANT, REQUEST_HEADER, REQUEST_PATH, VARIANTS,
                     VERSIONS, WASM, Variant, check_counters, check_targets, check_tools, failed, h2load,
                     measure, module_path, module_sizes, paired_ratio, print_targets, run_context,
                     split_of, start_front, start_upstream)
from memory import default_cases, memory_table, module_cases, print_memory_table


def also_variant(name, module):
    """--also NAME=MODULE: another module, run like the traffic-split variant, or like the native
    module's (traffic-split-native) if it is a shared library."""
    base = NATIVE_VARIANT if module.endswith(".so") else FILTER_VARIANT
    return Variant(name, name, base.config, module, f"{module} under {base.config}",
                   counters=base.counters)


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
            "over_filter_us": paired_difference(runs, variant, "traffic-split"),
            "over_bare_native_us": paired_difference(runs, variant, "bare-native"),
            "over_native_module_us": paired_difference(runs, variant, "traffic-split-native"),
        }
    return result


def bench(options):
    sizes = module_sizes()
    filter_module = Path(options.wasm) if options.wasm else WASM
    print(f"traffic_split.wasm: {sizes['before_bytes']} bytes built, {sizes['after_bytes']} bytes "
          f"shipped (wasm-metadce, wasm-opt -Oz); benchmarking {filter_module}")
    variants = [variant for variant in VARIANTS if variant.name not in options.skip]
    variants += [also_variant(*item.split("=", 1)) for item in options.also]
    if options.memory_only:
        variants = []
    names = tuple(variant.name for variant in variants)
    for variant in variants:
        print(f"{variant.name:>22}: {variant.measures}")
    runs = {name: [] for name in names}
    rss, split, memory = {}, {}, None
    with tempfile.TemporaryDirectory(prefix="traffic-split-bench-") as workdir:
        envoys = []
        try:
            upstream, ports = start_upstream(workdir)
            envoys.append(upstream)
            if not options.no_memory:
                # Before the timed rounds, one Envoy at a time besides the upstream.
                cases = default_cases(filter_module) + module_cases(
                    [item.split("=", 1) for item in options.also] + memory_modules(options.memory_modules))
                if options.memory_cases:
                    cases = [case for case in cases if case.name in options.memory_cases.split(",")]
                memory = memory_table(cases, workdir, ports, filter_module, options.memory_repeats)
            by_name = {variant.name: variant for variant in variants}
            fronts = {}

            def start_and_warm(name):
                """A front Envoy for the variant, warmed up by the first requests."""
                front = start_front(by_name[name], workdir, ports, filter_module)
                envoys.append(front)
                h2load(front.url(), options.warmup_requests, options.connections)
                if name not in rss:
                    rss[name] = front.rss_kib()
                    split[name] = split_of(front)
                    print(f"{name:>22}: RSS {rss[name] / 1024:.1f} MiB after "
                          f"{options.warmup_requests} requests; split {split[name]}")
                    if any(abs(split[name][version] - share) > 0.01
                           for version, share in zip(VERSIONS, EXPECTED_SPLIT)):
                        print(f"warning: {name} does not split {EXPECTED_SPLIT}", file=sys.stderr)
                return front

            if not options.fresh_envoys:
                for name in names:
                    fronts[name] = start_and_warm(name)
            for round_index in range(options.rounds if names else 0):
                # Rotate the order so that no variant always runs first or last.
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    if options.fresh_envoys:
                        # A process of its own each round: where its code and data landed
                        # (address layout, caches) is a bias of a few µs that stays with a
                        # process for its life, and so would not average out over rounds.
                        if name in fronts:
                            fronts[name].stop()
                            envoys.remove(fronts[name])
                        fronts[name] = start_and_warm(name)
                    run = measure(fronts[name], options.duration, options.connections)
                    runs[name].append(run)
                    print(f"round {round_index + 1}/{options.rounds} {name:>22}: "
                          f"{run['cpu_per_request_us']:6.2f} µs/req {run['requests_per_s']:9.0f} req/s "
                          f"p50 {run['p50_ms']:.3f} ms p99 {run['p99_ms']:.3f} ms")
            if options.check_metrics:
                for variant in variants:
                    # An ablation module removes a part on purpose (its counters, its choice):
                    # its counts are not the upstream's.
                    if variant.counters and not variant.name.startswith("ablate-"):
                        check_counters(fronts[variant.name], variant.counters)
        finally:
            for envoy in envoys:
                envoy.stop()

    report = {
        **run_context(),
        "settings": {"rounds": options.rounds, "duration_s": options.duration,
                     "connections": options.connections, "warmup_requests": options.warmup_requests,
                     "request": f"GET {REQUEST_PATH} with {REQUEST_HEADER}", "wasm": str(filter_module),
                     "load": "wrk -t1, HTTP/1.1 keep-alive; upstreams over HTTP/2",
                     "fresh_envoys": options.fresh_envoys},
        "variants": {variant.name: {"label": variant.label, "config": variant.config,
                                    "module": str(module_path(variant, filter_module) or ""),
                                    "measures": variant.measures} for variant in variants},
        "medians": {name: median_of(runs[name]) for name in runs},
        "comparisons": comparisons(runs, rss) if runs else {},
        "wasm_size": sizes,
        "rss_after_warmup_kib": rss,
        "split": split,
        "runs": runs,
        "memory": memory,
    }
    for table in COST_TABLES:
        report[table["key"]] = cost_table(report, ablations_of(runs, table), table)
    report["targets"] = check_targets(report, "bench")
    BUILD.mkdir(exist_ok=True)
    out = Path(options.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if runs:
        print_tables(report)
        for table in COST_TABLES:
            print_cost_table(report[table["key"]], report["comparisons"].get(table["full"]), table)
    if memory:
        print_memory_table(memory)
    print_targets(report["targets"])
    print(f"\nwritten to {out}")
    if failed(report["targets"]):
        if options.targets:
            sys.exit(1)
        print("(--no-targets: the run reports misses without failing)")


def memory_modules(directory):
    """NAME=MODULE for every module in a directory (`make bench-variants`' build/variants)."""
    if not directory:
        return []
    return [(path.stem, str(path)) for path in sorted(Path(directory).glob("*.wasm"))]


# The cost tables: the ablation modules of each build, the full module they are paired with, and
# the floor its cost is a share of (the SDK's empty filter; the bare native module).
COST_TABLES = (
    {"key": "cost_table", "prefix": "ablate-", "exclude": "ablate-native-", "full": "traffic-split",
     "over": "over_filter_us", "floor": "over_empty_us", "floor_label": "empty"},
    {"key": "native_cost_table", "prefix": "ablate-native-", "exclude": None,
     "full": "traffic-split-native", "over": "over_native_module_us", "floor": "over_bare_native_us",
     "floor_label": "bare native"},
)


def ablations_of(names, table):
    return [name for name in names if name.startswith(table["prefix"])
            and not (table["exclude"] and name.startswith(table["exclude"]))]


def cost_table(report, ablations, table):
    """What each ablation module (the module with one part removed) saves per request, against the
    full module in the same rounds; and where it stands against native, the floor and lua."""
    comparisons = report["comparisons"]
    if not ablations or table["full"] not in comparisons:
        return []
    full = comparisons[table["full"]]
    rows = []
    for name in ablations:
        ablated = comparisons[name]
        saved = ablated[table["over"]]
        full_over_floor = full[table["floor"]] or 0
        rows.append({"module": name, "saves_us": None if saved is None else -saved,
                     "share_of_filter_over_floor": (-saved / full_over_floor
                                                    if saved is not None and full_over_floor > 0 else None),
                     "cpu_vs_native": ablated["cpu_vs_native"], "over_native_us": ablated["over_native_us"],
                     "over_floor_us": ablated[table["floor"]], "over_lua_us": ablated["over_lua_us"]})
    return rows


def print_cost_table(rows, full, table):
    if not rows or not full:
        return

    def delta(value):
        return "—" if value is None else f"{value:+.2f}"

    floor = table["floor_label"]
    print(f"\ncost table: each module without one part, paired by round with the full {table['full']} "
          f"(itself {delta(full['over_native_us'])} µs over native, {delta(full[table['floor']])} over {floor}, "
          f"{delta(full['over_lua_us'])} over lua)")
    print(f"{'module':<30} {'saves µs':>9} {'of µs>floor':>11} {'CPU×native':>10} {'µs>native':>9} "
          f"{'µs>floor':>8} {'µs>lua':>8}")
    for row in rows:
        share = "—" if row["share_of_filter_over_floor"] is None else f"{row['share_of_filter_over_floor']:.0%}"
        print(f"{row['module']:<30} {delta(row['saves_us']):>9} {share:>11} {row['cpu_vs_native']:>10.3f} "
              f"{delta(row['over_native_us']):>9} {delta(row['over_floor_us']):>8} {delta(row['over_lua_us']):>8}")


# The native module's floors (docs/performance.md, "Where the native module's cost goes"): any
# dynamic module, and any module that routes by the headers it writes.
NATIVE_FLOORS = ("bare-native", "header-floor-native")


def print_native_floors(runs):
    """The native module's CPU per request against each of its floors, paired by round: what the
    native module adds to what Envoy spends on any module that does its job."""
    module = NATIVE_VARIANT.name
    floors = [floor for floor in NATIVE_FLOORS if floor in runs]
    if module not in runs or "native" not in runs or not floors:
        return
    print(f"\n{module} against its floors (paired by round):")
    for floor in floors:
        ratio = paired_ratio(runs, module, floor, "cpu_per_request_us")
        print(f"  CPU × {floor}: {ratio:.3f} ({paired_difference(runs, module, floor):+.2f} µs); "
              f"{floor} itself {paired_ratio(runs, floor, 'native', 'cpu_per_request_us'):.3f} × native")


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
    print_native_floors(report["runs"])
    sizes = report["wasm_size"]
    print(f"\ntraffic_split.wasm: {sizes['before_bytes']} bytes built, {sizes['after_bytes']} bytes shipped")
    for name, variant in report["variants"].items():
        if variant["module"] and name not in ("bare", "empty"):
            print(f"  {name} loads {variant['module']}: {Path(variant['module']).stat().st_size} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup-requests", type=int, default=100_000)
    parser.add_argument("--fresh-envoys", action="store_true",
                        help="a fresh front Envoy per variant and round (slower; for parts of a few µs)")
    parser.add_argument("--wasm", help="the module to benchmark (default: the shipped build/traffic_split.wasm)")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=MODULE",
                        help="also benchmark another module like the traffic-split variant, or a shared "
                             "library (.so) like the traffic-split-native one (repeatable)")
    parser.add_argument("--skip", action="append", default=[], metavar="VARIANT",
                        choices=[variant.name for variant in VARIANTS if variant.name != "native"],
                        help="leave a variant out (repeatable); its targets are reported as SKIP")
    parser.add_argument("--no-check-metrics", dest="check_metrics", action="store_false")
    parser.add_argument("--ablations", metavar="DIR",
                        help="every DIR/<part>.wasm as --also ablate-<part>, and DIR/native-<part>.so as "
                             "--also ablate-native-<part> (make bench-ablations: build/ablate)")
    parser.add_argument("--memory-modules", metavar="DIR",
                        help="every DIR/*.wasm in the memory table too (make bench-variants: build/variants)")
    parser.add_argument("--memory-repeats", type=int, default=3, help="fresh Envoys per memory case")
    parser.add_argument("--no-memory", action="store_true", help="leave the memory table out")
    parser.add_argument("--memory-cases", metavar="NAME,...", help="only these cases of the memory table")
    parser.add_argument("--memory-only", action="store_true", help="only the memory table: no timed rounds")
    parser.add_argument("--no-targets", dest="targets", action="store_false",
                        help="report the targets without failing the run on a miss")
    parser.add_argument("--out", default=str(BUILD / "bench.json"))
    options = parser.parse_args()
    if options.ablations:
        found = sorted(Path(options.ablations).glob("*.wasm")) + sorted(Path(options.ablations).glob("*.so"))
        if not found:
            sys.exit(f"--ablations {options.ablations}: no modules (make bench-ablations)")
        options.also += [f"ablate-{path.stem}={path}" for path in found]
    for item in options.also:
        if "=" not in item:
            sys.exit(f"--also {item}: expected NAME=MODULE")
        if item.split("=", 1)[0] in {variant.name for variant in VARIANTS}:
            sys.exit(f"--also {item}: the name is one of the benchmark's variants")
    check_tools([WASM, NATIVE_MODULE, *MODULES.values(), *(Path(item.split("=", 1)[1]) for item in options.also)])
    bench(options)


if __name__ == "__main__":
    main()
