#!/usr/bin/env bash
# One org sweep as N local processes (`--shard i/N`), then the manifest merge: the same
# mechanism as a Kubernetes Indexed Job or an AWS Batch array, on one machine. One process
# saturates about one core (~25 accounts at 20 calls/s), so N = the cores you can spare.
# Usage: deploy/local/shards.sh N [extra sweep flags, e.g. --role-name collector-audit]
# SIGINT/SIGTERM reach every shard (each stops gracefully, keeping its .part); rerun the
# same command to resume them.
set -euo pipefail
count=${1:?usage: shards.sh N [sweep flags...]}
shift
collector=${COLLECTOR:-collector}
out=${OUT:-out}
run_id=${RUN_ID:-$(date -u +%F)}  # shared by every shard, so the manifests belong together
manifest="$out/manifests/{run_id}/shard-{shard}.json"

mkdir -p "$out"
pids=()
interrupted=0
stop() { interrupted=1; kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap stop INT TERM
for ((index = 0; index < count; index++)); do
    "$collector" sweep --org --shard "$index/$count" --run-id "$run_id" --resume \
        --output "$out/{account_id}/{date}.jsonl.gz" --manifest "$manifest" "$@" \
        2>"$out/shard-$index.log" &
    pids+=("$!")
done
failed=0
for index in "${!pids[@]}"; do
    wait "${pids[$index]}" || { echo "shard $index/$count: exit $? (log: $out/shard-$index.log)"; failed=1; }
done
if ((interrupted)); then
    wait  # every shard writes its interrupted run line and keeps its .part
    echo "interrupted: rerun the same command to resume"
    exit 143
fi
# The merge names any missing shard or account and exits non-zero.
manifests=()
for ((index = 0; index < count; index++)); do
    manifests+=("$out/manifests/$run_id/shard-$index.json")
done
"$collector" manifest merge --expect-shards "$count" --output "$out/manifests/$run_id/org.json" \
    "${manifests[@]}"
exit "$failed"
