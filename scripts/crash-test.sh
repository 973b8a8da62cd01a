#!/usr/bin/env bash
# crash-test.sh — proves that `bulkgen serve` loses no work and does none
# twice when it is killed mid-batch (issue 4, "Crash safety").
#
# For SQLite and for PostgreSQL: start a server in a temp folder, submit a
# 500-image batch on the preview engine (latency 100ms), kill -9 the server
# once some images are done, start it again on the same data, wait for the
# batch to finish, sweep the files of runs that the kill interrupted
# (`bulkgen admin sweep-files`), then check with `bulkgen admin check-batch` that every
# item succeeded exactly once (one image, one charge, one succeeded attempt,
# no running attempt left behind, one file per image and no stray file) and
# that the exported manifest has one row per image. The preview engine is
# priced at 1 credit an image (a catalogue override) and the admin's
# workspace holds exactly enough for the batch, so the kill lands in a batch
# that uses up the balance: the credits must end exact to the credit
# (balance 0, nothing held, one charge per image).
#
# Run from the repository root: scripts/crash-test.sh (make crash-test).
# PostgreSQL is reached with psql as user postgres on 127.0.0.1 (trust
# auth); the script creates and drops its own database there.
# CRASH_TEST_DBS (default "sqlite postgres") picks the databases.
set -euo pipefail

IMAGES=500
PG_HOST=127.0.0.1
PG_USER=postgres
DBS=${CRASH_TEST_DBS:-sqlite postgres}

work=$(mktemp -d "${TMPDIR:-/tmp}/bulkgen-crash.XXXXXX")
bin="$work/bulkgen"
server_pid=""
pg_db="bulkgen_crash_$$"
pg_created=""

cleanup() {
	if [[ -n "$server_pid" ]]; then kill -9 "$server_pid" 2>/dev/null || true; fi
	if [[ -n "$pg_created" ]]; then
		psql -h "$PG_HOST" -U "$PG_USER" -d postgres -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf 'crash-test: [%s] %s\n' "$SECONDS" "$*" >&2; }
fail() {
	say "$*"
	echo "crash-test: FAIL ($current)"
	exit 1
}

say "building bulkgen"
CGO_ENABLED=0 go build -o "$bin" ./cmd/bulkgen
catalog="$work/priced.json"
echo '{"models":[{"id":"preview","price":{"base":1}}]}' >"$catalog"
export BULKGEN_CATALOG="$catalog"

# start_server DATA DB LOG: starts `bulkgen serve` in the background and
# sets $server_pid and $base (http://HOST:PORT, read from its log).
start_server() {
	local data=$1 db=$2 log=$3
	# Short job timeout and rescue delay, so that the jobs the kill left
	# running are taken up again within seconds instead of minutes.
	"$bin" serve --data "$data" --db "$db" --addr 127.0.0.1:0 --workers 16 \
		--job-timeout 4s --rescue-after 5s --log-level warn >>"$log.out" 2>>"$log" &
	server_pid=$!
	base=""
	for _ in $(seq 1 200); do
		base=$(grep -o 'listening on http://[0-9.:]*' "$log" | tail -1 | sed 's/listening on //' || true)
		if [[ -n "$base" ]] && curl -fsS "$base/healthz" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null || fail "server exited at start; log: $(tail -5 "$log")"
		sleep 0.1
	done
	fail "server did not answer /healthz"
}

# counts prints "STATUS SUCCEEDED FAILED" of the batch.
counts() {
	local body
	body=$(curl -fsS -H "Authorization: Bearer $token" "$base/api/v1/batches/$batch_id") || return 1
	local status succeeded failed
	status=$(grep -o '"status":"[a-z]*"' <<<"$body" | head -1 | cut -d'"' -f4)
	succeeded=$(grep -o '"succeeded":[0-9]*' <<<"$body" | head -1 | cut -d: -f2)
	failed=$(grep -o '"failed":[0-9]*' <<<"$body" | head -1 | cut -d: -f2)
	echo "$status ${succeeded:-0} ${failed:-0}"
}

run_one() {
	local kind=$1 db
	local data="$work/$kind"
	mkdir -p "$data"
	case $kind in
	sqlite) db="$data/bulkgen.db" ;;
	postgres)
		psql -h "$PG_HOST" -U "$PG_USER" -d postgres -qc "CREATE DATABASE $pg_db" >/dev/null ||
			fail "cannot create database $pg_db on $PG_HOST"
		pg_created=1
		db="postgres://$PG_USER@$PG_HOST:5432/$pg_db?sslmode=disable"
		;;
	esac
	local log="$data/server.log"
	: >"$log"
	start_server "$data" "$db" "$log"
	token=$("$bin" admin create-token --name crash-test --data "$data" --db "$db" 2>>"$log")
	[[ $token == bgk_* ]] || fail "admin create-token printed '$token'"
	# Exactly the batch's cost, on a limited account.
	"$bin" admin credits set --unlimited false --data "$data" --db "$db" >/dev/null 2>>"$log" ||
		fail "$kind: admin credits set failed"
	"$bin" admin credits grant --amount "$IMAGES" --data "$data" --db "$db" >/dev/null 2>>"$log" ||
		fail "$kind: admin credits grant failed"

	# 500 distinct prompts, one image each.
	local body="$data/batch.json"
	{
		printf '{"name":"crash test","prompts":['
		for i in $(seq 1 "$IMAGES"); do
			[[ $i -gt 1 ]] && printf ','
			printf '"crash test image %d"' "$i"
		done
		printf '],"defaults":{"model":"preview","size":"64x64","options":{"latency":"100ms"}}}'
	} >"$body"
	local created
	created=$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		--data-binary "@$body" "$base/api/v1/batches") || fail "POST /api/v1/batches failed"
	batch_id=$(grep -o '"id":[0-9]*' <<<"$created" | head -1 | cut -d: -f2)
	[[ -n "$batch_id" ]] || fail "no batch id in $created"
	say "$kind: batch $batch_id submitted ($IMAGES images)"

	# Kill the server for good measure once some images are done.
	local c
	for _ in $(seq 1 300); do
		c=$(counts || echo "unknown 0 0")
		read -r _ done_ _ <<<"$c"
		[[ $done_ -ge 50 ]] && break
		sleep 0.05
	done
	[[ $done_ -lt $IMAGES ]] || fail "the batch finished before the kill; nothing was tested"
	kill -9 "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
	say "$kind: killed the server (kill -9) with $done_/$IMAGES images done"

	start_server "$data" "$db" "$log"
	say "$kind: restarted; waiting for the batch to finish"
	local status
	for _ in $(seq 1 900); do
		c=$(counts || echo "unknown 0 0")
		read -r status done_ _ <<<"$c"
		case $status in succeeded | failed | partial | canceled) break ;; esac
		sleep 0.1
	done
	case $status in succeeded) ;; *) fail "$kind: batch ended '$status' with $done_/$IMAGES succeeded" ;; esac

	# A run killed between writing its file and recording it leaves a file
	# that no image references (its rerun draws another seed, so another
	# file). serve's sweeper removes such files once they are older than
	# the longest job (an hour); with the batch done and nothing else
	# running, sweep now, then require exactly one file per image.
	local swept
	swept=$("$bin" admin sweep-files --older-than 1ms --data "$data" --db "$db" 2>>"$log") ||
		fail "$kind: admin sweep-files failed; log: $(tail -5 "$log")"
	swept=$(grep -o '"removed": [0-9]*' <<<"$swept" | cut -d: -f2)

	local report
	if ! report=$("$bin" admin check-batch "$batch_id" --data "$data" --db "$db" 2>>"$log"); then
		printf '%s\n' "$report" >&2
		fail "$kind: check-batch found inconsistencies"
	fi
	grep -q "\"succeeded\": $IMAGES" <<<"$report" || fail "$kind: report: $report"
	grep -q "\"images\": $IMAGES," <<<"$report" || fail "$kind: report: $report"
	grep -q "\"files\": $IMAGES," <<<"$report" || fail "$kind: report: $report"
	grep -q "\"charged\": $IMAGES," <<<"$report" || fail "$kind: report: $report"
	local credits
	credits=$("$bin" admin credits show --data "$data" --db "$db" 2>>"$log") || fail "$kind: credits: $credits"
	grep -q '"balance": 0,' <<<"$credits" && grep -q '"reserved": 0,' <<<"$credits" && grep -q '"check": "ok"' <<<"$credits" ||
		fail "$kind: credits after the batch: $credits"

	# The export's manifest lists every image once (header + 500 rows).
	curl -fsS -H "Authorization: Bearer $token" -o "$data/export.zip" \
		"$base/api/v1/batches/$batch_id/export.zip?filter=all" || fail "$kind: export failed"
	local rows
	rows=$(unzip -p "$data/export.zip" manifest.jsonl | grep -c .)
	[[ $rows -eq $IMAGES ]] || fail "$kind: manifest.jsonl has $rows rows, want $IMAGES"
	local pngs
	pngs=$(unzip -Z1 "$data/export.zip" | grep -c '\.png$' || true)
	[[ $pngs -eq $IMAGES ]] || fail "$kind: export holds $pngs images, want $IMAGES"

	local retried
	retried=$(grep -o '"items_retried": [0-9]*' <<<"$report" | cut -d: -f2)
	kill -TERM "$server_pid"
	wait "$server_pid" || fail "$kind: server did not exit 0 on SIGTERM"
	server_pid=""
	say "$kind: ok: $IMAGES/$IMAGES succeeded once each,$retried interrupted items retried,$swept unrecorded files swept, manifest $rows rows, $IMAGES credits charged, balance 0"
	if [[ $kind == postgres ]]; then
		psql -h "$PG_HOST" -U "$PG_USER" -d postgres -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
		pg_created=""
	fi
}

current="setup"
for kind in $DBS; do
	current=$kind
	run_one "$kind"
done
echo "crash-test: PASS ($DBS)"
