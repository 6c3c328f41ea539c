#!/usr/bin/env bash
# bench/httpflood.sh: does an HTTP tracker still serve its users while it
# is flooded? warden (as shipped: allowlist, default limits) and
# opentracker (whitelist) side by side, and bench/httpecho, a server that
# answers at once and so shows what the instrument itself measures.
#
# For each server, three phases, each BENCH_RUNS times on a fresh server
# (the order of the servers alternates between runs):
#   baseline  legit joins only: 1000 a second from 1022 addresses, each on a
#             connection of its own (connect + request + reply timed)
#   existing  the same, beside the flood the load tool used to make: 1022
#             sources, one pipelined connection each, 3600 requests/s
#   heavy     the same, beside the heaviest flood one core makes (BENCH_HEAVY)
# The server runs on core 0; both load processes on core 1: the flood at
# normal priority, the legit class in a child at real-time priority
# (--legit-rt), so the flood cannot delay it. One table of medians at the end.
#
# Usage: flock /tmp/warden-bench.lock bench/httpflood.sh [--quick]
#   --quick  one run of each, 3 s: a smoke test of about two minutes.
# Env:     BENCH_PORT (default 37969): ports BENCH_PORT..+2 and +101 are used.
#          BENCH_RUNS (3), BENCH_SECS (10), BENCH_WARMUP (2).
#          BENCH_HEAVY: the heavy flood's flags (default below).
#          BENCH_NOISE (0.25): a run during which other processes used more
#          CPU than this (in cores) is repeated, twice at most and
#          BENCH_RETRIES (12) times in all.
#          BENCH_KEEP=1 keeps the work directory (every run's JSON report).
#          BENCH_SERVERS: which servers, in order (default: warden
#          opentracker httpecho).
# Needs:   Linux, 2+ CPUs, root (or CAP_SYS_NICE) for --legit-rt, taskset,
#          python3, go, opentracker (apt-get install opentracker).
# All traffic goes to 127.0.0.0/8; every run stops by itself; the script
# stops the servers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
runs=${BENCH_RUNS:-3} secs=${BENCH_SECS:-10} warm=${BENCH_WARMUP:-2}
case "${1:-}" in
"") ;;
--quick) runs=1 secs=3 warm=1 ;;
-h | --help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac
heavy=${BENCH_HEAVY:---flood-rate 0 --flood-mix pipeline:6,churn:2,idle:1,partial:1 --flood-conns 2044 --flood-pipeline 16}
existing="--flood-rate 3600 --flood-mix pipeline --flood-pipeline 16"
legit="--legit-rate 1000 --legit-sources 127.2.0.0/22 --legit-new-conn --legit-rt 10"

base=${BENCH_PORT:-37969}
w_port=$base ot_port=$((base + 1)) he_port=$((base + 2)) admin_port=$((base + 101))

for cmd in taskset python3 go opentracker curl; do
	command -v $cmd >/dev/null || { echo "httpflood.sh: $cmd not found" >&2; exit 1; }
done
[ "$(nproc --all)" -ge 2 ] || { echo "httpflood.sh: needs 2 CPUs (server on 0, load on 1)" >&2; exit 1; }
for p in $w_port $ot_port $he_port $admin_port; do
	if ss -Htuln "( sport = :$p )" | grep -q .; then
		echo "httpflood.sh: port $p is in use; set BENCH_PORT to another base" >&2
		exit 1
	fi
done

work=$(mktemp -d /tmp/warden-httpflood.XXXXXX)
chmod 755 "$work" # opentracker reads its whitelist after dropping to nobody
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	if [ -n "${BENCH_KEEP:-}" ]; then echo "httpflood.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
log() { printf '%s [%4ds] %s\n' "$(date +%T)" $(($(date +%s) - started)) "$*" >&2; }

log "building warden and httpecho"
go build -o "$work/warden" ./cmd/warden
go build -o "$work/httpecho" ./bench/httpecho
W=$work/warden
"$W" load --torrents 1000 --print-hashes >"$work/hashes.txt"
cp "$work/hashes.txt" "$work/wl.txt"
chmod 644 "$work/wl.txt"
mkdir "$work/data" "$work/json"

url() { # NAME: the server's announce URL
	case $1 in
	warden) echo "http://127.0.0.1:$w_port/announce" ;;
	opentracker) echo "http://127.0.0.1:$ot_port/announce" ;;
	httpecho) echo "http://127.0.0.1:$he_port/announce" ;;
	esac
}

# probe NAME: one legit announce until it is answered OK, 10 s at most.
probe() {
	local i
	for i in $(seq 50); do
		if "$W" load --http "$(url "$1")" --hashes "$work/hashes.txt" --max-requests 1 --sources none \
			--warmup 0s --duration 1s --timeout 200ms --json 2>/dev/null |
			python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if any(c["name"]=="announce/legit" and c["ok"]>0 for c in r["classes"]) else 1)'; then
			return 0
		fi
		sleep 0.2
	done
	echo "httpflood.sh: no valid reply from $1 after 10 s" >&2
	return 1
}

# start_server NAME [noprobe]: start it on core 0 and wait until it
# answers a legit announce (warden with noprobe: until its admin API
# answers).
start_server() {
	case $1 in
	warden)
		taskset -c 0 "$W" serve --data "$work/data" --log-level warn --udp "" \
			--http 127.0.0.1:$w_port --admin 127.0.0.1:$admin_port 2>>"$work/warden.log" &
		server_pid=$!
		local i
		for i in $(seq 100); do
			[ -f "$work/data/admin.token" ] && curl -sf http://127.0.0.1:$admin_port/healthz >/dev/null && break
			kill -0 $server_pid 2>/dev/null || break
			sleep 0.1
		done
		kill -0 $server_pid 2>/dev/null || { echo "httpflood.sh: warden did not start:" >&2; cat "$work/warden.log" >&2; exit 1; }
		;;
	opentracker)
		taskset -c 0 opentracker -i 127.0.0.1 -p $ot_port -P $ot_port -d "$work" -u nobody -w wl.txt >>"$work/ot.log" 2>&1 &
		server_pid=$!
		;;
	httpecho)
		taskset -c 0 "$work/httpecho" -addr 127.0.0.1:$he_port 2>>"$work/echo.log" &
		server_pid=$!
		;;
	esac
	[ "${2:-}" = noprobe ] || probe "$1"
}

stop_server() {
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

# Register the legit torrents with warden once; the data directory is
# reused by every start.
log "registering 1000 torrents with warden"
start_server warden noprobe
"$W" registry add --admin http://127.0.0.1:$admin_port --data "$work/data" --from "$work/hashes.txt" >/dev/null
stop_server

cat >"$work/extract.py" <<'PY'
# One line per run: phase server run legit_success_pct legit_p50_us
# legit_p99_us offered_per_s answered_per_s conns_per_s server_cores
# gen_cores other_cores lag_p99_us refused_per_s. other_cores: the two
# cores' busy time not charged to the server or the load tool's two
# processes. conns_per_s counts every connection the flood tried;
# refused_per_s those the server reset or closed before the flood could
# send a request (warden refuses a banned source's at accept).
import json, sys
r = json.load(open(sys.argv[1]))
f = r["flood"]
l = f["legit"]
fl = f.get("flood") or {}
modes = fl.get("modes") or []
srv = (r.get("server") or {}).get("cores", -1.0)
gen = r.get("generator_cores", 0.0)
busy = sum((r.get("machine") or {}).get("cpu_busy", [])[:2])
other = max(0.0, busy - srv - gen) if srv >= 0 and busy else -1
secs = r["elapsed_ns"] / 1e9
conns = sum(m["connects"] for m in modes) / secs
refused = sum(m["connect_failures"] for m in modes) / secs
print(*sys.argv[2:5], f'{l["success_pct"]:.2f}', l["latency"]["p50_ns"] // 1000, l["latency"]["p99_ns"] // 1000,
      f'{fl.get("sent_per_sec", 0):.0f}', f'{fl.get("replies_per_sec", 0):.0f}', f"{conns:.0f}",
      f"{srv:.2f}", f"{gen:.2f}", f"{other:.2f}", l["lag_p99_ns"] // 1000, f"{refused:.0f}", sep="\t")
PY

noise=${BENCH_NOISE:-0.25} retries=${BENCH_RETRIES:-12}
# run PHASE SERVER RUN FLOOD_FLAGS...: one load run on core 1 against a
# fresh server, its line appended to rows.tsv; repeated if the machine was
# busy with something else.
run() {
	local phase=$1 server=$2 n=$3
	shift 3
	local try line
	for try in 1 2 3; do
		start_server "$server"
		taskset -c 1 "$W" load --scenario flood --http "$(url "$server")" --hashes "$work/hashes.txt" \
			$legit --flood-sources 127.1.0.0/22 "$@" \
			--warmup ${warm}s --duration ${secs}s --server-pid "$server_pid" --json >"$work/out.json" 2>>"$work/load.log" || {
			echo "httpflood.sh: load failed: $phase $server: $*" >&2
			tail -5 "$work/load.log" >&2
			exit 1
		}
		stop_server
		line=$(python3 "$work/extract.py" "$work/out.json" "$phase" "$server" "$n")
		awk -F'\t' '{printf "    %-9s %-11s legit %6s%% p50 %6dµs p99 %7dµs  flood offered %6d/s answered %6d/s conns %5d/s (%d refused)  cores: server %s load %s other %s\n", $1, $2, $4, $5, $6, $7, $8, $9, $14, $10, $11, $12}' <<<"$line" >&2
		awk -F'\t' -v n="$noise" '$12 > n {exit 1}' <<<"$line" && break
		if [ $try = 3 ] || [ "$retries" -le 0 ]; then
			echo "$phase $server $n" >>"$work/disturbed.txt"
			break
		fi
		retries=$((retries - 1))
		echo "$phase $server $n" >>"$work/repeated.txt"
		log "    something else used more than $noise cores: again in 5 s"
		sleep 5
	done
	cp "$work/out.json" "$work/json/$phase-$server-$n.json"
	echo "$line" >>"$work/rows.tsv"
}

for n in $(seq "$runs"); do
	servers=${BENCH_SERVERS:-warden opentracker httpecho}
	[ $((n % 2)) = 0 ] && servers=$(printf '%s\n' $servers | tac | tr '\n' ' ')
	for s in $servers; do
		log "run $n/$runs: $s"
		run baseline "$s" "$n" --flood-rate -1
		# shellcheck disable=SC2086 # the flags are words
		run existing "$s" "$n" $existing
		# shellcheck disable=SC2086
		run heavy "$s" "$n" $heavy
	done
done

log "done"
python3 - "$work" "$runs" "$secs" "$heavy" <<'PY'
import statistics as st, sys, os
work, runs, secs, heavy = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [l.rstrip("\n").split("\t") for l in open(f"{work}/rows.tsv")]
def med(phase, server, i):
    v = [float(r[i]) for r in rows if r[0] == phase and r[1] == server]
    return st.median(v) if v else float("nan")
def each(phase, server, i):
    return "/".join(r[i] for r in rows if r[0] == phase and r[1] == server)
print(f"HTTP flood: medians of {runs} runs of {secs} s each; legit: 1000 joins/s from 1022 addresses, a connection per join, timed at real-time priority")
print(f"existing flood: 1022 sources, pipelined, 3600/s; heavy flood: {heavy}")
print()
print(f"| server | phase | legit success | legit p50 | legit p99 (each run) | flood requests offered/s | answered/s | flood connections/s (refused) | server CPU |")
print(f"|---|---|---|---|---|---|---|---|---|")
for server in ("warden", "opentracker", "httpecho"):
    for phase in ("baseline", "existing", "heavy"):
        if not any(r[0] == phase and r[1] == server for r in rows):
            continue
        fl = phase != "baseline"
        print(f"| {server} | {phase} | {med(phase, server, 3):.2f}% | {med(phase, server, 4)/1000:.2f} ms | "
              f"{med(phase, server, 5)/1000:.2f} ms ({each(phase, server, 5)} µs) | "
              + (f"{med(phase, server, 6):,.0f} | {med(phase, server, 7):,.0f} | {med(phase, server, 8):,.0f} ({med(phase, server, 13):,.0f}) | " if fl else "- | - | - | ")
              + f"{med(phase, server, 9):.2f} |")
print()
for name, what in (("repeated.txt", "repeated because something else was busy"), ("disturbed.txt", "kept although disturbed")):
    p = f"{work}/{name}"
    if os.path.exists(p):
        print(f"runs {what}: " + ", ".join(l.strip() for l in open(p)))
print(f"generator lag p99 (µs, max over runs): {max(int(r[12]) for r in rows)}; other CPU (cores, max): {max(float(r[11]) for r in rows):.2f}")
PY
