#!/usr/bin/env python3
"""Print the table of bench/run.sh from its work directory.

Usage: bench/table.py WORKDIR   (run.sh calls it; with BENCH_KEEP=1 the
directory stays in /tmp and the table can be printed again).

WORKDIR holds rows.tsv (one line per load run, written by run.sh's
extract.py; empty with --memory), mem.tsv (one line per memory run) and
meta.txt (the rates, durations and swarm shapes used). Every figure is the
median over the rounds.
"""
import statistics as st
import sys

work = sys.argv[1]
F = dict(label=0, server=1, round=2, ok=3, p50=4, p99=5, sent=6, timeouts=7, bad=8,
         gen=9, srv=10, other=11, late=12, oneshot=13)
rows = [l.rstrip("\n").split("\t") for l in open(f"{work}/rows.tsv")]
meta = dict(l.split() for l in open(f"{work}/meta.txt"))
rounds, secs, warm = int(meta["rounds"]), int(meta["secs"]), int(meta["warm"])
took = int(meta["took"])
# mem.tsv: server round shape before_kB after_kB stored swept_kB (RSS
# after the fill, then 7 s later, once warden has swept). Older work
# directories have no swept column, and the oldest no shape column and
# one shape in meta.
mem = []
for line in open(f"{work}/mem.tsv"):
    f = line.split()
    if len(f) == 5:
        f.insert(2, f"{meta['mem_torrents']}x{meta['mem_peers']}")
    if len(f) == 6:
        f.append("")
    mem.append(f)
shapes = list(dict.fromkeys(f[2] for f in mem))
CAPACITY = ("udp-announce", "udp-scrape", "http-announce", "http-scrape")


def runs(label, server):
    return [r for r in rows if r[F["label"]] == label and r[F["server"]] == server]


def med(label, server, field="ok"):
    v = [float(r[F[field]]) for r in runs(label, server)]
    return st.median(v) if v else float("nan")


def lost(label, server):
    """Median share of requests sent that got no reply in time."""
    v = [int(r[F["timeouts"]]) / max(1.0, float(r[F["sent"]]) * secs) for r in runs(label, server)]
    return st.median(v) if v else float("nan")


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def rate(x):
    return f"{x / 1000:.1f}k"


out = []


def row(*cells):
    out.append("| " + " | ".join(cells) + " |")


if rows:
    row(f"median of {rounds} ({secs} s each after {warm} s warm-up)", "warden", "opentracker", "warden/opentracker", "echo limit")
    out.append("|---|---:|---:|---:|---:|")
    for label, name, echo in [("udp-announce", "UDP announce responses/s", "udpecho"),
                              ("http-announce", "HTTP announce responses/s (keep-alive)", "httpecho"),
                              ("udp-scrape", "UDP scrape responses/s", None),
                              ("http-scrape", "HTTP scrape responses/s", None)]:
        w, o = med(label, "warden"), med(label, "opentracker")
        lim = f"{w / med(label, echo):.2f} of {rate(med(label, echo))}" if echo else ""
        row(name, rate(w), rate(o), ratio(w, o), lim)
    for label, frac in [("lat50", "50%"), ("lat90", "90%")]:
        r = int(meta["r50" if label == "lat50" else "r90"])
        w, o, e = ((med(label, s, "p50"), med(label, s, "p99")) for s in ("warden", "opentracker", "udpecho"))
        row(f"UDP p50 / p99 µs at {frac} of opentracker ({rate(r)}/s)", f"{w[0]:.0f} / {w[1]:.0f}",
            f"{o[0]:.0f} / {o[1]:.0f}", f"{ratio(w[0], o[0])} / {ratio(w[1], o[1])}", f"udpecho {e[0]:.0f} / {e[1]:.0f}")
    row("UDP requests lost at 50% / 90% of opentracker",
        *(f"{lost('lat50', s):.2%} / {lost('lat90', s):.2%}" for s in ("warden", "opentracker")), "",
        f"udpecho {lost('lat50', 'udpecho'):.2%} / {lost('lat90', 'udpecho'):.2%}")
    ov = {}
    for s in ("warden", "opentracker"):
        # Each overload run sits between two capacity runs of the same process
        # ("peak" before, "peak-after"); compare with their mean, which cancels
        # a steady drift of the machine. Older work directories have no
        # "peak-after": the peak before alone is used.
        before = {r[F["round"]]: float(r[F["ok"]]) for r in runs("peak", s)}
        after = {r[F["round"]]: float(r[F["ok"]]) for r in runs("peak-after", s)}
        peak = {k: (v + after[k]) / 2 if k in after else v for k, v in before.items()}
        pairs = [(float(r[F["ok"]]) / peak[r[F["round"]]], float(r[F["sent"]]) / peak[r[F["round"]]])
                 for r in runs("overload", s) if r[F["round"]] in peak]
        late = sum(int(r[F["late"]]) for r in runs("overload", s))
        ov[s] = (st.median(p[0] for p in pairs), med("overload", s, "p99"), st.median(p[1] for p in pairs), late,
                 " ".join(f"{p[0]:.0%}" for p in pairs), st.median(peak.values()))
    row("UDP overload: answered/s as share of the peak around it", f"{ov['warden'][0]:.0%} ({ov['warden'][4]})",
        f"{ov['opentracker'][0]:.0%} ({ov['opentracker'][4]})", ratio(ov["warden"][0], ov["opentracker"][0]), "")
    row("UDP overload: that peak (mean of before and after), responses/s", rate(ov["warden"][5]), rate(ov["opentracker"][5]),
        ratio(ov["warden"][5], ov["opentracker"][5]), "")
    row("UDP overload: offered, × that peak (2× asked)", f"{ov['warden'][2]:.2f}×", f"{ov['opentracker'][2]:.2f}×", "", "")
    row("UDP overload: p99 µs of answered requests", f"{ov['warden'][1]:.0f}", f"{ov['opentracker'][1]:.0f}",
        ratio(ov["warden"][1], ov["opentracker"][1]), "")
    row("UDP overload: replies later than 100 ms (all runs)", f"{ov['warden'][3]}", f"{ov['opentracker'][3]}", "", "")


def mem_med(s, shape, what, swept=False):
    v = []
    for name, _, sh, before, after, stored, later in mem:
        if swept:
            if not later:
                continue
            after = later
        if name == s and sh == shape:
            d = (int(after) - int(before)) * 1024
            v.append({"bpp": d / max(1, int(stored)), "mib": d / 2**20, "peers": int(stored)}[what])
    return st.median(v) if v else float("nan")


if not rows:
    row(f"median of {rounds}", "warden", "opentracker", "warden/opentracker", "")
    out.append("|---|---:|---:|---:|---:|")
for shape in shapes:
    t, p = (int(x) for x in shape.split("x"))
    wb, ob = mem_med("warden", shape, "bpp"), mem_med("opentracker", shape, "bpp")
    row(f"RSS bytes per peer ({t:,} torrents × {p:,} peers), after the fill", f"{wb:.1f}", f"{ob:.1f}", ratio(wb, ob), "")
    if any(f[6] for f in mem if f[2] == shape):
        ws, os_ = mem_med("warden", shape, "bpp", True), mem_med("opentracker", shape, "bpp", True)
        row("… 7 s later (warden has swept)", f"{ws:.1f}", f"{os_:.1f}", ratio(ws, os_), "")
    row("RSS growth MiB / peers stored", f"{mem_med('warden', shape, 'mib'):.1f} / {mem_med('warden', shape, 'peers'):,.0f}",
        f"{mem_med('opentracker', shape, 'mib'):.1f} / {mem_med('opentracker', shape, 'peers'):,.0f}", "", "")

if rows:
    out.append("")
    row("warden, allowlist vs open mode", "allowlist", "open", "cost of allowlist, per round", "median")
    out.append("|---|---:|---:|---:|---:|")
    for label, name in [("udp-announce", "UDP announce responses/s"), ("http-announce", "HTTP announce responses/s")]:
        # Each round runs the two modes back to back, so compare within rounds.
        a = {r[F["round"]]: float(r[F["ok"]]) for r in runs(label, "warden")}
        o = {r[F["round"]]: float(r[F["ok"]]) for r in runs(label, "warden-open")}
        cost = [1 - a[k] / o[k] for k in sorted(a) if k in o]
        row(name, rate(med(label, "warden")), rate(med(label, "warden-open")),
            " ".join(f"{c:+.1%}" for c in cost), f"{st.median(cost):+.1%}")
    out.append("")

    out.append(f"limits: udpecho {rate(med('udp-announce', 'udpecho'))}/s, httpecho {rate(med('http-announce', 'httpecho'))}/s")
    one_shot = sorted({r[F["server"]] for r in rows if r[F["label"]].startswith("http") and int(r[F["oneshot"]]) > 0})
    if one_shot:
        out.append("closed keep-alive connections after each reply, so measured with a connection per request: "
                   + ", ".join(one_shot))
    # A capacity run where the load tool used nearly its core while the server
    # did not use all of its own measured the load tool, not the server.
    gen_bound = sorted({f"{r[F['label']]} {r[F['server']]}" for r in rows if r[F["label"]] in CAPACITY
                        and float(r[F["gen"]]) >= 0.85 and 0 <= float(r[F["srv"]]) < 0.9})
    if gen_bound:
        out.append("load tool at its CPU limit while the server was not (the server may be faster than measured): "
                   + ", ".join(gen_bound))

    def srv_cpu(s, proto):
        v = [float(r[F["srv"]]) for r in rows if r[F["server"]] == s and r[F["label"]] in CAPACITY
             and r[F["label"]].startswith(proto)]
        return f"{st.median(v):.2f}" if v and min(v) >= 0 else "-"

    out.append("server CPU in the capacity runs, median cores of its 1, UDP / HTTP: " + ", ".join(
        f"{s} {srv_cpu(s, 'udp')} / {srv_cpu(s, 'http')}" for s in ("warden", "warden-open", "opentracker", "udpecho", "httpecho")))
    others = [float(r[F["other"]]) for r in rows if float(r[F["other"]]) >= 0]
    if others:
        out.append(f"CPU used by anything else during the runs: median {st.median(others):.2f}, max {max(others):.2f} cores of 2")


def lines(name):
    try:
        return [l.split() for l in open(f"{work}/{name}")]
    except FileNotFoundError:
        return []


repeated, disturbed = lines("repeated.txt"), lines("disturbed.txt")
out.append(f"runs repeated because something else used the CPU: {len(repeated)}"
           + (f"; kept although disturbed ({len(disturbed)}): {', '.join(' '.join(d) for d in disturbed)}" if disturbed else ""))
if rows:
    bad = sum(int(r[F["bad"]]) for r in rows)
    lost_cap = sum(int(r[F["timeouts"]]) for r in rows if r[F["label"]] in CAPACITY)
    out.append(f"malformed replies over all runs: {bad}; lost in the capacity runs: {lost_cap}")
out.append(f"load average before / after: {meta.get('load_before', '?')} / {meta.get('load_after', '?')}")
out.append(f"total time {took // 60} min {took % 60} s")
print("\n".join(out))
