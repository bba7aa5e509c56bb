#!/bin/sh
# The PostgreSQL benchmark (make bench-pg): `run --once` by 1, 2 and 4
# relays started at once on one outbox of a throwaway PostgreSQL server,
# beside one relay on SQLite, all against one fast receiver; one table.
#   usage: tools/bench-pg.sh BIN/smartrelay BUILD/tools
# Settings, from the environment:
#   BENCH_EVENTS=100000  events of each run, each on a freshly filled outbox
#   BENCH_RELAYS="1 2 4" the relay counts run on PostgreSQL
#   BENCH_RECEIVER_MS=0  the receiver answers after this long (its /slow/MS
#                        path): a remote endpoint's latency
#   BENCH_DIR=DIR        keep the outboxes, logs and receiver ids there
#   PG_BIN=/usr/lib/postgresql/15/bin  Debian's server and client programs
# Relay CPU is wait4(2)'s, of all the relays of a run; the server's is the
# utime + stime of its postmaster, of its children, and of the children it
# reaped (/proc/PID/stat), before and after. After each run every event must
# have reached the receiver exactly once (its --ids file) and be delivered
# after exactly one attempt (smartrelay stats); the run is marked otherwise.
set -eu
relay=$1
tools=$2
here=$(cd "$(dirname "$0")" && pwd)
N=${BENCH_EVENTS:-100000}
RELAYS=${BENCH_RELAYS:-1 2 4}
RECEIVER_MS=${BENCH_RECEIVER_MS:-0}
case $RECEIVER_MS in
'' | *[!0-9]*)
	echo "bench-pg: BENCH_RECEIVER_MS: a whole number of milliseconds" >&2
	exit 2
	;;
esac
path=/smartcontactnotification
[ "$RECEIVER_MS" = 0 ] || path=/slow/$RECEIVER_MS
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PG_BIN

if [ ! -x "$PG_BIN/postgres" ]; then
	echo "bench-pg: no PostgreSQL under $PG_BIN (sh tools/bootstrap.sh bench-pg installs it)" >&2
	exit 1
fi
. "$here/sh-lib.sh"
bench_dir smartrelay-bench-pg
# Only the server's state file is here; pg-server.sh keeps its data apart.
state="$dir/pg-server"
receiver_pid=""
cleanup() {
	[ -z "$receiver_pid" ] || kill "$receiver_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	sh "$here/pg-server.sh" stop "$state" || true
	[ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# receiver_start NAME: a fresh receiver writing NAME.ids; sets $url.
receiver_start() {
	rm -f "$dir/$1.port" "$dir/$1.ids"
	"$tools/receiver" --port-file "$dir/$1.port" --ids "$dir/$1.ids" \
		--quiet --max-seconds 7200 2>"$dir/$1.receiver.log" &
	receiver_pid=$!
	wait_port "$dir/$1.port" "bench-pg: the receiver"
	url="http://127.0.0.1:$(cat "$dir/$1.port")$path"
}

# stat_fields PID: the fields of /proc/PID/stat after the command's name
# (from the state on: ppid is $2, utime $12, stime $13, cutime $14, cstime
# $15), or nothing when PID is gone.
stat_fields() {
	line=""
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || true
	echo "${line##*) }"
}

# cpu_ticks PID: utime + stime of PID (0 when it is gone).
cpu_ticks() {
	set -- $(stat_fields "$1") 0 0 0 0 0 0 0 0 0 0 0 0 0
	echo $((${12} + ${13}))
}

# server_pids: the postmaster's children.
server_pids() {
	for f in /proc/[0-9]*; do
		set -- $(stat_fields "${f#/proc/}") 0 0
		[ "$2" != "$postmaster" ] || echo "${f#/proc/}"
	done
}

# server_ticks: CPU ticks of the server so far: the postmaster's own and
# its reaped children's, then those of its live children.
server_ticks() {
	set -- $(stat_fields "$postmaster")
	total=$((${12} + ${13} + ${14} + ${15}))
	for pid in $(server_pids); do
		total=$((total + $(cpu_ticks "$pid")))
	done
	echo "$total"
}

# server_settle: waits (up to 10 s) until no client's backend is left, so
# that its CPU is counted once, in the postmaster's reaped children.
server_settle() {
	i=0
	while :; do
		clients=0
		for pid in $(server_pids); do
			if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
				grep -q '127\.0\.0\.1('; then
				clients=1
			fi
		done
		[ $clients = 1 ] || return 0
		i=$((i + 1))
		[ $i -lt 1000 ] || { echo "bench-pg: backends did not exit" >&2; return 0; }
		sleep 0.01
	done
}

# verify NAME DB COUNT: did every event reach the receiver exactly once, and
# is every event delivered after one attempt? Writes NAME.check, returns 1
# when not.
verify() {
	posts=$(wc -l <"$dir/$1.ids")
	distinct=$(awk '{ print $1 }' "$dir/$1.ids" | sort -u | wc -l)
	not204=$(awk '$2 != 204' "$dir/$1.ids" | wc -l)
	"$relay" stats "$2" >"$dir/$1.stats"
	# "events pending P sending S delivered D failed F total T"
	table=$(awk '$1 == "events" && $2 == "pending" { print $3, $5, $7, $9, $11 }' "$dir/$1.stats")
	attempts=$(awk '$1 == "attempts" { print $3 }' "$dir/$1.stats")
	split=""
	for log in "$dir/$1".relay*.log; do
		split="$split${split:+/}$(grep -c 'outcome=delivered' "$log" || true)"
	done
	echo "receiver: $posts POSTs, $distinct distinct ids, $not204 not 204;" \
		"table (pending sending delivered failed total): $table," \
		"$attempts attempts; delivered per relay: $split" >"$dir/$1.check"
	[ "$posts" -eq "$3" ] && [ "$distinct" -eq "$3" ] && [ "$not204" -eq 0 ] &&
		[ "$table" = "0 0 $3 0 $3" ] && [ "$attempts" -eq "$3" ]
}

# run NAME DB RELAYS: fills DB with N events for a fresh receiver, then
# starts RELAYS `run --once` relays at once and waits for all of them;
# writes NAME.row.
run() {
	name=$1 db=$2 k=$3
	receiver_start "$name"
	"$tools/bench_fill" "$db" "$url" --count "$N"
	pg=""
	case "$db" in
	postgresql://*)
		pg=1
		server_settle
		;;
	esac
	load=$(cut -d' ' -f1 /proc/loadavg)
	[ -z "$pg" ] || s0=$(server_ticks)
	r0=$(cpu_ticks "$receiver_pid")
	echo "bench-pg: $name: $k relay(s), $N events" >&2
	status=0
	"$tools/bench_rusage" "$dir/$name.ru" sh -c '
		relay=$1 db=$2 k=$3 logs=$4 i=0 pids="" rc=0
		while [ $i -lt "$k" ]; do
			i=$((i + 1))
			"$relay" run --once "$db" 2>"$logs.relay$i.log" &
			pids="$pids $!"
		done
		for pid in $pids; do
			wait "$pid" || rc=1
		done
		exit $rc' sh "$relay" "$db" "$k" "$dir/$name" || status=$?
	if [ -n "$pg" ]; then
		server_settle
		s1=$(server_ticks)
	fi
	r1=$(cpu_ticks "$receiver_pid")
	kill "$receiver_pid"
	wait "$receiver_pid" || true
	receiver_pid=""
	once=yes
	if [ "$status" -ne 0 ]; then
		echo "bench-pg: $name: a relay failed (exit $status), see $dir/$name.relay*.log" >&2
		once=NO
	fi
	verify "$name" "$db" "$N" || once=NO
	wall=$(field "$dir/$name.ru" wall)
	awk -v n="$N" -v w="$wall" -v u="$(field "$dir/$name.ru" user)" \
		-v s="$(field "$dir/$name.ru" sys)" -v pg="$pg" \
		-v sv="$([ -z "$pg" ] || echo $((s1 - s0)))" -v rv=$((r1 - r0)) \
		-v t="$ticks" -v m="$(field "$dir/$name.ru" maxrss_kb)" \
		-v label="$4" -v k="$k" -v once="$once" -v load="$load" 'BEGIN {
		server = pg ? sprintf("%.3f", sv / t / n * 1000) : "-"
		printf "%-11s %6d %8d %9.0f %7.2f %10.3f %7s %8.3f %6.2f %8.1f %5.2f %4s\n",
		       label, k, n, n / w, w, (u + s) / n * 1000, server,
		       rv / t / n * 1000, (u + s + (sv + rv) / t) / w, m / 1024,
		       load, once }' >"$dir/$name.row"
}

ticks=$(getconf CLK_TCK)
echo "bench-pg: $N events per run, results in $dir" >&2
uri=$(sh "$here/pg-server.sh" start "$state")
postmaster=$(head -n 1 "$(cat "$state")/db/postmaster.pid")

run sqlite "$dir/sqlite.db" 1 "SQLite"
rows="$dir/sqlite.row"
checks="$dir/sqlite.check"
for k in $RELAYS; do
	"$PG_BIN/createdb" --maintenance-db="$uri/postgres" "relays$k"
	run "pg$k" "$uri/relays$k" "$k" "PostgreSQL"
	"$PG_BIN/dropdb" --maintenance-db="$uri/postgres" "relays$k"
	rows="$rows $dir/pg$k.row"
	checks="$checks $dir/pg$k.check"
done

echo
echo "smartrelay PostgreSQL benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  nproc=$(nproc)  $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "$("$PG_BIN/postgres" --version) (tools/pg-server.sh: fsync=off, synchronous_commit=off);"
echo "receiver: tools/receiver --quiet --ids, answering $path; relays: run --once, default options, stderr to a file;"
echo "one run per row, each on a freshly filled outbox; CPU: seconds per 1000 deliveries;"
echo "cores: CPU of the three over wall; load: 1-minute load average before the run"
echo
printf "%-11s %6s %8s %9s %7s %10s %7s %8s %6s %8s %5s %4s\n" "engine" "relays" "events" \
	"deliv/s" "wall s" "relays CPU" "pg CPU" "recv CPU" "cores" "peak MB" "load" "once"
cat $rows
echo
for c in $checks; do
	printf "%-6s %s\n" "$(basename "$c" .check)" "$(cat "$c")"
done
if grep -q ' NO$' $rows; then
	echo "bench-pg: a run did not deliver every event exactly once" >&2
	exit 1
fi
