#!/usr/bin/env bash
# Side-by-side announce throughput of warden and Debian's opentracker on this
# machine: each server pinned to core 0, `warden load` pinned to core 1, the
# same 1000 registered (warden) / whitelisted (opentracker) torrents, three
# rounds alternating the servers, medians printed at the end.
#
# Usage: bench/compare.sh [seconds per run, default 8]
# Needs: taskset (util-linux), opentracker (apt-get install opentracker).
# All traffic goes to 127.0.0.1 only; every run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
command -v opentracker >/dev/null || { echo "compare.sh: apt-get install opentracker first" >&2; exit 1; }
work=$(mktemp -d /tmp/warden-bench.XXXXXX)
chmod 755 "$work" # opentracker reads its whitelist after dropping to nobody
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/warden" ./cmd/warden
W=$work/warden
port=26969 admin=27070
"$W" load --torrents 1000 --print-hashes > "$work/hashes.txt"
cp "$work/hashes.txt" "$work/wl.txt"; chmod 644 "$work/wl.txt"
# This measures raw capacity, as opentracker has no per-source limits: the
# load's two UDP workers each send far more than a real client may.
# Its simulated peers also re-announce far sooner than real ones, so
# re-announce throttling is off too: every announce gets its full answer.
cat > "$work/warden.toml" <<'TOML'
[swarm]
throttle_interval = "0s"
[limit]
rate_per_sec = 10000000.0
burst = 10000000
prefix_rate_per_sec = 10000000.0
prefix_burst = 10000000
TOML

run_load() { # server proto round
	local args
	if [ "$2" = udp ]; then args=(--udp 127.0.0.1:$port --workers 2 --window 64)
	else args=(--http http://127.0.0.1:$port/announce --workers 32); fi
	taskset -c 1 "$W" load --hashes "$work/hashes.txt" --duration "${secs}s" --warmup 2s --json "${args[@]}" > "$work/out.json"
	python3 - "$work/out.json" "$1" "$2" "$3" >> "$work/rows.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = next(c for c in r["classes"] if c["name"] == "announce/legit")
print(sys.argv[2], sys.argv[3], sys.argv[4], int(c["ok_per_sec"]), c["bad"] + c["timeouts"],
      int(c["latency"]["p50_ns"] / 1000), int(c["latency"]["p99_ns"] / 1000))
PY
}

for round in 1 2 3; do
	rm -rf "$work/data"; mkdir "$work/data"
	taskset -c 0 "$W" serve --config "$work/warden.toml" --http 127.0.0.1:$port --udp 127.0.0.1:$port --admin 127.0.0.1:$admin \
		--data "$work/data" --log-level warn 2>"$work/warden.log" &
	pid=$!
	for _ in $(seq 100); do # until the admin API answers
		[ -f "$work/data/admin.token" ] && curl -sf http://127.0.0.1:$admin/healthz >/dev/null && break
		sleep 0.1
	done
	kill -0 $pid || { echo "compare.sh: warden did not start:" >&2; cat "$work/warden.log" >&2; exit 1; }
	"$W" registry add --admin http://127.0.0.1:$admin --data "$work/data" --from "$work/hashes.txt" >/dev/null
	run_load warden udp $round; run_load warden http $round
	kill $pid; wait $pid || true

	# -w is read relative to -d, after opentracker drops to nobody.
	taskset -c 0 opentracker -i 127.0.0.1 -p $port -P $port -d "$work" -u nobody -w wl.txt >"$work/ot.log" 2>&1 &
	pid=$!; sleep 1.5
	run_load opentracker udp $round; run_load opentracker http $round
	kill $pid; wait $pid || true
done

python3 - "$work/rows.txt" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
def med(server, proto, col):
    return st.median(int(r[col]) for r in rows if r[0] == server and r[1] == proto)
print(f"{'':22}{'warden':>12}{'opentracker':>14}{'ratio':>8}")
for proto in ("udp", "http"):
    w, o = med("warden", proto, 3), med("opentracker", proto, 3)
    print(f"{proto + ' announces/s':22}{w:>12.0f}{o:>14.0f}{w / o:>8.2f}")
    print(f"{proto + ' p50/p99 µs':22}{med('warden', proto, 5):>5.0f}/{med('warden', proto, 6):<6.0f}"
          f"{med('opentracker', proto, 5):>7.0f}/{med('opentracker', proto, 6):<6.0f}")
bad = sum(int(r[4]) for r in rows)
print(f"bad or lost replies over all runs: {bad}")
PY
