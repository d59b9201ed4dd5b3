"""Tables of tests/bench/harness.sh: reads its results file, prints one Markdown
table per workload.

    python3 table.py RESULTS

RESULTS holds lines of key=value fields (values without spaces, but the
title's, which comes last):
  WORKLOAD name=.. stacks=a,b,c ratio=S/row|row/S|idle title=...
  RUN workload=.. stack=.. round=N requests=.. duration_us=.. p50_us=.. p99_us=..
      p999_us=.. connect=.. read=.. write=.. status=.. timeout=.. rss_kib=.. cpu_ticks=.. hz=..
  IDLE workload=.. stack=.. opened=.. answered=.. still_open=.. rss_before_kib=.. rss_after_kib=..
  START stack=.. rss_kib=..   (the front's RSS once started, before any load)
Each figure of a RUN table is the median over the rounds, but errors (the sum);
the ratio compares the medians of requests/s, the range in brackets is that of
the per-round ratios (stacks of one round ran seconds apart).
"""
import statistics
import sys


def fields(line):
    kind, _, rest = line.partition(" ")
    out, title = {}, None
    if " title=" in rest:
        rest, _, title = rest.partition(" title=")
    for pair in rest.split():
        key, _, value = pair.partition("=")
        out[key] = value
    if title is not None:
        out["title"] = title
    return kind, out


def latency(us):
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"


def ratio(a, b):
    return a / b if b else float("nan")


def run_table(meta, runs):
    stacks = meta["stacks"].split(",")
    spec = meta["ratio"]  # "S/row": subject over each row; "row/S": each row over the subject
    subject = spec.replace("/row", "").replace("row/", "")
    by_stack = {s: [r for r in runs if r["stack"] == s] for s in stacks}
    rps = {s: {int(r["round"]): int(r["requests"]) / (int(r["duration_us"]) / 1e6) for r in rs}
           for s, rs in by_stack.items()}
    label = f"{subject} ÷ row" if spec.startswith(subject) else f"row ÷ {subject}"
    print(f"| stack | req/s | p50 | p99 | p99.9 | errors | front RSS | front CPU/req | {label} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in stacks:
        rs = by_stack[s]
        if not rs:
            print(f"| {s} | (not run) | | | | | | | |")
            continue
        med = lambda key: statistics.median(float(r[key]) for r in rs)
        errors = {k: sum(int(r[k]) for r in rs) for k in ("status", "connect", "read", "write", "timeout")}
        total = sum(errors.values())
        err = "0" if total == 0 else f"{total} (" + ", ".join(f"{k} {v}" for k, v in errors.items() if v) + ")"
        cpu = statistics.median(
            int(r["cpu_ticks"]) / int(r["hz"]) * 1e6 / max(int(r["requests"]), 1) for r in rs)
        med_rps = statistics.median(rps[s].values())
        if s == subject or subject not in rps or not rps[subject]:
            vs = "1" if s == subject else ""
        else:
            num, den = (subject, s) if spec.startswith(subject) else (s, subject)
            per_round = sorted(ratio(rps[num][k], rps[den][k]) for k in rps[num] if k in rps[den])
            vs = f"**{ratio(statistics.median(rps[num].values()), statistics.median(rps[den].values())):.3f}**"
            if len(per_round) > 1:
                vs += f" ({per_round[0]:.3f}–{per_round[-1]:.3f})"
        print(f"| {s} | {med_rps:,.0f} | {latency(med('p50_us'))} | {latency(med('p99_us'))} | "
              f"{latency(med('p999_us'))} | {err} | {med('rss_kib') / 1024:.1f} MiB | {cpu:.1f} µs | {vs} |")


def idle_table(meta, idles, starts):
    print("| stack | RSS at start | RSS before | RSS with the connections | per connection | opened | answered 200 | still open |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in meta["stacks"].split(","):
        for r in (r for r in idles if r["stack"] == s):
            before, after, opened = int(r["rss_before_kib"]), int(r["rss_after_kib"]), int(r["opened"])
            per = (after - before) / opened if opened else float("nan")
            fresh = f"{int(starts[s]) / 1024:.1f} MiB" if s in starts else ""
            print(f"| {s} | {fresh} | {before / 1024:.1f} MiB | {after / 1024:.1f} MiB | {per:.2f} KiB | "
                  f"{opened} | {r['answered']} | {r['still_open']} |")


def main():
    metas, runs, idles, starts = [], [], [], []
    with open(sys.argv[1]) as f:
        for line in f:
            kind, values = fields(line.strip())
            {"WORKLOAD": metas, "RUN": runs, "IDLE": idles, "START": starts}.get(kind, []).append(values)
    starts = {r["stack"]: r["rss_kib"] for r in starts}
    for meta in metas:
        print(f"\n### {meta['name']}: {meta['title']}\n")
        if meta["ratio"] == "idle":
            idle_table(meta, [r for r in idles if r["workload"] == meta["name"]], starts)
        else:
            run_table(meta, [r for r in runs if r["workload"] == meta["name"]])


if __name__ == "__main__":
    main()
