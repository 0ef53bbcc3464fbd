#!/usr/bin/env bash
# s3-server.sh: a local S3 server (versitygw over a temporary folder) for the
# S3 tests of storage/.
#
#   eval "$(bash .ci/s3-server.sh start)"   # prints export lines, nothing else on stdout
#   go test ./...
#   bash .ci/s3-server.sh stop
#
# start builds go.mod's versitygw tool if it is not built yet (go tool -n
# versitygw, a few minutes the first time), starts it on a free loopback port with its
# data in a temporary folder, waits until it answers, and prints
#   export REGSWEEP_S3_ENDPOINT=... REGSWEEP_S3_ACCESS_KEY=... REGSWEEP_S3_SECRET_KEY=... REGSWEEP_S3_REGION=...
# stop kills that server by the PID start wrote, and removes its data.
# status prints the export lines again if the server is running.
#
# The state (PID, port, data folder, log) lives in .tools/s3-server/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$REPO/.tools
BIN=
STATE=$TOOLS/s3-server
ACCESS=regsweep-test
SECRET=regsweep-test-secret
REGION=us-east-1

log() { echo "s3-server: $*" >&2; }

install() {
	mkdir -p "$TOOLS/bin"
	[ -f "$TOOLS/.gitignore" ] || printf '*\n' >"$TOOLS/.gitignore"
	# The versitygw of go.mod's tool directive, built into the go build cache.
	BIN=$(cd "$REPO" && go tool -n versitygw)
}

running() {
	[ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

print_env() {
	echo "export REGSWEEP_S3_ENDPOINT=http://127.0.0.1:$(cat "$STATE/port") REGSWEEP_S3_ACCESS_KEY=$ACCESS REGSWEEP_S3_SECRET_KEY=$SECRET REGSWEEP_S3_REGION=$REGION"
}

port_free() {
	[ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]
}

answers() {
	local code
	code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true)
	[ -n "$code" ] && [ "$code" != 000 ]
}

start() {
	if running; then
		log "already running (pid $(cat "$STATE/pid"))"
		print_env
		return
	fi
	install
	mkdir -p "$STATE"
	local data port pid
	data=$(mktemp -d "${TMPDIR:-/tmp}/regsweep-s3.XXXXXX")
	echo "$data" >"$STATE/data"
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		# setsid and closed standard streams: the server outlives this
		# script and never holds the pipe of a $(...) that evals our output.
		setsid "$BIN" --port "127.0.0.1:$port" --access "$ACCESS" --secret "$SECRET" \
			--region "$REGION" --quiet posix "$data" \
			</dev/null >"$STATE/log" 2>&1 &
		pid=$!
		for _ in $(seq 1 100); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break # exited: the port was taken after all, or worse
			fi
			if answers "$port"; then
				echo "$pid" >"$STATE/pid"
				echo "$port" >"$STATE/port"
				log "versitygw pid $pid on 127.0.0.1:$port, data in $data"
				print_env
				return
			fi
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		log "versitygw did not come up on port $port:"
		tail -n 5 "$STATE/log" >&2 || true
	done
	rm -rf "$data"
	log "could not start versitygw"
	exit 1
}

stop() {
	if [ -f "$STATE/pid" ]; then
		local pid
		pid=$(cat "$STATE/pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
			log "stopped versitygw pid $pid"
		fi
		rm -f "$STATE/pid" "$STATE/port"
	fi
	if [ -f "$STATE/data" ]; then
		rm -rf "$(cat "$STATE/data")"
		rm -f "$STATE/data"
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
	if running; then print_env; else
		log "not running"
		exit 1
	fi
	;;
install) install && echo "$BIN" ;;
*)
	echo "usage: $0 start|stop|status|install" >&2
	exit 2
	;;
esac
