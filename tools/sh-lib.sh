# sh-lib.sh - what the tool scripts share, sourced by tools/bench.sh,
# tools/bench-pg.sh, tools/chaos.sh, tools/demo.sh and tools/valgrind.sh:
#   bench_dir NAME       sets dir to $BENCH_DIR, emptied (keep=1: it stays),
#                        else to a new temporary directory NAME.XXXXXX (keep=0)
#   wait_port FILE WHO   waits up to 5 s for a receiver's port file, else
#                        says that WHO did not start and exits 1
#   field FILE KEY       the value after KEY in a "key value key value" line

bench_dir() {
	if [ -n "${BENCH_DIR:-}" ]; then
		dir=$BENCH_DIR
		rm -rf "$dir"
		mkdir -p "$dir"
		keep=1
	else
		dir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
		keep=0
	fi
}

wait_port() {
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -lt 500 ] || { echo "$2 did not start" >&2; exit 1; }
		sleep 0.01
	done
}

field() {
	awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$1"
}
