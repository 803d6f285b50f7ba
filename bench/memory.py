"""The memory table of `make bench`: the front Envoy's RSS idle after configure, one Envoy at a
time, by module, by worker count and by config size, so that what the filter adds over the
SDK's empty filter can be taken apart: V8's compilation of the module's code (grows with the
code, not with workers), the VMs' linear memory (one per worker, plus the main thread's),
Envoy's own heap (the stats and their names, the plugin config).

Each case is measured `repeats` times (a fresh Envoy each time) and the medians are kept: RSS
(VmRSS, with its anonymous and file-backed parts), Envoy's heap in use (tcmalloc's allocated
bytes, from the admin's /memory, and the freed pages it keeps mapped), the filter's linear
memory (its log line once configured), the number of stats Envoy holds, the time to /ready; and
the module's code shape (functions, the largest function's body).
"""

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from harness import (FRONT_CPUS, RAW_WASM, VARIANTS, Envoy, envoy_heap_detail_kib, front_values, module_path,
                     start_scale_front, vm_memory_kib, wasm_code_shape)

VARIANTS_BY_NAME = {variant.name: variant for variant in VARIANTS}


@dataclass(frozen=True)
class MemoryCase:
    name: str
    what: str
    variant: str  # the VARIANTS entry whose config it runs, or "native"/"traffic-split" of a generated table
    module: str | None = None  # a module's path in place of the variant's
    workers: int = 1
    routes: int | None = None  # a generated table of this many routes (2 destinations each)
    plugin_fields: dict = field(default_factory=dict)  # added to a generated table's plugin config


def default_cases(filter_module):
    """The cases every `make bench` measures (about two minutes with 3 repeats)."""
    cases = [
        MemoryCase("native", "Envoy's own routing, no filter", "native"),
        MemoryCase("lua", "the split in Envoy's Lua filter", "lua"),
        MemoryCase("bare", "a module with one callback (benches/bare-filter)", "bare"),
        MemoryCase("empty", "the SDK's empty filter (benches/empty-filter)", "empty"),
        MemoryCase("traffic-split", f"the shipped module ({Path(filter_module).name})", "traffic-split"),
        MemoryCase("traffic-split-requests", 'the same, "metrics": "requests" (fewer stats)',
                   "traffic-split-requests"),
        MemoryCase("bare-native", "a dynamic module whose hooks do nothing (benches/bare-native)",
                   "bare-native"),
        MemoryCase("traffic-split-native", "the native module (libtraffic_split.so)",
                   "traffic-split-native"),
    ]
    if RAW_WASM.exists():
        cases.append(MemoryCase("traffic-split-raw", "cargo's output: no wasm-metadce, no wasm-opt",
                                "traffic-split", module=str(RAW_WASM)))
    for workers in (2, 4):
        cases.append(MemoryCase(f"empty-{workers}w", f"empty, {workers} workers", "empty", workers=workers))
        cases.append(MemoryCase(f"traffic-split-{workers}w", f"traffic-split, {workers} workers",
                                "traffic-split", workers=workers))
    for routes in (1, 100, 1000):
        cases.append(MemoryCase(f"traffic-split-{routes}-routes", f"generated table, {routes} routes, full metrics",
                                "traffic-split", routes=routes))
    cases.append(MemoryCase("traffic-split-1000-routes-requests", 'generated table, 1000 routes, "metrics": "requests"',
                            "traffic-split", routes=1000, plugin_fields={"metrics": "requests"}))
    cases.append(MemoryCase("native-1000-routes", "Envoy's route table, the same 1000 routes", "native",
                            routes=1000))
    return cases


def module_cases(items):
    """NAME=MODULE pairs (--also, --memory-modules): the module under traffic-split.yaml, or a
    shared library (.so) as the native module."""
    def variant(module):
        return "traffic-split-native" if str(module).endswith(".so") else "traffic-split"
    return [MemoryCase(name, f"{module} under {variant(module)}'s config", variant(module), module=module)
            for name, module in items]


def case_module(case, filter_module):
    if case.module:
        return case.module
    if case.routes is not None:
        return str(filter_module) if case.variant == "traffic-split" else None
    return module_path(VARIANTS_BY_NAME[case.variant], filter_module)


def start_case(case, workdir, ports, filter_module, index):
    name = f"memory-{case.name}-{index}"
    module = case_module(case, filter_module)
    if case.routes is not None:
        return start_scale_front(case.variant, case.routes, 2, workdir, ports, str(module or ""), None, "info",
                                 plugin_fields=case.plugin_fields, name=name, concurrency=case.workers)
    variant = VARIANTS_BY_NAME[case.variant]
    values = front_values(variant, ports, module)
    # At info, the filter logs its VM's linear memory once configured.
    return Envoy(name, variant.config, values, workdir, FRONT_CPUS, "info", concurrency=case.workers)


def measure_case(case, workdir, ports, filter_module, repeats):
    samples = []
    for index in range(repeats):
        front = start_case(case, workdir, ports, filter_module, index)
        try:
            sample = {"rss_kib": front.settled_rss_kib(), "rss_anon_kib": front.status_kib("RssAnon"),
                      "rss_file_kib": front.status_kib("RssFile"), "stats": front.stats_count(),
                      "ready_s": front.ready_s, **envoy_heap_detail_kib(front)}
        finally:
            front.stop()
        # Envoy flushes its log file at exit: the filter's line is there now.
        sample["vm_memory_kib"] = vm_memory_kib(front)
        samples.append(sample)
    medians = {key: statistics.median(sample[key] for sample in samples)
               for key in samples[0] if all(sample[key] is not None for sample in samples)}
    module = case_module(case, filter_module)
    return {"what": case.what, "workers": case.workers, "routes": case.routes,
            "module": str(module or ""), "module_bytes": Path(module).stat().st_size if module else None,
            **(wasm_code_shape(module) if module and str(module).endswith(".wasm") else {}), **medians,
            "samples": samples}


def memory_table(cases, workdir, ports, filter_module, repeats):
    results = {}
    for case in cases:
        results[case.name] = measure_case(case, workdir, ports, filter_module, repeats)
        entry = results[case.name]
        print(f"memory {case.name:>36}: RSS {entry['rss_kib'] / 1024:6.1f} MiB, Envoy heap "
              f"{entry['envoy_heap_allocated_kib'] / 1024:5.1f} MiB, {entry['stats']:>6.0f} stats, "
              f"ready in {entry['ready_s']:.1f} s")
    return {"repeats": repeats, "cases": results, "breakdown": breakdown(results)}


def breakdown(cases):
    """What the shipped module adds over the SDK's empty filter (1 worker), and over native, in
    parts: Envoy's heap (stats, config), the linear memory the VMs reserve (main thread and
    worker), the rest (V8: the compiled code and its metadata, V8's own heap)."""
    if "traffic-split" not in cases or "empty" not in cases:
        return None
    ours, empty = cases["traffic-split"], cases["empty"]

    def mib(kib):
        return round(kib / 1024, 2)

    rss = ours["rss_kib"] - empty["rss_kib"]
    heap = ours["envoy_heap_allocated_kib"] - empty["envoy_heap_allocated_kib"]
    result = {"rss_over_empty_mib": mib(rss), "envoy_heap_over_empty_mib": mib(heap),
              "rest_over_empty_mib": mib(rss - heap)}
    if "native" in cases:
        result["rss_over_native_mib"] = mib(ours["rss_kib"] - cases["native"]["rss_kib"])
        result["empty_over_native_mib"] = mib(empty["rss_kib"] - cases["native"]["rss_kib"])
    if "traffic-split-requests" in cases:
        result["full_metrics_over_requests_mib"] = mib(ours["rss_kib"] - cases["traffic-split-requests"]["rss_kib"])
    if "traffic-split-raw" in cases:
        result["raw_over_shipped_mib"] = mib(cases["traffic-split-raw"]["rss_kib"] - ours["rss_kib"])
    if "traffic-split-4w" in cases and "empty-4w" in cases:
        result["per_worker_mib"] = mib((cases["traffic-split-4w"]["rss_kib"] - ours["rss_kib"]) / 3)
        result["empty_per_worker_mib"] = mib((cases["empty-4w"]["rss_kib"] - empty["rss_kib"]) / 3)
    return result


def print_memory_table(memory):
    print(f"\nmemory idle after configure (medians of {memory['repeats']} fresh Envoys; MiB; heap = "
          "Envoy's tcmalloc in use, free = freed pages it keeps, linear = the filter's VM memory per "
          "VM; funcs and largest = the module's functions and largest function body)")
    print(f"{'case':<36} {'RSS':>6} {'anon':>6} {'file':>5} {'heap':>5} {'free':>5} {'linear':>6} "
          f"{'stats':>6} {'module KB':>9} {'funcs':>5} {'largest':>7}  what")
    empty = memory["cases"].get("empty")
    for name, entry in memory["cases"].items():
        linear = f"{entry['vm_memory_kib'] / 1024:6.1f}" if "vm_memory_kib" in entry else f"{'—':>6}"
        size = f"{entry['module_bytes'] / 1000:9.1f}" if entry["module_bytes"] else f"{'—':>9}"
        shape = (f"{entry['functions']:>5} {entry['largest_function_bytes'] / 1000:6.1f}K"
                 if "functions" in entry else f"{'—':>5} {'—':>7}")
        print(f"{name:<36} {entry['rss_kib'] / 1024:6.1f} {entry['rss_anon_kib'] / 1024:6.1f} "
              f"{entry['rss_file_kib'] / 1024:5.1f} {entry['envoy_heap_allocated_kib'] / 1024:5.1f} "
              f"{entry['envoy_pageheap_free_kib'] / 1024:5.1f} {linear} "
              f"{entry['stats']:>6.0f} {size} {shape}  {entry['what']}")
    if empty and memory["breakdown"]:
        print("\nover the SDK's empty filter (1 worker): " +
              ", ".join(f"{key} {value:+.2f}" for key, value in memory["breakdown"].items()))
