#!/bin/sh
# The benchmark: one run, one table (make bench).
#   usage: tools/bench.sh BIN/smartrelay BUILD/tools
# Settings, from the environment:
#   BENCH_N=100000     events of the throughput runs
#   BENCH_SMALL_N=10000  the small run that peak memory is compared with
#   BENCH_LARGE=1      also run 1,000,000 events (memory flat in N)
#   BENCH_HISTORY=1    also run N events over N already delivered rows
#   BENCH_RATE=100 BENCH_SECONDS=10  the latency run's steady inserts
#   BENCH_IDLE=10      seconds the idle daemon is watched
#   BENCH_WORKERS=nproc  the `run --once --workers` row (skipped at 1)
#   BENCH_REPEAT=3     rounds of the relay, the workers and the ceiling in
#                      turn, on fresh copies of the outbox; each row shows
#                      its fastest run (on a shared machine the others'
#                      load only ever slows one)
#   BENCH_DIR=DIR      keep the databases and logs there (default: a
#                      temporary directory, removed at the end)
# Every relay run writes its stderr (one info line per attempt) to a file in
# that directory, as a daemon writing its log would.
set -eu
relay=$1
tools=$2
here=$(cd "$(dirname "$0")" && pwd)
N=${BENCH_N:-100000}
SMALL_N=${BENCH_SMALL_N:-10000}
RATE=${BENCH_RATE:-100}
SECONDS_=${BENCH_SECONDS:-10}
IDLE=${BENCH_IDLE:-10}
REPEAT=${BENCH_REPEAT:-3}
# One worker per core, up to the 64 that run --workers takes.
WORKERS=${BENCH_WORKERS:-$(nproc)}
[ "$WORKERS" -le 64 ] || WORKERS=64

if ! command -v python3 >/dev/null 2>&1; then
	echo "bench: python3 is missing (sh tools/bootstrap.sh bench installs it)" >&2
	exit 1
fi
. "$here/sh-lib.sh"
bench_dir smartrelay-bench

pids=""
cleanup() {
	for pid in $pids; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	[ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# receiver NAME [ARGS...]: starts one, sets $url.
receiver() {
	name=$1
	shift
	"$tools/receiver" --port-file "$dir/$name.port" --quiet \
		--max-seconds 7200 "$@" 2>"$dir/$name.log" &
	pids="$pids $!"
	wait_port "$dir/$name.port" "bench: the receiver"
	url="http://127.0.0.1:$(cat "$dir/$name.port")/smartcontactnotification"
}

# relay_once NAME COUNT [REPEAT]: fills NAME.db with COUNT events (unless
# it exists), then times `run --once $relay_args` on a copy of it, REPEAT
# times; NAME.ru is the fastest run so far. NAME.db is then the delivered
# copy, unless keep_outbox=1.
relay_args=""
keep_outbox=0
relay_once() {
	db="$dir/$1.db"
	[ -f "$db" ] || "$tools/bench_fill" "$db" "$url" --count "$2"
	k=0
	while [ $k -lt "${3:-1}" ]; do
		k=$((k + 1))
		rm -f "$dir/run.db" "$dir/run.db-wal" "$dir/run.db-shm"
		cp "$db" "$dir/run.db"
		# shellcheck disable=SC2086 # relay_args is a list of options
		"$tools/bench_rusage" "$dir/run.ru" "$relay" run --once $relay_args \
			"$dir/run.db" 2>"$dir/$1.log"
		got=$(grep -c 'outcome=delivered' "$dir/$1.log" || true)
		if [ "$got" != "$2" ]; then
			echo "bench: $1: $got of $2 events delivered" >&2
			exit 1
		fi
		fastest "$dir/run.ru" "$dir/$1.ru"
	done
	[ "$keep_outbox" = 1 ] || mv "$dir/run.db" "$db"
	rm -f "$dir/run.db" "$dir/run.db-wal" "$dir/run.db-shm" "$dir/run.ru"
}

# ceiling_once: one run of bench_ceiling; ceiling.out and .ru keep the
# fastest so far, by its own clock (the bodies are rendered before it starts).
ceiling_once() {
	"$tools/bench_rusage" "$dir/run.ru" "$tools/bench_ceiling" "$url" "$N" 64 \
		>"$dir/run.out"
	awk '{ print "wall", $6 }' "$dir/run.out" >"$dir/run.wall"
	if [ ! -f "$dir/ceiling.out" ] || awk -v a="$(field "$dir/run.wall" wall)" \
		-v b="$(awk '{ print $6 }' "$dir/ceiling.out")" 'BEGIN { exit !(a < b) }'; then
		mv "$dir/run.out" "$dir/ceiling.out"
		mv "$dir/run.ru" "$dir/ceiling.ru"
	fi
	rm -f "$dir/run.out" "$dir/run.ru" "$dir/run.wall"
}

# fastest NEW BEST: keeps in BEST whichever rusage line has the shorter wall.
fastest() {
	if [ ! -f "$2" ] ||
		awk -v a="$(field "$1" wall)" -v b="$(field "$2" wall)" \
			'BEGIN { exit !(a < b) }'; then
		mv "$1" "$2"
	fi
}

# row LABEL RUFILE COUNT: one line of the table.
row() {
	wall=$(field "$2" wall)
	user=$(field "$2" user)
	sys=$(field "$2" sys)
	rss=$(field "$2" maxrss_kb)
	awk -v l="$1" -v n="$3" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
		'BEGIN { printf "%-34s %9d %11.0f %9.2f %10.3f %9.1f\n",
			 l, n, n / w, w, (u + s) / n * 1000, r / 1024 }'
}

rate_of() {
	awk -v n="$2" -v w="$(field "$1" wall)" 'BEGIN { printf "%.0f", n / w }'
}

echo "bench: $N events, results in $dir" >&2
receiver throughput

# The same outbox for the relay, the workers and the naive script.
"$tools/bench_fill" "$dir/relay.db" "$url" --count "$N"
cp "$dir/relay.db" "$dir/naive.db"
[ "$WORKERS" -le 1 ] || cp "$dir/relay.db" "$dir/workers.db"
# The relay, the workers and the ceiling take turns, round after round, so
# that a neighbour's load that comes and goes falls on all three alike.
keep_outbox=1
round=0
while [ $round -lt "$REPEAT" ]; do
	round=$((round + 1))
	echo "bench: round $round of $REPEAT: the relay, --workers $WORKERS, the ceiling" >&2
	relay_once relay "$N"
	if [ "$WORKERS" -gt 1 ]; then
		relay_args="--workers $WORKERS"
		relay_once workers "$N"
		relay_args=""
	fi
	ceiling_once
done
keep_outbox=0

echo "bench: naive script" >&2
"$tools/bench_rusage" "$dir/naive.ru" python3 "$here/naive_relay.py" \
	"$dir/naive.db" "$url" >"$dir/naive.out"
ceiling_wall=$(awk '{ print $6 }' "$dir/ceiling.out")

echo "bench: relay, $SMALL_N events" >&2
relay_once small "$SMALL_N" "$REPEAT"
if [ "${BENCH_LARGE:-0}" = 1 ]; then
	echo "bench: relay, 1000000 events" >&2
	relay_once large 1000000
fi
if [ "${BENCH_HISTORY:-0}" = 1 ]; then
	echo "bench: relay, $N events over $N delivered" >&2
	relay_once history "$N"
	"$tools/bench_fill" "$dir/history.db" "$url" --count "$N"
	rm -f "$dir/history.ru"
	relay_once history "$N" "$REPEAT"
fi

# Latency: the daemon runs; a producer inserts one event per transaction.
echo "bench: latency, $RATE events/s for $SECONDS_ s, then $IDLE s idle" >&2
receiver latency --ids "$dir/latency.ids"
"$tools/bench_fill" "$dir/latency.db" "$url"
: >"$dir/daemon.log"
"$relay" run "$dir/latency.db" 2>"$dir/daemon.log" &
daemon=$!
pids="$pids $daemon"
i=0
until grep -q 'relay started' "$dir/daemon.log"; do
	i=$((i + 1))
	[ $i -lt 500 ] || { echo "bench: the daemon did not start" >&2; exit 1; }
	sleep 0.01
done
"$tools/bench_fill" "$dir/latency.db" "$url" --rate "$RATE" --seconds "$SECONDS_"
total=$(awk -v r="$RATE" -v s="$SECONDS_" 'BEGIN { printf "%d", r * s + 0.5 }')
i=0
while [ "$(wc -l <"$dir/latency.ids")" -lt "$total" ]; do
	i=$((i + 1))
	[ $i -lt 1000 ] || { echo "bench: the daemon did not deliver" >&2; exit 1; }
	sleep 0.01
done
sleep 1 # let the last outcomes be written before the idle watch starts
ticks=$(getconf CLK_TCK)
cpu0=$(awk '{ print $14 + $15 }' "/proc/$daemon/stat")
sleep "$IDLE"
cpu1=$(awk '{ print $14 + $15 }' "/proc/$daemon/stat")
kill -TERM "$daemon"
wait "$daemon"
"$tools/bench_latency" "$dir/latency.db" "$dir/latency.ids" >"$dir/latency.out"

relay_rate=$(rate_of "$dir/relay.ru" "$N")
best_rate=$relay_rate
if [ "$WORKERS" -gt 1 ]; then
	workers_rate=$(rate_of "$dir/workers.ru" "$N")
	best_rate=$(awk -v a="$relay_rate" -v b="$workers_rate" \
		'BEGIN { print (b > a ? b : a) }')
fi
naive_rate=$(rate_of "$dir/naive.ru" "$N")
ceiling_rate=$(awk -v n="$N" -v w="$ceiling_wall" 'BEGIN { printf "%.0f", n / w }')
idle_pct=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$ticks" -v s="$IDLE" \
	'BEGIN { printf "%.2f", (b - a) / t / s * 100 }')
p50=$(field "$dir/latency.out" p50)
p99=$(field "$dir/latency.out" p99)

verdict() { # verdict OK-EXPRESSION
	if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "MISSED"; fi
}

echo
echo "smartrelay benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  nproc=$(nproc)  $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "relay stderr (one info line per attempt) to a file; receiver: tools/receiver --quiet;"
echo "relay, workers and ceiling rows: the fastest of $REPEAT runs, taken in turns; naive: one run"
echo
printf "%-34s %9s %11s %9s %10s %9s\n" "run" "events" "deliv/s" "wall s" "CPU s/1k" "peak MB"
row "smartrelay run --once" "$dir/relay.ru" "$N"
[ "$WORKERS" -le 1 ] ||
	row "smartrelay run --once --workers $WORKERS" "$dir/workers.ru" "$N"
row "naive_relay.py (1 commit/row)" "$dir/naive.ru" "$N"
printf "%-34s %9d %11.0f %9.2f %10.3f %9.1f\n" "ceiling (HTTP only, 64 in flight)" \
	"$N" "$ceiling_rate" "$ceiling_wall" \
	"$(awk -v u="$(field "$dir/ceiling.ru" user)" -v s="$(field "$dir/ceiling.ru" sys)" -v n="$N" 'BEGIN { print (u + s) / n * 1000 }')" \
	"$(awk -v r="$(field "$dir/ceiling.ru" maxrss_kb)" 'BEGIN { print r / 1024 }')"
row "smartrelay run --once" "$dir/small.ru" "$SMALL_N"
[ "${BENCH_LARGE:-0}" != 1 ] || row "smartrelay run --once" "$dir/large.ru" 1000000
[ "${BENCH_HISTORY:-0}" != 1 ] || row "  ... over $N delivered rows" "$dir/history.ru" "$N"
echo
awk -v r="$relay_rate" -v w="${workers_rate:-0}" -v k="$WORKERS" \
	-v c="$ceiling_rate" -v n="$naive_rate" 'BEGIN {
	more = k > 1 ? sprintf("   --workers %d: %5.1f %%", k, w / c * 100) : ""
	printf "relay / ceiling   %6.1f %%%s   (target >= 50 %%)\n", r / c * 100, more
	more = k > 1 ? sprintf("   --workers %d: %5.1f x", k, w / n) : ""
	printf "relay / naive     %6.1f x%s   (target >= 10 x)\n", r / n, more }'
echo "latency, daemon    $RATE/s for $SECONDS_ s: p50 $p50 ms  p99 $p99 ms  max $(field "$dir/latency.out" max) ms   (target p50 < 10, p99 < 50)"
echo "idle daemon CPU    $idle_pct % of a core over $IDLE s   (target < 1 %)"
echo
echo "targets (throughput: the faster relay row): vs ceiling $(verdict "$best_rate >= 0.5 * $ceiling_rate"), vs naive $(verdict "$best_rate >= 10 * $naive_rate"), p50 $(verdict "$p50 < 10"), p99 $(verdict "$p99 < 50"), idle $(verdict "$idle_pct < 1")"
