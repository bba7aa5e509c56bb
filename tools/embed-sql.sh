#!/bin/sh
# Writes the migrations named on the command line as a C table, in order:
#   { version, "file name", "SQL text" },
# The version is the file's three-digit prefix.
set -eu
echo "/* Generated from sql/ by tools/embed-sql.sh; do not edit. */"
for f in "$@"; do
	name=$(basename "$f")
	version=$(printf '%s' "$name" | cut -c1-3 | sed 's/^0*//')
	printf '{ %s, "%s",\n' "$version" "$name"
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/  "/' -e 's/$/\\n"/' "$f"
	printf '},\n'
done
