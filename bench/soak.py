#!/usr/bin/env python3
"""1M requests through the filter (`make soak`): the front Envoy's RSS after the first 100k and
after every further 100k, checked against its target in TARGETS (harness.py). Written to
build/soak.json.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness import (BUILD, FILTER_VARIANT, WASM, check_counters, check_targets, check_tools, failed,
                     git_commit, h2load, print_targets, start_front, start_upstream)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--sample-every", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wasm", help="the module to soak (default: the shipped build/traffic_split.wasm)")
    parser.add_argument("--out", default=str(BUILD / "soak.json"))
    options = parser.parse_args()
    check_tools([WASM])
    soak(options)


if __name__ == "__main__":
    main()
