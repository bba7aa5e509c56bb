#!/bin/sh
# Sets a Debian 12 machine up for smartrelay, then runs make with the
# arguments given:
#   sh tools/bootstrap.sh demo     build and run the demo
#   sh tools/bootstrap.sh check    build and run the tests
#   sh tools/bootstrap.sh bench    build and run the benchmark
#   sh tools/bootstrap.sh bench-pg the PostgreSQL benchmark (make bench-pg)
#   sh tools/bootstrap.sh fuzz     also install clang, then fuzz
# Missing Debian packages are installed with apt-get (as root, or via sudo).
set -eu
cd "$(dirname "$0")/.."

packages="make gcc libc6-dev pkg-config ca-certificates openssl sqlite3
	libsqlite3-dev libpq-dev libcurl4-openssl-dev libjansson-dev libxml2-dev check
	libssl-dev libmicrohttpd-dev python3 valgrind postgresql iproute2"
# libFuzzer comes with clang's runtime, only a recommendation of clang.
case " $* " in
*" fuzz "*) packages="$packages clang libclang-rt-14-dev" ;;
esac

missing=""
for package in $packages; do
	if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
		grep -q "install ok installed"; then
		missing="$missing $package"
	fi
done

if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing:$missing"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive \
		$sudo apt-get install -y -q --no-install-recommends $missing
fi

exec make "$@"
