#!/usr/bin/env python3
"""Medians over repeated runs in bench/results/: groups NAME-RUN.txt files by
NAME, reads each file's last line (the load generator's JSON report), and
prints the median of the headline figures with the min and max."""

import glob
import json
import os
import re
import statistics
import sys

FIELDS = {
    "join": [
        ("joins_per_sec", ("joins_per_sec",)),
        ("welcome_p50_ms", ("connect_to_welcome_ms", "p50")),
        ("welcome_p99_ms", ("connect_to_welcome_ms", "p99")),
        ("leaves_per_sec", ("leaves_per_sec",)),
        ("lost", ("missing_joins",)),
        ("lost_leaves", ("missing_leaves",)),
        ("dup_joins", ("duplicated_joins",)),
        ("dup_leaves", ("duplicated_leaves",)),
    ],
    "fanout": [
        ("join_p50_ms", ("join_connect_to_last_ms", "p50")),
        ("join_p99_ms", ("join_connect_to_last_ms", "p99")),
        ("join_from_welcome_p99_ms", ("join_welcome_to_last_ms", "p99")),
        ("leave_p50_ms", ("leave_close_to_last_ms", "p50")),
        ("leave_p99_ms", ("leave_close_to_last_ms", "p99")),
        ("missing", ("missing",)),
        ("duplicated", ("duplicated",)),
    ],
    "churn": [
        ("joins_per_sec", ("joins_per_sec",)),
        ("welcome_p99_ms", ("connect_to_welcome_ms", "p99")),
        ("ghosts", ("ghosts",)),
        ("missing", ("missing",)),
        ("duplicated", ("duplicated",)),
        ("observer_ghosts", ("observer_ghosts",)),
        ("observer_missing", ("observer_missing",)),
    ],
    "state": [
        ("delivered_per_sec", ("delivered_per_sec",)),
        ("to_last_p50_ms", ("to_last_receiver_ms", "p50")),
        ("to_last_p99_ms", ("to_last_receiver_ms", "p99")),
        ("received_fraction", ("received_fraction", "mean")),
        ("lost_final_states", ("lost_final_states",)),
        ("server_cores", ("cpu", "server_cores")),
    ],
    "idle": [
        ("held", ("held",)),
        ("bytes_per_connection", ("bytes_per_connection",)),
        ("rss_before_kib", ("server_rss_kib", "before")),
        ("rss_held_kib", ("server_rss_kib", "held")),
        ("dropped", ("dropped",)),
        ("close_secs", ("close_secs",)),
        ("server_alive", ("server_alive",)),
        ("fresh_join_after", ("fresh_join_after",)),
    ],
}


def get(report, path):
    for key in path:
        if not isinstance(report, dict):
            return None
        report = report.get(key)
    return report


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    groups = {}
    for path in sorted(glob.glob(os.path.join(root, "*.txt"))):
        name = re.sub(r"-\d+\.txt$", "", os.path.basename(path))
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        if lines:
            groups.setdefault(name, []).append(json.loads(lines[-1]))
    for name, reports in groups.items():
        fields = FIELDS.get(reports[0].get("scenario"), [])
        parts = []
        for label, path in fields:
            values = [get(r, path) for r in reports]
            values = [v for v in values if v is not None]
            if not values:
                continue
            if all(isinstance(v, bool) for v in values):
                parts.append(f"{label}={'all' if all(values) else 'NOT all'}")
                continue
            med = statistics.median(values)
            parts.append(f"{label}={med:g} [{min(values):g}..{max(values):g}]")
        ok = sum(1 for r in reports if r.get("ok"))
        print(f"{name} (runs={len(reports)}, ok={ok}): " + ", ".join(parts))


if __name__ == "__main__":
    main()
