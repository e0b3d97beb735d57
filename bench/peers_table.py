#!/usr/bin/env python3
"""The peer comparison's table (bench/peers.sh): reads bench/results/peers-
NAME-TARGET-RUN.txt (RUN a number; warm-up runs are skipped), takes each
file's last JSON line (the load generator's report), and prints, per figure,
the median over runs for Longhouse and for the Yjs awareness server and
their ratio (Longhouse / Yjs), as a Markdown table."""

import glob
import json
import os
import re
import statistics
import sys

from medians import get  # bench/medians.py: a field of a report by path

TARGETS = ("longhouse", "yjs")


def per(num_path, den_path, scale=1.0):
    def f(r):
        num, den = get(r, num_path), get(r, den_path)
        if num is None or not den:
            return None
        return num * scale / den
    return f


def at(*path):
    return lambda r: get(r, path)


# (label, how to read it from a report, which way is better)
STATE = [
    ("updates delivered/s", at("delivered_per_sec"), "higher"),
    ("update to last receiver p50, ms", at("to_last_receiver_ms", "p50"), "lower"),
    ("update to last receiver p99, ms", at("to_last_receiver_ms", "p99"), "lower"),
    ("each receipt p99, ms", at("receipt_ms", "p99"), "lower"),
    ("fraction of the updates sent that each receiver got", at("received_fraction", "mean"), "(coalescing)"),
    ("lost final states", at("lost_final_states"), "0"),
    ("leaves seen of clients that stayed", at("spurious_leaves"), "0"),
    ("server CPU, cores", at("cpu", "server_cores"), "lower"),
    ("server CPU per 1,000 deliveries, ms", per(("cpu", "server_cpu_ms"), ("delivered",), 1000.0), "lower"),
    ("load generator CPU, cores", at("cpu", "loadgen_cores"), "(driver)"),
]
JOIN = [
    ("joins/s", at("joins_per_sec"), "higher"),
    ("connect to welcome p50, ms", at("connect_to_welcome_ms", "p50"), "lower"),
    ("connect to welcome p99, ms", at("connect_to_welcome_ms", "p99"), "lower"),
    ("leaves/s", at("leaves_per_sec"), "higher"),
    ("lost or doubled joins and leaves",
     lambda r: sum(r.get(k, 0) for k in ("missing_joins", "duplicated_joins", "missing_leaves", "duplicated_leaves", "unexpected")),
     "0"),
    ("server CPU, cores", at("join_cpu", "server_cores"), "lower"),
    ("server CPU per join, ms", per(("join_cpu", "server_cpu_ms"), ("welcomed",)), "lower"),
    ("load generator CPU, cores", at("join_cpu", "loadgen_cores"), "(driver)"),
]


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{int(v):,}"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    groups = {}
    for path in sorted(glob.glob(os.path.join(root, "peers-*.txt"))):
        m = re.fullmatch(r"peers-(.+)-(longhouse|yjs)-(\d+)\.txt", os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        if lines:
            groups.setdefault((m.group(1), m.group(2)), []).append(json.loads(lines[-1]))
    names = sorted({n for n, _ in groups}, key=lambda n: (n == "join", int(re.sub(r"\D", "", n) or 0)))
    print("| figure | Longhouse | Yjs awareness | Longhouse / Yjs | better |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        rows = JOIN if name == "join" else STATE
        runs = {t: groups.get((name, t), []) for t in TARGETS}
        ok = {t: sum(1 for r in runs[t] if r.get("ok")) for t in TARGETS}
        title = ("join storm, 50 spaces x 100 clients, 100 in flight, with state" if name == "join"
                 else f"state storm, {name[5:]} clients, {first(runs, 'rate_hz')} Hz, {first(runs, 'secs')} s")
        counts = ", ".join(f"{t}: {ok[t]}/{len(runs[t])} runs OK" for t in TARGETS)
        print(f"| **{title}** ({counts}) | | | | |")
        for label, read, better in rows:
            med = {}
            for t in TARGETS:
                values = [v for v in (read(r) for r in runs[t]) if v is not None]
                med[t] = statistics.median(values) if values else None
            a, b = med["longhouse"], med["yjs"]
            ratio = f"{a / b:.2f}" if a is not None and b else "n/a"
            print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} | {better} |")


def first(runs, key):
    for t in TARGETS:
        for r in runs[t]:
            if key in r:
                return r[key]
    return "?"


if __name__ == "__main__":
    main()
