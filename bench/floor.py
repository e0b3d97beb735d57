#!/usr/bin/env python3
"""The calculation behind bench/floor.sh: from each run's JSON line, the CPU
per join and per delivered frame (server and load generator), and the best
figure two cores can give the join and fan-out rows.

Usage: python3 bench/floor.py [DIR]   (default bench/results/floor)

Join row, a closed loop of K joins in flight: by Little's law the mean
connect-to-welcome time is K / rate, so a p99 <= P needs rate >= K / P at
the very least (the p99 is above the mean). The rate two cores can carry
is 2 / (server + load-generator CPU per join) with both on the machine,
2 / (server CPU per join) with the load generator elsewhere.

Fan-out row: one event to N receivers costs N x (server CPU per frame) to
send and N x (load-generator CPU per frame) to receive; spread perfectly
over two cores, the last receiver has it no sooner than N x (s + l) / 2
with both on the machine, N x s / 2 with the server alone.
"""
import glob
import json
import os
import statistics
import sys

CORES = 2


def runs(folder, pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(folder, pattern))):
        with open(path) as f:
            lines = [l for l in f if l.startswith("{")]
        if lines:
            out.append(json.loads(lines[-1]))
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "bench/results/floor"
    for store in ("memory", "redis"):
        joins = runs(folder, f"join-{store}-*.txt")
        if joins:
            k = joins[0]["in_flight"]
            n = joins[0]["spaces"] * joins[0]["clients_per_space"]
            rate = med([j["joins_per_sec"] for j in joins])
            p99 = med([j["connect_to_welcome_ms"]["p99"] for j in joins])
            mean = med([j["connect_to_welcome_ms"]["mean"] for j in joins])
            s = med([j["join_cpu"]["server_cpu_ms"] / n for j in joins])
            l = med([j["join_cpu"]["loadgen_cpu_ms"] / n for j in joins])
            both = CORES * 1000 / (s + l)
            alone = CORES * 1000 / s
            print(f"join, {store} ({len(joins)} runs, {n} joins, {k} in flight):")
            print(f"  measured: {rate:,.0f} joins/s, welcome mean {mean:.1f} ms, p99 {p99:.1f} ms")
            print(f"  Little's law: mean = {k} / rate = {k / rate * 1000:.1f} ms")
            print(f"  cpu per join: server {s:.3f} ms, load generator {l:.3f} ms")
            print(f"  best rate on {CORES} cores: {both:,.0f}/s with the load generator here "
                  f"(mean >= {k / both * 1000:.1f} ms), {alone:,.0f}/s with the server alone "
                  f"(mean >= {k / alone * 1000:.1f} ms)")
            print(f"  a p99 <= 20 ms at {k} in flight needs >= {k / 0.020:,.0f} joins/s, "
                  f"i.e. <= {CORES * 1000 / (k / 0.020):.3f} ms of CPU per join in all")
        fans = runs(folder, f"fanout-{store}-*.txt")
        if fans:
            n = fans[0]["held"]
            p99 = med([f["join_connect_to_last_ms"]["p99"] for f in fans])
            p50 = med([f["join_connect_to_last_ms"]["p50"] for f in fans])
            s = med([f.get("server_cpu_us_per_frame") for f in fans])
            l = med([f.get("loadgen_cpu_us_per_frame") for f in fans])
            print(f"fan-out, {store} ({len(fans)} runs, {n} receivers):")
            print(f"  measured: connect to last receiver p50 {p50:.1f} ms, p99 {p99:.1f} ms")
            if s is not None and l is not None:
                print(f"  cpu per delivered frame: server {s:.2f} us, load generator {l:.2f} us")
                print(f"  floor on {CORES} cores: {n * (s + l) / CORES / 1000:.1f} ms with the load "
                      f"generator here, {n * s / CORES / 1000:.1f} ms for the server's sends alone")


if __name__ == "__main__":
    main()
