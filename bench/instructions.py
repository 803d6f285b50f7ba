#!/usr/bin/env python3
"""Instructions per request of the benchmark's front Envoys, counted by callgrind (`make
bench-instructions`).

The timed benchmark (bench.py) reads CPU time, whose rounds on a shared 2-core machine spread by
±15%: too wide to see a change of a few percent, or to say where a module's cost goes. Valgrind's
callgrind counts the instructions a process executes, which do not depend on what else the
machine runs. For each variant of VARIANTS asked for: the front Envoy (one worker, the same
template and upstreams as bench.py) starts under callgrind with instrumentation off, takes
warm-up requests, then instrumentation is switched on for exactly N requests (h2load, 4
connections, the benchmark's request) and the counts are dumped. Reported: user-space
instructions per request, each variant against native routing, and the native module's own
functions and the Envoy callbacks it calls, inclusive, per request. Instructions are not time
(a cache miss costs more than an add), so this ranks costs and shows changes; the targets stay
bench.py's. Written to build/instructions.json.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from string import Template

from harness import (BUILD, CONFIGS, NATIVE_VARIANT, REQUEST_HEADER, REQUEST_PATH, VARIANTS, WASM, Variant,
                     front_values, module_path, start_upstream)

# The Envoy binary itself: `.venv/bin/envoy` is a Python launcher, which valgrind would run
# instead.
ENVOY_BINARY = os.environ.get("ENVOY_BINARY") or next(
    iter(sorted(glob.glob(str(Path(__file__).resolve().parent.parent
                              / ".venv/lib/python3*/site-packages/envoy/_bin/envoy")))), "")
DEFAULT_VARIANTS = ("native", "bare-native", "header-floor-native", "traffic-split-native")
# What the per-function table lists: the native module's functions and Envoy's callbacks.
FUNCTION_PATTERN = re.compile(r"traffic_split|envoy_dynamic_module")
# Under valgrind a first request can outlast the route's 1 s timeout: warm-up answers are not
# checked, and warm-up takes this many requests.
WARMUP_REQUESTS = 900


def load(url, requests):
    """`requests` requests over HTTP/1.1; the 2xx count h2load saw."""
    out = subprocess.run(["h2load", "--h1", "-t1", "-c4", f"-n{requests}", "-H", REQUEST_HEADER, url],
                         capture_output=True, text=True, check=True).stdout
    status = next(line for line in out.splitlines() if line.startswith("status codes:"))
    return int(status.split()[2])


def front_port(admin_file, process, log, timeout_s=300):
    """The front listener's port, once the Envoy under valgrind answers its admin."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Envoy under valgrind exited:\n{log.read_text()[-3000:]}")
        address = admin_file.read_text().strip() if admin_file.exists() else ""
        if address:
            try:
                listeners = json.loads(urllib.request.urlopen(
                    f"http://{address}/listeners?format=json", timeout=5).read())["listener_statuses"]
                return next(listener["local_address"]["socket_address"]["port_value"]
                            for listener in listeners if listener["name"] == "front")
            except OSError:
                pass
        time.sleep(0.25)  # poll interval, not a synchronisation
    raise RuntimeError("Envoy under valgrind did not answer its admin in time")


def count(variant, workdir, ports, requests):
    """Callgrind's profile of `requests` requests through the variant's front Envoy."""
    folder = Path(workdir) / variant.name
    folder.mkdir()
    values = front_values(variant, ports, module_path(variant, WASM))
    config = folder / "envoy.yaml"
    config.write_text(Template((CONFIGS / variant.config).read_text()).substitute(values))
    env = dict(os.environ)
    if values.get("native_module"):
        modules = folder / "modules"
        modules.mkdir()
        (modules / "libtraffic_split.so").symlink_to(Path(values["native_module"]).resolve())
        env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(modules)
    profile = folder / "callgrind.out"
    log = folder / "valgrind.log"
    admin = folder / "admin-address"
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}", "--instr-atstart=no",
         ENVOY_BINARY, "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
         "--admin-address-path", str(admin), "--log-level", "warn"],
        env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        url = f"http://127.0.0.1:{front_port(admin, process, log)}{REQUEST_PATH}"
        load(url, WARMUP_REQUESTS)
        subprocess.run(["callgrind_control", "--instr=on", str(process.pid)], check=True, capture_output=True)
        ok = load(url, requests)
        subprocess.run(["callgrind_control", "--instr=off", str(process.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
        if ok != requests:
            raise RuntimeError(f"{variant.name}: {ok} of {requests} requests answered 2xx under valgrind")
    finally:
        process.terminate()
        process.wait(timeout=120)
    dumps = sorted(folder.glob("callgrind.out.*"))
    if not dumps:
        raise RuntimeError(f"{variant.name}: callgrind wrote no profile")
    return dumps[-1]


def annotate(profile, inclusive):
    """(instructions, function) rows of callgrind_annotate, and the program's total."""
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
                          str(profile)], capture_output=True, text=True, check=True).stdout
    total, rows = None, []
    for line in out.splitlines():
        match = re.match(r"^\s*([\d,]+) \([^)]*\)\s+(.*)$", line)
        if not match:
            continue
        value = int(match.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in match.group(2):
            total = value
        else:
            rows.append((value, match.group(2)))
    return total, rows


def function_name(row):
    """`???:name [object]` as `name`."""
    return re.sub(r"\s*\[[^\]]*\]$", "", row).split(":", 1)[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--variant", action="append", choices=[variant.name for variant in VARIANTS],
                        help=f"a variant to count (repeatable; default: {', '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=LIB.so",
                        help="also count a native module under traffic-split-native.yaml (repeatable; "
                             "e.g. an ablation of make bench-ablations, build/ablate/native-<part>.so)")
    parser.add_argument("--out", default=str(BUILD / "instructions.json"))
    options = parser.parse_args()
    if not ENVOY_BINARY or not Path(ENVOY_BINARY).exists():
        sys.exit("no Envoy binary under .venv (make envoy), and ENVOY_BINARY is not set")
    names = options.variant or list(DEFAULT_VARIANTS)
    if "native" not in names:
        names.insert(0, "native")
    by_name = {variant.name: variant for variant in VARIANTS}
    for item in options.also:
        name, _, library = item.partition("=")
        if not name or not library.endswith(".so") or name in by_name:
            sys.exit(f"--also {item}: expected NAME=LIB.so, NAME not a variant's")
        by_name[name] = Variant(name, name, NATIVE_VARIANT.config, library, f"{library} under {NATIVE_VARIANT.config}")
        names.append(name)
    report = {"requests": options.requests, "variants": {}}
    with tempfile.TemporaryDirectory(prefix="traffic-split-instructions-") as workdir:
        upstream, ports = start_upstream(workdir)
        try:
            for name in names:
                profile = count(by_name[name], workdir, ports, options.requests)
                total, _ = annotate(profile, inclusive=False)
                _, inclusive = annotate(profile, inclusive=True)
                functions = {}
                for value, row in inclusive:
                    if FUNCTION_PATTERN.search(row):
                        functions.setdefault(function_name(row), round(value / options.requests))
                report["variants"][name] = {"per_request": round(total / options.requests),
                                            "functions_per_request": functions}
                print(f"{name:>22}: {total / options.requests:9.0f} instructions a request", flush=True)
        finally:
            upstream.stop()
    native = report["variants"]["native"]["per_request"]
    print(f"\n{'variant':<24} {'instr/req':>10} {'× native':>9} {'> native':>9}")
    for name, counted in report["variants"].items():
        counted["vs_native"] = round(counted["per_request"] / native, 4)
        print(f"{name:<24} {counted['per_request']:>10} {counted['vs_native']:>9.3f} "
              f"{counted['per_request'] - native:>+9}")
    for name, counted in report["variants"].items():
        if counted["functions_per_request"]:
            print(f"\n{name}: the module's functions and Envoy's callbacks, inclusive, per request")
            for function, value in list(counted["functions_per_request"].items())[:25]:
                print(f"{value:>8}  {function}")
    out = Path(options.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
