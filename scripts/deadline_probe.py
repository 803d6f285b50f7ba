#!/usr/bin/env python3
"""When does Envoy's deadline fire, and what does the filter's duration measure?

Runs envoy/envoy.yaml (the 2 ms route deadline of the demo, v1 at once, v2 after 5 ms) with an
access log of Envoy's own per-stream timestamps, sends requests either over one kept-alive
connection or with a new connection each (as `curl` in a loop does), and prints, per version
and per way of sending: how many were cut (Envoy's UT flag), when the 504 reached the client,
Envoy's own times for the same streams, and the filter's histogram. docs/metrics.md
("Deadlines: what Envoy's timer does") has the figures and what they mean.

usage: scripts/deadline_probe.py [--requests N] [--pause-ms MS] [--timeout-ms MS]
(build/traffic_split.wasm and .venv/bin/envoy must exist: `make build envoy`)
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# Envoy's own clock for each stream, in microseconds from the first byte received
# (DS_RX_BEG); the router arms the route's timer when the request is complete (DS_RX_END).
ACCESS_LOG_FORMAT = {
    "probe": "%REQ(X-PROBE-ID)%",
    "version": "%REQ(X-SPLIT-VERSION)%",
    "code": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "timeout_header": "%REQ(X-ENVOY-UPSTREAM-RQ-TIMEOUT-MS)%",
    "rx_end_us": "%COMMON_DURATION(DS_RX_BEG:DS_RX_END:us)%",
    "us_tx_beg_us": "%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)%",
    "ds_tx_beg_us": "%COMMON_DURATION(DS_RX_BEG:DS_TX_BEG:us)%",
    "armed_to_reply_us": "%COMMON_DURATION(DS_RX_END:DS_TX_BEG:us)%",
    "duration_ms": "%DURATION%",
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rename_sockets(node, tag):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "path" and isinstance(value, str) and value.startswith("@"):
                node[key] = f"@{tag}-{value[1:]}"
            else:
                rename_sockets(value, tag)
    elif isinstance(node, list):
        for item in node:
            rename_sockets(item, tag)


def envoy_config(workdir, admin_port, front_port, timeout_ms):
    config = yaml.safe_load((ROOT / "envoy/envoy.yaml").read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    front = config["static_resources"]["listeners"][0]
    front["address"]["socket_address"]["port_value"] = front_port
    manager = front["filter_chains"][0]["filters"][0]["typed_config"]
    manager["access_log"] = [{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(workdir / "access.log"),
            "log_format": {"json_format": ACCESS_LOG_FORMAT},
        },
    }]
    wasm = next(f for f in manager["http_filters"] if f["name"] == "traffic-split")
    wasm["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(
        ROOT / "build/traffic_split.wasm")
    plugin = json.loads(wasm["typed_config"]["config"]["configuration"]["value"])
    plugin["routes"][0]["timeout"] = f"{timeout_ms / 1000}s"
    wasm["typed_config"]["config"]["configuration"]["value"] = json.dumps(plugin)
    rename_sockets(config, workdir.name)
    path = workdir / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def get(port, probe, connection=None):
    """One GET /hello; returns (status, seconds from connect-or-send to the last byte, socket)."""
    start = time.perf_counter()
    if connection is None:
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sendall(
        f"GET /hello HTTP/1.1\r\nhost: springbootapp\r\nx-probe-id: {probe}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += connection.recv(4096)
    elapsed = time.perf_counter() - start
    status = int(head.split(b" ")[1]) if head else 0
    closes = b"connection: close" in head.lower()
    return status, elapsed, (None if closes else connection)


def quantiles(values):
    if not values:
        return "-"
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"min {values[0]:.0f}  p50 {pick(0.5):.0f}  p90 {pick(0.9):.0f}  max {values[-1]:.0f}"


def histogram(admin_port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/stats/prometheus").read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("traffic_split_request_duration_microseconds_bucket"):
            labels, value = line.rsplit(" ", 1)
            version = labels.split('version="')[1].split('"')[0]
            le = labels.split('le="')[1].split('"')[0]
            buckets.setdefault(version, {})[le] = float(value)
    return buckets


def run(mode, args, workdir):
    admin_port, front_port = free_port(), free_port()
    config = envoy_config(workdir, admin_port, front_port, args.timeout_ms)
    env = dict(os.environ)
    if args.precise_timer:
        # libevent reads this when Envoy creates each event loop: CLOCK_MONOTONIC instead of
        # CLOCK_MONOTONIC_COARSE for its timers.
        env["EVENT_PRECISE_TIMER"] = "1"
    envoy = subprocess.Popen(
        [str(ROOT / ".venv/bin/envoy"), "-c", str(config), "--concurrency", "1",
         "--disable-hot-restart", "--log-level", "warn", "--base-id", str(os.getpid() % 1000 + 7)],
        stdout=subprocess.DEVNULL, stderr=open(workdir / "envoy.log", "w"), env=env)
    try:
        for _ in range(600):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready").status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        # Warm the upstream connections and the filter's code: these are not measured.
        connection = None
        for n in range(20):
            _, _, connection = get(front_port, f"warm-{n}", connection)
        (workdir / "access.log").write_text("")
        time.sleep(0.2)
        client = {}
        connection = None
        for n in range(args.requests):
            if mode == "new-connection":
                status, elapsed, leftover = get(front_port, n)
                if leftover is not None:
                    leftover.close()
            else:
                try:
                    status, elapsed, connection = get(front_port, n, connection)
                except OSError:
                    connection = None
                    status, elapsed, connection = get(front_port, n, connection)
            client[str(n)] = (status, elapsed * 1e6)
            time.sleep(args.pause_ms / 1000)
        # A read of the admin flushes the histograms; the next read shows them.
        histogram(admin_port)
        time.sleep(0.5)
        buckets = histogram(admin_port)
    finally:
        envoy.terminate()
        envoy.wait()
    rows = [json.loads(line) for line in (workdir / "access.log").read_text().splitlines() if line]
    rows = [row for row in rows if row["probe"] in client]
    timer = "EVENT_PRECISE_TIMER=1" if args.precise_timer else "libevent's default clock"
    print(f"\n== {mode}, {timer}: {len(rows)} requests, {args.pause_ms} ms apart, route deadline "
          f"{args.timeout_ms} ms (x-envoy-upstream-rq-timeout-ms: "
          f"{sorted({row['timeout_header'] for row in rows})})")
    for version in sorted({row["version"] for row in rows}):
        mine = [row for row in rows if row["version"] == version]
        cut = [row for row in mine if "UT" in row["flags"]]
        print(f"{version}: {len(mine)} requests, {len(cut)} cut by the deadline (UT)")
        for label, group in (("cut", cut), ("not cut", [r for r in mine if "UT" not in r["flags"]])):
            if not group:
                continue
            num = lambda key: [float(r[key]) for r in group if r[key] not in (None, "-")]
            print(f"  {label} ({len(group)}), in microseconds:")
            print(f"    client, connect/send to last byte:   {quantiles([client[r['probe']][1] for r in group])}")
            print(f"    Envoy, first byte to request end:    {quantiles(num('rx_end_us'))}")
            print(f"    Envoy, request end to reply (timer): {quantiles(num('armed_to_reply_us'))}")
            print(f"    Envoy, first byte to reply:          {quantiles(num('ds_tx_beg_us'))}")
        version_buckets = buckets.get(version, {})
        if version_buckets:
            total = version_buckets.get("+Inf", 0)
            within = version_buckets.get(f"{args.timeout_ms * 1000}", None)
            print(f"  filter's histogram: {total:.0f} recorded, {within:.0f} at or under "
                  f"{args.timeout_ms * 1000} us" if within is not None else
                  f"  filter's histogram: {total:.0f} recorded")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--pause-ms", type=float, default=5)
    parser.add_argument("--timeout-ms", type=int, default=2)
    parser.add_argument("--precise-timer", action="store_true",
                        help="start Envoy with EVENT_PRECISE_TIMER=1")
    parser.add_argument("--mode", choices=["new-connection", "keep-alive", "both"], default="both")
    args = parser.parse_args()
    modes = ["keep-alive", "new-connection"] if args.mode == "both" else [args.mode]
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="ts-probe-") as workdir:
            run(mode, args, Path(workdir))


if __name__ == "__main__":
    sys.exit(main())
