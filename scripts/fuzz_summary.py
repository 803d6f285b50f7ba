#!/usr/bin/env python3
"""One line per fuzz run, from libFuzzer's log: runs, time, coverage, corpus (make fuzz)."""

import re
import sys


def main() -> int:
    target, log_path = sys.argv[1], sys.argv[2]
    text = open(log_path, encoding="utf-8", errors="replace").read()
    done = re.search(r"Done (\d+) runs in (\d+) second", text)
    # The last status line: "#N  DONE   cov: 1234 ft: 5678 corp: 90/12Kb ..."
    status = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", text)
    rss = re.search(r"stat::peak_rss_mb:\s+(\d+)", text)
    if not done or not status:
        print(f"fuzz {target}: no summary in {log_path}")
        return 1
    runs, seconds = int(done.group(1)), int(done.group(2))
    coverage, features, corpus = status[-1]
    rate = runs // max(seconds, 1)
    peak = f", peak RSS {rss.group(1)} MB" if rss else ""
    print(
        f"fuzz {target}: {runs:,} runs in {seconds} s ({rate:,}/s), no crash; "
        f"coverage {coverage} edges, {features} features, corpus {corpus} inputs{peak}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
