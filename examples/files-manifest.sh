#!/usr/bin/env bash
# files-manifest.sh: a Handoff exec handler that walks a directory and
# returns every regular file's path, size and SHA-256.
#
# Input on stdin:  {"dir": "<path relative to MANIFEST_ROOT>"}
# Output on stdout: {"dir", "file_count", "total_bytes", "files": [{"path", "size", "sha256"}]}
# Progress lines on stderr: "progress: <percent> <message>".
#
# MANIFEST_ROOT (default ".") is the only tree the handler may read: a dir
# that resolves outside it, through ".." or a symbolic link, is refused.
# The task type's input schema admits only [A-Za-z0-9._/-] in dir, so the
# sed below cannot be fooled by quotes or escapes. Symbolic links inside
# the tree are not followed. Paths in the output are relative to dir.
#
# Exit codes: 0 success; 65 (EX_DATAERR) for an input that can never
# succeed, which fails the task without a retry.
set -euo pipefail
export LC_ALL=C

fail() {
	echo "$1" >&2
	exit 65
}

# Escape a string for a JSON string literal.
json_string() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	s=${s//$'\t'/\\t}
	if [[ $s == *[$'\001'-$'\037']* ]]; then
		local out="" c i
		for ((i = 0; i < ${#s}; i++)); do
			c=${s:i:1}
			if [[ $c == [$'\001'-$'\037'] ]]; then
				printf -v c '\\u%04x' "'$c"
			fi
			out+=$c
		done
		s=$out
	fi
	printf '"%s"' "$s"
}

input=$(tr -d '\n\r' || true)
dir=$(printf '%s' "$input" | sed -n 's/.*"dir"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9._/-]*\)".*/\1/p')
[[ -n $dir ]] || fail "input must be {\"dir\": \"<path>\"} with a path of A-Z, a-z, 0-9, '.', '_', '/' or '-'"

root=$(realpath -e -- "${MANIFEST_ROOT:-.}") || fail "MANIFEST_ROOT ${MANIFEST_ROOT:-.} does not exist"
target=$(realpath -e -- "$root/$dir" 2>/dev/null) || fail "dir $dir does not exist under the allowed root"
[[ $target == "$root" || $target == "$root"/* ]] || fail "dir $dir resolves outside the allowed root"
[[ -d $target ]] || fail "dir $dir is not a directory"

mapfile -d '' files < <(cd "$target" && find . -type f -print0 | sort -z)
count=${#files[@]}
echo "progress: 0 found $count files" >&2

total=0
last_percent=-1
{
	printf '{"dir":%s,"file_count":%d,"files":[' "$(json_string "$dir")" "$count"
	for ((i = 0; i < count; i++)); do
		path=${files[i]#./}
		size=$(stat -c %s -- "$target/$path")
		sum=$(sha256sum <"$target/$path")
		sum=${sum%% *}
		total=$((total + size))
		((i > 0)) && printf ','
		printf '{"path":%s,"size":%d,"sha256":"%s"}' "$(json_string "$path")" "$size" "$sum"

		percent=$(((i + 1) * 100 / count))
		if ((percent != last_percent)); then
			echo "progress: $percent hashed $((i + 1)) of $count files" >&2
			last_percent=$percent
		fi
	done
	printf '],"total_bytes":%d}\n' "$total"
}
