#!/bin/sh
# A py-spy profile of one organisation sweep (bench/results.md, issue 27):
#   bench/profile.sh CHECKOUT LABEL ACCOUNTS IN_FLIGHT
# serves ACCOUNTS accounts of 8 principals (IAM's rates, lognormal job latency) from this
# checkout's emulator, sweeps them with CHECKOUT's collector (its own .venv; IN_FLIGHT is
# --max-accounts-in-flight, or "default"), and writes $PROFILE_DIR/LABEL/profile.txt
# (py-spy --format raw; PYSPY_FLAGS=--gil samples only the thread that holds the GIL, i.e. CPU);
# `python -m bench.profile_top` prints its top rows.
set -e
WT=$(cd "$1" && pwd); LABEL=$2; ACCOUNTS=$3; INFLIGHT=$4
OUT=${PROFILE_DIR:-/tmp/collector-profile}/$LABEL; rm -rf "$OUT"; mkdir -p "$OUT"
RATES="--rate GenerateServiceLastAccessedDetails=20 --rate GetServiceLastAccessedDetails=20 --rate GetServiceLastAccessedDetailsWithEntities=20 --rate ListUsers=10 --rate ListGroups=10 --rate ListRoles=10 --rate ListPolicies=10"
cd "$(dirname "$0")/.."
BENCH_VENV=$PWD/.venv
.venv/bin/python -m bench.emulator_proc --port 0 --accounts "$ACCOUNTS" --principals 8 --latency lognormal:2:0.5 $RATES \
  --ground-truth "$OUT/gt.jsonl" --stats "$OUT/stats.json" > "$OUT/emu.out" 2> "$OUT/emu.log" &
EMU=$!
while [ ! -s "$OUT/emu.out" ]; do sleep 0.5; done
ENDPOINT=$(head -1 "$OUT/emu.out")
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$OUT/none AWS_SHARED_CREDENTIALS_FILE=$OUT/none
export COLLECTOR_RATES_GENERATE=20 COLLECTOR_RATES_GET=20 COLLECTOR_RATES_GET_WITH_ENTITIES=20 COLLECTOR_RATES_LIST=10
cd "$OUT"
INF=""; [ "$INFLIGHT" != default ] && INF="--max-accounts-in-flight $INFLIGHT"
/usr/bin/time -v "$BENCH_VENV/bin/py-spy" record --rate 200 ${PYSPY_FLAGS:-} --format raw -o "$OUT/profile.txt" -- \
  "$WT/.venv/bin/python" "$WT/.venv/bin/collector" sweep --endpoint-url "$ENDPOINT" --no-progress --org --role-name collector-audit \
  --run-id prof --output "$OUT/out/{account_id}.jsonl" $INF 2> "$OUT/sweep.err" || true
kill $EMU; wait $EMU 2>/dev/null || true
