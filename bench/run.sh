#!/usr/bin/env bash
# The benchmark suite: warden against Debian's opentracker, and against two
# do-nothing servers (bench/udpecho, bench/httpecho) that stand for the
# machine's limit. Every server runs pinned to core 0, `warden load` pinned
# to core 1, one server at a time, with the same registered (warden) or
# whitelisted (opentracker) torrents. Each configuration runs three times
# (the order of the servers alternates between rounds) after a warm-up,
# and one table of medians is printed at the end. See bench/README.md for
# what each row means and how far to trust it.
#
# Usage: bench/run.sh [--quick] [--memory]
#   --quick  one round, short runs, smaller swarms for the memory rows
#            (20,000 torrents x 10 peers, 200 x 1,000): a smoke test of
#            about three minutes. Without it: about fifteen.
#   --memory only the memory rows (100,000 x 10 and 1,000 x 1,000 peers,
#            three rounds; with --quick, one round of the smaller swarms).
# Env:     BENCH_PORT (default 36969): ports BENCH_PORT..+3 and +101 are used.
#          BENCH_MEM_SHAPES: the memory rows' swarms, TORRENTSxPEERS
#          separated by spaces (default "100000x10 1000x1000"; at most
#          100,000 torrents).
#          BENCH_KEEP=1 keeps the work directory (every run's JSON report,
#          the servers' logs) in /tmp; bench/table.py DIR prints it again.
#          BENCH_NOISE (default 0.25): a run during which other processes
#          used more CPU than this (in cores) is repeated, twice at most,
#          BENCH_RETRIES (default 12) times in all.
# Needs:   Linux, 2+ CPUs, taskset, curl, python3, go, opentracker
#          (apt-get install opentracker).
# All traffic goes to 127.0.0.1; every run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
quick=0 memory_only=0
for arg in "$@"; do
	case $arg in
	--quick) quick=1 ;;
	--memory) memory_only=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

if [ $quick = 1 ]; then
	rounds=1 secs=3 warm=1 mem_shapes="20000x10 200x1000"
else
	rounds=3 secs=6 warm=2 mem_shapes="100000x10 1000x1000"
fi
mem_shapes=${BENCH_MEM_SHAPES:-$mem_shapes}
hash_count=100000 # the hashes registered once; every run uses the first ones
for shape in $mem_shapes; do
	if ! [[ $shape =~ ^[0-9]+x[0-9]+$ ]] || [ "${shape%x*}" -gt $hash_count ] || [ "${shape%x*}" -lt 1 ]; then
		echo "run.sh: BENCH_MEM_SHAPES: $shape is not TORRENTSxPEERS with 1 to $hash_count torrents" >&2
		exit 2
	fi
done
load_torrents=1000 # the swarms of the throughput and latency runs: 1000 torrents × 50 peers

base=${BENCH_PORT:-36969}
w_port=$base ot_port=$((base + 1)) ue_port=$((base + 2)) he_port=$((base + 3)) admin_port=$((base + 101))
admin=http://127.0.0.1:$admin_port

for cmd in taskset curl python3 go opentracker; do
	command -v $cmd >/dev/null || { echo "run.sh: $cmd not found${cmd/opentracker/ (apt-get install opentracker)}" >&2; exit 1; }
done
[ "$(nproc --all)" -ge 2 ] || { echo "run.sh: needs 2 CPUs (server on 0, load on 1)" >&2; exit 1; }
for p in $w_port $ot_port $ue_port $he_port $admin_port; do
	if ss -Htuln "( sport = :$p )" | grep -q .; then
		echo "run.sh: port $p is in use; set BENCH_PORT to another base" >&2
		exit 1
	fi
done

work=$(mktemp -d /tmp/warden-bench.XXXXXX)
chmod 755 "$work" # opentracker reads its whitelist after dropping to nobody
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	if [ -n "${BENCH_KEEP:-}" ]; then echo "run.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
log() { printf '%s [%4ds] %s\n' "$(date +%T)" $(($(date +%s) - started)) "$*" >&2; }

log "building warden, udpecho, httpecho"
go build -o "$work/warden" ./cmd/warden
go build -o "$work/udpecho" ./bench/udpecho
go build -o "$work/httpecho" ./bench/httpecho
W=$work/warden

"$W" load --torrents $hash_count --print-hashes >"$work/hashes.txt"
cp "$work/hashes.txt" "$work/wl.txt"
chmod 644 "$work/wl.txt"
# The load's few sources send far more than a real client may, and each
# plays many peers of a swarm; opentracker has no per-source limits, so
# warden's are raised out of the way, and so are its bounds on the ports
# of one address in a swarm and on a swarm's peers. Its simulated peers
# also re-announce far sooner than real ones, so warden's re-announce
# throttling is off: every announce gets its full answer.
cat >"$work/warden.toml" <<'TOML'
[swarm]
throttle_interval = "0s"
max_peers_per_torrent = 1000000
max_peers_per_address = 1000000
[limit]
rate_per_sec = 10000000.0
burst = 10000000
prefix_rate_per_sec = 10000000.0
prefix_burst = 10000000
TOML
# The memory phase reads RSS again after a sweep, which moves peer arrays
# out of half-empty slabs and gives the emptied ones back (every minute by
# default; every 3 s here, so the phase need not wait a minute a run).
sed 's/^\[swarm\]$/[swarm]\nsweep_interval = "3s"/' "$work/warden.toml" >"$work/warden-mem.toml"
mkdir "$work/data" "$work/json"

# --- starting, probing and stopping servers --------------------------------

# probe ADDR_ARGS...: one announce through `warden load` until it is
# answered OK (the server is up and its whitelist loaded), for 10 s at most.
probe() {
	local i
	for i in $(seq 50); do
		if "$W" load "$@" --hashes "$work/hashes.txt" --torrents $load_torrents --max-requests 1 \
			--warmup 0s --duration 1s --timeout 200ms --json 2>/dev/null |
			python3 -c 'import json,sys; r=json.load(sys.stdin); t=r["classes"]; sys.exit(0 if any(c["name"].startswith("announce") and c["ok"] > 0 for c in t) else 1)'; then
			return 0
		fi
		sleep 0.2
	done
	echo "run.sh: no valid reply from $* after 10 s" >&2
	return 1
}

# start_server NAME [noprobe]: start warden (allowlist), warden-open,
# opentracker, udpecho or httpecho on core 0 and wait until it answers an
# announce (warden with noprobe: until its admin API answers). Sets
# server_pid.
start_server() {
	case $1 in
	warden | warden-open)
		local mode=allowlist
		[ "$1" = warden-open ] && mode=open
		taskset -c 0 "$W" serve --config "${warden_config:-$work/warden.toml}" --mode $mode --data "$work/data" --log-level warn \
			--http 127.0.0.1:$w_port --udp 127.0.0.1:$w_port --admin 127.0.0.1:$admin_port 2>>"$work/warden.log" &
		server_pid=$!
		local i
		for i in $(seq 100); do # the admin API answers once warden is up
			[ -f "$work/data/admin.token" ] && curl -sf $admin/healthz >/dev/null && break
			kill -0 $server_pid 2>/dev/null || break
			sleep 0.1
		done
		kill -0 $server_pid 2>/dev/null || { echo "run.sh: warden did not start:" >&2; cat "$work/warden.log" >&2; exit 1; }
		[ "${2:-}" = noprobe ] || probe --udp 127.0.0.1:$w_port
		;;
	opentracker)
		# -w is read relative to -d, after opentracker drops to nobody;
		# -A lets 127.0.0.1 read /stats.
		taskset -c 0 opentracker -i 127.0.0.1 -p $ot_port -P $ot_port -d "$work" -u nobody -w wl.txt \
			-A 127.0.0.1 >>"$work/ot.log" 2>&1 &
		server_pid=$!
		probe $(target opentracker udp)
		;;
	udpecho)
		taskset -c 0 "$work/udpecho" -addr 127.0.0.1:$ue_port 2>>"$work/echo.log" &
		server_pid=$!
		probe $(target udpecho udp)
		;;
	httpecho)
		taskset -c 0 "$work/httpecho" -addr 127.0.0.1:$he_port 2>>"$work/echo.log" &
		server_pid=$!
		probe $(target httpecho http)
		;;
	esac
}

stop_server() {
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

target() { # NAME PROTO: the load tool's target flags for a server
	local port
	case $1 in
	warden | warden-open) port=$w_port ;;
	opentracker) port=$ot_port ;;
	udpecho) port=$ue_port ;;
	httpecho) port=$he_port ;;
	esac
	if [ "$2" = udp ]; then echo "--udp 127.0.0.1:$port"; else echo "--http http://127.0.0.1:$port/announce"; fi
}

# run LABEL SERVER ROUND PID LOAD_ARGS...: one load run on core 1, its
# result appended to rows.tsv (see extract below). A run during which
# something else used more than $noise cores (another job on this shared
# machine) is repeated after a pause, twice at most and $retries times
# over the whole suite, so that a busy machine cannot stretch it for long;
# the footer counts them.
noise=${BENCH_NOISE:-0.25} retries=${BENCH_RETRIES:-12}
run() {
	local label=$1 server=$2 round=$3 pid=$4
	shift 4
	local try line
	for try in 1 2 3; do
		taskset -c 1 "$W" load --hashes "$work/hashes.txt" --torrents $load_torrents \
			--warmup ${warm}s --duration ${secs}s --server-pid "$pid" --json "$@" >"$work/out.json" 2>>"$work/load.log" || {
			echo "run.sh: load failed: $label $server: $*" >&2
			tail -5 "$work/load.log" >&2
			exit 1
		}
		line=$(python3 "$work/extract.py" "$work/out.json" "$label" "$server" "$round")
		awk -F'\t' '{printf "    %-13s %-11s ok/s %7d  p50 %5dµs  p99 %6dµs  sent/s %7d  cores: load %s server %s other %s\n", $1, $2, $4, $5, $6, $7, $10, $11, $12}' <<<"$line" >&2
		awk -F'\t' -v n="$noise" '$12 > n {exit 1}' <<<"$line" && break
		if [ $try = 3 ] || [ "$retries" -le 0 ]; then
			echo "$label $server $round" >>"$work/disturbed.txt"
			break
		else
			retries=$((retries - 1))
			echo "$label $server $round" >>"$work/repeated.txt"
			log "    something else used more than $noise cores: again in 5 s"
			sleep 5
		fi
	done
	cp "$work/out.json" "$work/json/$label-$server-$round.json"
	echo "$line" >>"$work/rows.tsv"
}

cat >"$work/extract.py" <<'PY'
# One line per run: label server round ok/s p50_us p99_us sent/s timeouts
# bad gen_cores server_cores other_cores late one_shot_workers. other_cores
# is the two cores' busy time not charged to the server or the load tool:
# other processes, and kernel work charged to no one. -1: unknown.
import json, sys
r = json.load(open(sys.argv[1]))
cls = [c for c in r["classes"] if c["name"] != "connect"]
c = max(cls, key=lambda c: c["sent"])
secs = r["elapsed_ns"] / 1e9
srv = (r.get("server") or {}).get("cores", -1.0)
gen = r.get("generator_cores", 0.0)
busy = sum((r.get("machine") or {}).get("cpu_busy", [])[:2])
other = max(0.0, busy - srv - gen) if srv >= 0 and busy else -1
print(*sys.argv[2:5], f'{c["ok_per_sec"]:.0f}', c["latency"]["p50_ns"] // 1000, c["latency"]["p99_ns"] // 1000,
      f'{c["sent"] / secs:.0f}', c["timeouts"], c["bad"], f"{gen:.2f}", f"{srv:.2f}", f"{other:.2f}", c["late"], r.get("one_shot_workers", 0), sep="\t")
PY

median() { # LABEL SERVER: median ok/s of a label's runs so far
	python3 - "$work/rows.tsv" "$1" "$2" <<'PY'
import sys, statistics as st
v = [float(l.split("\t")[3]) for l in open(sys.argv[1]) if l.split("\t")[:2] == sys.argv[2:4]]
print(int(st.median(v)))
PY
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# peers_stored SERVER: peers the server holds, by its own count.
peers_stored() {
	if [ "$1" = opentracker ]; then # first line of mode=peer is the peer count
		curl -sf "http://127.0.0.1:$ot_port/stats?mode=peer" | head -1
	else
		curl -sf -H "Authorization: Bearer $(cat "$work/data/admin.token")" $admin/stats |
			python3 -c 'import json,sys; s=json.load(sys.stdin)["swarm"]; print(s["seeders"] + s["leechers"])'
	fi
}

# Alternate the servers' order between rounds, so that drift in the
# machine's state does not always favour the same one.
order() { # ROUND NAMES...: NAMES, reversed on even rounds
	local r=$1
	shift
	if [ $((r % 2)) = 1 ]; then echo "$@"; else printf '%s\n' "$@" | tac | tr '\n' ' '; fi
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' ','; }
load_before=$(loadavg)

# --- phase 0: register the torrents once --------------------------------------
log "registering $hash_count torrents with warden (once; the data directory is reused)"
start_server warden noprobe
"$W" registry add --admin $admin --data "$work/data" --from "$work/hashes.txt" >/dev/null
stop_server

# --- phase 1: capacity (as fast as replies allow) ----------------------------
udp_max=(--workers 2 --window 64)  # two sockets, 64 in flight each
http_max=(--workers 32)            # 32 keep-alive connections, one request each in flight
[ $memory_only = 1 ] && capacity_rounds=0 || capacity_rounds=$rounds
for round in $(seq $capacity_rounds); do
	for s in $(order $round warden warden-open opentracker udpecho httpecho); do
		log "round $round/$rounds: capacity of $s"
		case $s in
		udpecho)
			start_server $s
			run udp-announce $s $round $server_pid $(target $s udp) "${udp_max[@]}"
			stop_server
			;;
		httpecho)
			start_server $s
			run http-announce $s $round $server_pid $(target $s http) "${http_max[@]}"
			stop_server
			;;
		warden-open)
			start_server $s
			run udp-announce $s $round $server_pid $(target $s udp) "${udp_max[@]}"
			run http-announce $s $round $server_pid $(target $s http) "${http_max[@]}"
			stop_server
			;;
		*)
			start_server $s
			run udp-announce $s $round $server_pid $(target $s udp) "${udp_max[@]}"
			run udp-scrape $s $round $server_pid $(target $s udp) "${udp_max[@]}" --scenario scrape
			run http-announce $s $round $server_pid $(target $s http) "${http_max[@]}"
			run http-scrape $s $round $server_pid $(target $s http) "${http_max[@]}" --scenario scrape
			stop_server
			;;
		esac
	done
done

# --- phase 2: latency at a fixed rate, and overload ---------------------------
# The paced rates come from phase 1's medians: 50% and 90% of opentracker's
# UDP capacity for both servers (and udpecho, to show what the kernel, Go's
# scheduler and the load tool's own wake-ups cost). The overload is twice
# the server's capacity measured just before it, by the same process, and
# is compared with the mean of that capacity and one measured just after:
# this machine's speed drifts by tens of percent over minutes, so a peak
# from phase 1 could be another machine's, and even a peak just before is
# a few seconds off.
touch "$work/rows.tsv"
if [ $memory_only = 0 ]; then
	ot_cap=$(median udp-announce opentracker)
else
	ot_cap=0
fi
r50=$((ot_cap / 2)) r90=$((ot_cap * 9 / 10))
printf 'ot_cap %s\nr50 %s\nr90 %s\n' $ot_cap $r50 $r90 >"$work/meta.txt"
udp_rate=(--workers 4 --window 256)
# Overload: enough requests in flight that the load tool keeps offering 2x
# while the server drops what it cannot read. A request unanswered after
# 100 ms is given up (its slot freed): with 8 x 4096 slots, a longer wait
# would leave the load tool without free slots, and offering less. Replies
# that come later still count, as "late"; p99 shows where answers stand.
udp_over=(--workers 8 --window 4096 --timeout 100ms)
for round in $(seq $capacity_rounds); do
	for s in $(order $round warden opentracker udpecho); do
		log "round $round/$rounds: latency at ${r50}/s and ${r90}/s, overload at 2x its peak: $s"
		start_server $s
		run lat50 $s $round $server_pid $(target $s udp) "${udp_rate[@]}" --rate $r50
		run lat90 $s $round $server_pid $(target $s udp) "${udp_rate[@]}" --rate $r90
		if [ $s != udpecho ]; then
			run peak $s $round $server_pid $(target $s udp) "${udp_max[@]}"
			peak=$(tail -1 "$work/rows.tsv" | cut -f4)
			run overload $s $round $server_pid $(target $s udp) "${udp_over[@]}" --rate $((2 * peak))
			run peak-after $s $round $server_pid $(target $s udp) "${udp_max[@]}"
		fi
		stop_server
	done
done

# --- phase 3: memory per peer ----------------------------------------------
# For each shape (torrents x peers) of mem_shapes: a fresh server (warden
# restarted on its registry, which it loads and then returns the loading's
# garbage to the OS, so the baseline holds none), a warm-up that stores no
# peer, VmRSS, then every
# simulated peer announces at least once, VmRSS again. 32 workers from 32
# source addresses (127.3.0.0/24), each peer of a worker on its own port,
# paced so the sources go through their peers in step; 10% more requests
# than peers, so a source that fell behind (a lost connect costs it a
# second) still gets to its last peers; numwant 1, so replies are cheap. A
# second pass tops up if fewer than 99% are stored. Then, 7 s later (warden
# has swept at least once since the fill; opentracker gets the same wait),
# VmRSS a third time.
warden_config=$work/warden-mem.toml
for shape in $mem_shapes; do
	mem_torrents=${shape%x*} mem_peers=${shape#*x}
	mem_total=$((mem_torrents * mem_peers))
	for round in $(seq $rounds); do
		for s in $(order $round warden opentracker); do
			log "round $round/$rounds: memory of $s with $mem_torrents torrents x $mem_peers peers"
			start_server $s
			# Warm-up: 2 s of scrapes from the fill's sources, and a read of
			# the peer count, so that what the request path and the stats
			# page touch on first use (buffers, the sources' limiter
			# entries) is in the baseline, not counted as peers' memory.
			taskset -c 1 "$W" load $(target $s udp) --hashes "$work/hashes.txt" --torrents $mem_torrents \
				--scenario scrape --workers 32 --window 64 --rate 80000 --sources 127.3.0.0/24 \
				--warmup 0s --duration 2s --json >/dev/null 2>>"$work/load.log"
			peers_stored $s >/dev/null
			before=$(rss_kb $server_pid)
			for pass in 1 2; do
				taskset -c 1 "$W" load $(target $s udp) --hashes "$work/hashes.txt" --torrents $mem_torrents \
					--peers $mem_peers --numwant 1 --workers 32 --window 64 --rate 80000 --sources 127.3.0.0/24 \
					--max-requests $((mem_total + mem_total / 10)) --warmup 0s --duration 120s --json >"$work/mem.json" 2>>"$work/load.log"
				stored=$(peers_stored $s)
				[ "$stored" -ge $((mem_total * 99 / 100)) ] && break
			done
			after=$(rss_kb $server_pid)
			sleep 7
			swept=$(rss_kb $server_pid)
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $s $round $shape $before $after $stored $swept >>"$work/mem.tsv"
			log "    RSS $before -> $after kB, $stored peers stored: $(((after - before) * 1024 / (stored > 0 ? stored : 1))) bytes per peer; 7 s later $swept kB: $(((swept - before) * 1024 / (stored > 0 ? stored : 1)))"
			stop_server
		done
	done
done

# --- the table -------------------------------------------------------------
printf 'rounds %s\nsecs %s\nwarm %s\nmem_shapes %s\nload_before %s\nload_after %s\ntook %s\n' \
	$rounds $secs $warm "${mem_shapes// /,}" "$load_before" "$(loadavg)" $(($(date +%s) - started)) >>"$work/meta.txt"
log "done"
python3 bench/table.py "$work"
