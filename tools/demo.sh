#!/bin/sh
# The demo: a fresh database, a local receiver, two apps (one JSON, one XML),
# the document's two example events inserted with plain sqlite3 as a
# producer would, one `run --once`, then what the receiver got and the
# delivery history.
#   usage: tools/demo.sh BIN/smartrelay BUILD/tools/receiver
set -eu
. "$(dirname "$0")/sh-lib.sh"
relay=$1
receiver=$2
dir=demo
db=$dir/relay.db

rm -rf "$dir"
mkdir -p "$dir"
"$receiver" --port-file "$dir/port" --record "$dir/requests.raw" \
	--max-seconds 120 --quiet 2>"$dir/receiver.log" &
receiver_pid=$!
trap 'kill $receiver_pid 2>/dev/null || true' EXIT
wait_port "$dir/port" "demo: the receiver"
url="http://127.0.0.1:$(cat "$dir/port")/smartcontactnotification"

echo "== smartrelay init $db"
"$relay" init "$db"

echo "== provisioning: app 'default' sends JSON, app 'xmlapp' sends XML"
"$relay" config "$db" set smartContactNotificationUrl "$url"
"$relay" config "$db" set smartContactNotificationContentType application/json
"$relay" config "$db" set smartContactNotificationUrl "$url" --cloud-id xmlapp
"$relay" config "$db" set smartContactNotificationContentType application/xml --cloud-id xmlapp

echo "== a producer inserts the document's two examples with sqlite3"
sqlite3 "$db" <<'SQL'
INSERT INTO outbox (new_smart_number, network_id, new_smart_uri, interested_parties)
VALUES ('15551231234', 'mynetwork', 'johnsnow@pbx.acrobits.net',
        '[{"username":"eric","device":"erics_iphone"},{"username":"madelaine","device":"madelaines_android"}]');
INSERT INTO outbox (cloud_id, new_smart_number, network_id, new_smart_uri, interested_parties)
VALUES ('xmlapp', '+420111222333', 'network_1', 'sip_uri_1',
        '[{"username":"eric","device":"erics_iphone"},{"username":"madelaine","device":"madelaines_android"}]');
SQL

echo "== smartrelay run --once $db"
"$relay" run --once "$db"

echo "== what the receiver got"
cat "$dir/requests.raw"
echo
echo "== smartrelay history $db --attempts"
"$relay" history "$db" --attempts
