#!/bin/bash
# The chaos test: producers insert events with plain sqlite3 while relays on
# the same database are killed with SIGKILL at random and restarted (or now
# and then frozen past their lease), against a receiver that fails a share
# of requests at random. Relay 0 always runs; each other relay (--relays,
# 2 by default) comes and goes at random. At the end every event must be
# 'delivered' and the receiver must have answered 204 to each webhook-id at
# least once.
#   usage: tools/chaos.sh BIN/smartrelay BUILD/tools/receiver DIR
#          [--events N] [--kills K] [--fail P] [--seed S] [--relays R]
#          [--db URI] [--workers W]
# --db runs it on an empty PostgreSQL database instead of DIR/relay.db, the
# producers inserting with psql. --workers runs each relay as `run --workers
# W`; then half the kills hit one of a relay's workers instead of its parent.
# Prints "lost=N duplicates=M events=E kills=K" and exits 1 when lost > 0
# (an event not delivered, or delivered without the receiver's 204).
set -eu
. "$(dirname "$0")/sh-lib.sh"

relay=$1
receiver=$2
dir=$3
shift 3
events=5000
kills=20
fail=30
relays=2
workers=1
seed=$$
while [ $# -gt 0 ]; do
	case $1 in
	--events) events=$2 ;;
	--kills) kills=$2 ;;
	--fail) fail=$2 ;;
	--seed) seed=$2 ;;
	--relays) relays=$2 ;;
	--workers) workers=$2 ;;
	--db) db=$2 ;;
	*) echo "chaos: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
RANDOM=$seed
[ "$relays" -ge 1 ] 2>/dev/null || { echo "chaos: --relays must be 1 or more" >&2; exit 2; }

# Short enough that a killed relay's claims come back within seconds, and
# that retries of the receiver's random failures do not wait long.
relay_opts=(--concurrency 16 --timeout 1 --lease 2 --grace 0.5
	--retry-base 0.05 --retry-max 0.5 --max-attempts 1000)
[ "$workers" -le 1 ] || relay_opts+=(--workers "$workers")
batch=50
settle_seconds=300

rm -rf "$dir"
mkdir -p "$dir"
db=${db:-$dir/relay.db}
case $db in
postgres://* | postgresql://*) engine=pg ;;
*) engine=sqlite ;;
esac
pids=()
for ((r = 0; r < relays; r++)); do
	pids[r]=0
done
receiver_pid=0
producer_pid=0

cleanup() {
	for pid in "${pids[@]}" $producer_pid $receiver_pid; do
		[ "$pid" -eq 0 ] || kill -KILL "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT

"$receiver" --port-file "$dir/port" --ids "$dir/ids" --seed "$seed" \
	--max-seconds 3600 --quiet 2>"$dir/receiver.log" &
receiver_pid=$!
wait_port "$dir/port" "chaos: the receiver"

"$relay" init "$db" >/dev/null
"$relay" config "$db" set smartContactNotificationUrl \
	"http://127.0.0.1:$(cat "$dir/port")/random/$fail"
"$relay" config "$db" set smartContactNotificationContentType application/json

# SQL from stdin through the engine's own client, as a producer's would be.
sql() {
	if [ $engine = pg ]; then
		psql -qAtX -v ON_ERROR_STOP=1 "$db"
	else
		sqlite3 -cmd ".timeout 30000" "$db"
	fi
}

# The producer: batches of inserts, one transaction each.
batch_sql() {
	local n
	echo "BEGIN;"
	for ((n = $1; n < $2; n++)); do
		echo "INSERT INTO outbox (new_smart_number, network_id, new_smart_uri, interested_parties)" \
			"VALUES ('+1555$n', 'network_1', 'sip:$n@example.com'," \
			"'[{\"username\":\"u$n\",\"device\":\"d$n\"}]');"
	done
	echo "COMMIT;"
}

# Spread over about the time the kills take (a second each), so that
# relays die with events in flight.
produce() {
	local n=0 end pause
	local mean=$((kills * 1000 * batch / events))
	while [ $n -lt "$events" ]; do
		end=$((n + batch < events ? n + batch : events))
		batch_sql $n $end | sql >/dev/null
		n=$end
		pause=$((RANDOM % (2 * mean + 1)))
		sleep "$((pause / 1000)).$(printf '%03d' $((pause % 1000)))"
	done
}
produce &
producer_pid=$!

start_relay() {
	"$relay" run "$db" "${relay_opts[@]}" 2>>"$dir/relay-$1.log" &
	pids[$1]=$!
}

running() {
	[ "${pids[$1]}" -ne 0 ] && kill -0 "${pids[$1]}" 2>/dev/null
}

stop_relay() {
	kill -TERM "${pids[$1]}" 2>/dev/null || true
	wait "${pids[$1]}" 2>/dev/null || true
	pids[$1]=0
}

killed=0
paused=0
start_relay 0
while [ $killed -lt "$kills" ]; do
	running 0 || start_relay 0
	# Each other relay shares the database half the time.
	for ((r = 1; r < relays; r++)); do
		if [ $((RANDOM % 2)) -eq 0 ]; then
			running $r || start_relay $r
		elif running $r; then
			stop_relay $r
		fi
	done
	sleep "$((RANDOM % 2)).$((RANDOM % 10))"
	victim=$((RANDOM % relays))
	running $victim || victim=0
	if running $victim && [ $((RANDOM % 5)) -eq 0 ]; then
		# Frozen past its lease, as a stalled host would be: its claims
		# are taken over and its late outcomes must be refused. A worker
		# group is frozen whole.
		frozen=("${pids[$victim]}")
		children=()
		read -ra children <"/proc/${frozen[0]}/task/${frozen[0]}/children" ||
			true
		frozen+=("${children[@]}")
		kill -STOP "${frozen[@]}"
		sleep 2.5
		kill -CONT "${frozen[@]}"
		paused=$((paused + 1))
	elif running $victim; then
		target=${pids[$victim]}
		if [ "$workers" -gt 1 ] && [ $((RANDOM % 2)) -eq 0 ]; then
			# One worker dies; its parent then stops the others.
			children=()
			read -ra children <"/proc/$target/task/$target/children" || true
			[ ${#children[@]} -eq 0 ] ||
				target=${children[RANDOM % ${#children[@]}]}
		fi
		kill -KILL "$target"
		wait "${pids[$victim]}" 2>/dev/null || true
		pids[$victim]=0
		killed=$((killed + 1))
	fi
done
running 0 || start_relay 0
wait $producer_pid || echo "chaos: the producer failed" >&2
producer_pid=0

# Calm: one relay delivers what is left.
for ((r = 1; r < relays; r++)); do
	if running $r; then stop_relay $r; fi
done
for ((waited = 0; waited < settle_seconds * 10; waited++)); do
	left=$(echo "SELECT count(*) FROM outbox WHERE status <> 'delivered'" | sql)
	[ "$left" -eq 0 ] && break
	sleep 0.1
done
stop_relay 0
kill -TERM $receiver_pid
wait $receiver_pid 2>/dev/null || true
receiver_pid=0

total=$(echo "SELECT count(*) FROM outbox" | sql)
echo "SELECT id FROM outbox WHERE status = 'delivered' ORDER BY id" | sql \
	| sort >"$dir/delivered"
awk '$2 == 204 { print $1 }' "$dir/ids" | sort >"$dir/answered"
sort -u "$dir/answered" >"$dir/answered.unique"
confirmed=$(comm -12 "$dir/delivered" "$dir/answered.unique" | wc -l)
lost=$((events - confirmed))
duplicates=$(($(wc -l <"$dir/answered") - $(wc -l <"$dir/answered.unique")))
requests=$(wc -l <"$dir/ids")
locked=$(cat "$dir"/relay-*.log | grep -c "locked" || true)

# For a post-mortem: the rows not delivered, and those the receiver never
# answered 204.
echo "SELECT id, status FROM outbox WHERE status <> 'delivered'" | sql \
	>"$dir/undelivered"
comm -23 "$dir/delivered" "$dir/answered.unique" >"$dir/unanswered"

echo "chaos: rows=$total requests=$requests pauses=$paused locked_errors=$locked relays=$relays workers=$workers seed=$seed"
echo "lost=$lost duplicates=$duplicates events=$events kills=$killed"
[ "$lost" -eq 0 ] && [ "$total" -eq "$events" ]
