#!/bin/bash
# The daemon under valgrind --leak-check=full through failures, retries, an
# unrenderable event, a 410, a config reload, a transfer cancelled at the end
# of the grace period, and SIGTERM, as two workers and their parent (one
# valgrind log each). Fails when valgrind reports an error or a definitely
# lost block.
#   usage: tools/valgrind.sh BIN/smartrelay BUILD/tools/receiver DIR
set -eu
. "$(dirname "$0")/sh-lib.sh"

relay=$1
receiver=$2
dir=$3
# Five apps of four events each, each event failing once: four transient
# failures an app, one short of what opens its circuit breaker.
apps="default a1 a2 a3 a4"
per_app=4
events=20

rm -rf "$dir"
mkdir -p "$dir"
db=$dir/relay.db
receiver_pid=0
relay_pid=0
cleanup() {
	for pid in $relay_pid $receiver_pid; do
		[ "$pid" -eq 0 ] || kill -KILL "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT

"$receiver" --port-file "$dir/port" --ids "$dir/ids" --max-seconds 600 \
	--quiet 2>"$dir/receiver.log" &
receiver_pid=$!
wait_port "$dir/port" "valgrind: the receiver"
base="http://127.0.0.1:$(cat "$dir/port")"

"$relay" init "$db" >/dev/null
for app in $apps; do
	"$relay" config "$db" set smartContactNotificationUrl "$base/seq/503,204" \
		--cloud-id "$app"
	"$relay" config "$db" set smartContactNotificationContentType \
		application/json --cloud-id "$app"
done
# An app whose endpoint is gone (410 disables it).
"$relay" config "$db" set smartContactNotificationUrl "$base/status/410" --cloud-id gone
"$relay" config "$db" set smartContactNotificationContentType application/json --cloud-id gone
# An app that answers only after the grace period: cancelled at stop.
"$relay" config "$db" set smartContactNotificationUrl "$base/slow/60000" --cloud-id slow
"$relay" config "$db" set smartContactNotificationContentType application/xml --cloud-id slow

produce() {
	local n
	{
		echo ".timeout 10000"
		for ((n = 0; n < $2; n++)); do
			echo "INSERT INTO outbox (cloud_id, new_smart_number, network_id, new_smart_uri, interested_parties)" \
				"VALUES ('$1', '+1555$n', 'network_1', 'sip:$n@example.com'," \
				"'[{\"username\":\"u$n\",\"device\":\"d$n\"}]');"
		done
	} | sqlite3 "$db"
}

valgrind --leak-check=full --errors-for-leak-kinds=definite \
	--error-exitcode=99 --log-file="$dir/valgrind.%p.log" \
	"$relay" run "$db" --workers 2 --retry-base 0.05 --retry-max 0.2 \
	--timeout 90 --lease 100 --grace 0.2 2>"$dir/relay.log" &
relay_pid=$!
for _ in $(seq 600); do
	[ "$(grep -c "relay started" "$dir/relay.log")" -eq 2 ] && break
	sleep 0.1
done
for app in $apps; do
	produce "$app" $per_app
done
produce slow 1
produce gone 2
# One unrenderable event, and a reload with a new (equally good) template.
sqlite3 "$db" ".timeout 10000" \
	"INSERT INTO outbox (new_smart_number, network_id, new_smart_uri, interested_parties)
	 VALUES ('+1', 'n', 'u', '[1]')"
"$relay" config "$db" set smartContactNotificationCustomHeaders "X-Test: 1"
kill -HUP $relay_pid

delivered=0
for _ in $(seq 1200); do
	delivered=$(sqlite3 "$db" ".timeout 10000" \
		"SELECT count(*) FROM outbox WHERE status = 'delivered'")
	[ "$delivered" -ge $events ] && break
	sleep 0.1
done
kill -TERM $relay_pid
status=0
wait $relay_pid || status=$?
relay_pid=0

grep -E "definitely lost|ERROR SUMMARY|All heap blocks" "$dir"/valgrind.*.log || true
logs=$(find "$dir" -name 'valgrind.*.log' | wc -l)
echo "valgrind: delivered=$delivered of $events, exit status $status, $logs processes"
[ "$delivered" -ge $events ] && [ $status -eq 0 ] && [ "$logs" -eq 3 ] &&
	! grep -q "definitely lost: [1-9]" "$dir"/valgrind.*.log &&
	! grep -q "ERROR SUMMARY: [1-9]" "$dir"/valgrind.*.log
