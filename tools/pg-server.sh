#!/bin/sh
# A throwaway PostgreSQL server for the tests, from Debian's packages:
#   sh tools/pg-server.sh start STATE [ADDRESS NETWORK]
#                                       prints the server's base URI
#   sh tools/pg-server.sh restart STATE (what a relay must live through)
#   sh tools/pg-server.sh pause STATE   stops the server, keeping its data
#   sh tools/pg-server.sh resume STATE  starts it again on the same port
#   sh tools/pg-server.sh stop STATE
# STATE is a file that remembers the data directory. The server runs as the
# calling user, or as nobody when that is root (initdb refuses root), on a
# free port of 127.0.0.1, trusting local connections of user smartrelay.
# With ADDRESS it also listens there (its URI is then printed) and trusts
# user smartrelay from NETWORK (ADDR/BITS): relays in other network
# namespaces reach it so.
set -eu
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=$1
state=$2

as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

# pg_ctl's -o for the data directory $1 and port $2: throwaway data, so
# nothing is synced. $1/listen holds the addresses.
server_options() {
	echo "-p $2 -k $1 -c listen_addresses=$(cat "$1/listen") -c fsync=off" \
		"-c synchronous_commit=off -c full_page_writes=off"
}

case "$cmd" in
start)
	address=${3:-}
	data=$(mktemp -d /tmp/smartrelay-pg.XXXXXX)
	[ "$(id -u)" -ne 0 ] || chown nobody "$data"
	echo "$data" > "$state"
	as_server "$PG_BIN/initdb" -D "$data/db" -U smartrelay --auth=trust \
		--encoding=UTF8 --locale=C > "$data/initdb.log" 2>&1 ||
		{ cat "$data/initdb.log" >&2; exit 1; }
	if [ -n "$address" ]; then
		echo "127.0.0.1,$address" > "$data/listen"
		echo "host all smartrelay ${4:?ADDRESS needs a NETWORK} trust" >> "$data/db/pg_hba.conf"
	else
		echo 127.0.0.1 > "$data/listen"
		address=127.0.0.1
	fi
	# A port that nothing listens on: try a few, starting at one drawn
	# from the process id, so that parallel runs do not collide.
	port=$((20000 + $$ % 20000))
	for try in 1 2 3 4 5 6 7 8; do
		if as_server "$PG_BIN/pg_ctl" -D "$data/db" -l "$data/server.log" \
			-w -t 30 -o "$(server_options "$data" "$port")" \
			start > /dev/null 2>&1; then
			echo "$port" > "$data/port"
			echo "postgresql://smartrelay@$address:$port"
			exit 0
		fi
		port=$((port + 97))
	done
	cat "$data/server.log" >&2
	exit 1
	;;
restart)
	data=$(cat "$state")
	as_server "$PG_BIN/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 30 \
		-m fast -o "$(server_options "$data" "$(cat "$data/port")")" \
		restart > /dev/null
	;;
pause)
	data=$(cat "$state")
	as_server "$PG_BIN/pg_ctl" -D "$data/db" -m fast -w stop > /dev/null
	;;
resume)
	data=$(cat "$state")
	as_server "$PG_BIN/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 30 \
		-o "$(server_options "$data" "$(cat "$data/port")")" start > /dev/null
	;;
stop)
	[ -f "$state" ] || exit 0
	data=$(cat "$state")
	as_server "$PG_BIN/pg_ctl" -D "$data/db" -m fast -w stop > /dev/null 2>&1 || true
	rm -rf "$data" "$state"
	;;
*)
	echo "usage: pg-server.sh start|restart|pause|resume|stop STATE" \
		"[ADDRESS NETWORK]" >&2
	exit 2
	;;
esac
