#!/usr/bin/env bash
# make image-test: run the built image against the emulator on the host's loopback.
#  1. a sweep with `buildah run --isolation chroot` as uid 10001 into a mounted directory:
#     the files must be mode 0600 and owned by that uid;
#  2. the same with a read-only root filesystem and a tmpfs /tmp (`podman run --read-only`,
#     runc: crun cannot run on this machine's hybrid cgroups);
#  3. an S3 sweep: a hook that runs once the S3 sink exists (see s3_sweep below).
# Needs root. Usage: deploy/image/test.sh IMAGE HOST_VENV_BIN
set -euo pipefail
image=${1:?usage: test.sh IMAGE HOST_VENV_BIN}
bin=${2:?host virtualenv bin directory (collector with the emulator extra)}
uid=10001
account=123456789012
principals=${IMAGE_TEST_PRINCIPALS:-200}
work=$(mktemp -d /var/tmp/collector-image-test.XXXXXX)
emulator_pid=""
container=""

cleanup() {
    [[ -n $emulator_pid ]] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" || true
    [[ -n $container ]] && buildah rm "$container" >/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n== %s\n' "$*"; }

# Dummy keys: the emulator accepts any; nothing of the host's AWS setup reaches the image.
sweep_env=(AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
    AWS_EC2_METADATA_DISABLED=true COLLECTOR_LOG_LEVEL=warning)

check_output() {  # DIR: one complete, private file owned by $uid
    local dir=$1 file
    file=$(find "$dir" -name '*.jsonl.gz' -print -quit)
    [[ -n $file ]] || { echo "FAIL: no output file under $dir"; exit 1; }
    [[ -z $(find "$dir" -name '*.part') ]] || { echo "FAIL: a .part was left"; exit 1; }
    stat -c '%A %a %u:%g %s bytes %n' "$(dirname "$file")" "$file"
    [[ $(stat -c '%a %u' "$file") == "600 $uid" ]] || { echo "FAIL: not 0600 and uid $uid"; exit 1; }
    local run
    run=$(zcat "$file" | tail -n 1)
    echo "run line: $(echo "$run" | "$bin/python" -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], r["records"])')"
    echo "$run" | grep -q '"status": *"complete"' || { echo "FAIL: sweep not complete"; exit 1; }
}

section "image"
podman image inspect --format '{{.Id}} {{.Size}} bytes, user {{.Config.User}}' "$image"
podman image inspect --format '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}
{{end}}' "$image"

section "contents: no pip, no compiler, no emulator"
container=$(buildah from --quiet "$image")
buildah run --isolation chroot "$container" -- /bin/sh -c '
    for module in pip ensurepip moto setuptools; do
        python3 -c "import $module" 2>/dev/null && { echo "FAIL: $module importable"; exit 1; }
    done
    for tool in pip pip3 cc gcc make; do
        command -v "$tool" && { echo "FAIL: $tool present"; exit 1; }
    done
    echo "python: $(python3 --version), pip/ensurepip/setuptools/moto not importable, no pip/cc/gcc/make"
    collector --version
'

section "emulator on the host's loopback"
"$bin/collector" emulate --port 0 --principals "$principals" --seed 7 >"$work/emulate.out" 2>"$work/emulate.err" &
emulator_pid=$!
for _ in $(seq 200); do [[ -s $work/emulate.out ]] && break; sleep 0.1; done
url=$(head -n 1 "$work/emulate.out")
[[ $url == http://127.0.0.1:* ]] || { echo "FAIL: emulator did not start"; cat "$work/emulate.err"; exit 1; }
echo "$url, $principals principals, account $account"

section "sweep as uid $uid into a mounted directory (buildah run --isolation chroot)"
install -d -o "$uid" -g "$uid" -m 0700 "$work/out"
env_args=()
for pair in "${sweep_env[@]}"; do env_args+=(--env "$pair"); done
started=$(date +%s%N)
buildah run --isolation chroot --user "$uid:$uid" --volume "$work/out:/data" "${env_args[@]}" \
    "$container" -- collector sweep --endpoint-url "$url"
echo "exit 0 in $(( ($(date +%s%N) - started) / 1000000 )) ms"
check_output "$work/out"

pid1_stop() {  # `podman stop` sends SIGTERM to PID 1, as Kubernetes and ECS do
    section "SIGTERM to PID 1 of the container (podman stop)"
    local name=collector-image-test-$$ code slow_url slow_pid part
    # A slower account (Generate at 10/s) keeps this sweep running for about 20 s.
    "$bin/collector" emulate --port 0 --principals "$principals" --seed 8 \
        --rate GenerateServiceLastAccessedDetails=10 >"$work/slow.out" 2>/dev/null &
    slow_pid=$!
    for _ in $(seq 200); do [[ -s $work/slow.out ]] && break; sleep 0.1; done
    slow_url=$(head -n 1 "$work/slow.out")
    install -d -o "$uid" -g "$uid" -m 0700 "$work/out-stop"
    podman run "${podman_opts[@]}" --detach --name "$name" --user "$uid:$uid" \
        --volume "$work/out-stop:/data" "$image" sweep --endpoint-url "$slow_url" >/dev/null
    for _ in $(seq 300); do
        [[ -n $(find "$work/out-stop" -name '*.part') ]] && break
        sleep 0.1
    done
    sleep 3
    echo "PID 1 in the container: $(podman top "$name" pid args | awk '$1 == 1')"
    podman stop --time 60 "$name" >/dev/null
    code=$(podman wait "$name")
    podman rm "$name" >/dev/null
    kill "$slow_pid" && wait "$slow_pid" || true
    part=$(find "$work/out-stop" -name '*.part' -print -quit)
    [[ -n $part ]] || { echo "FAIL: no .part left"; exit 1; }
    stat -c '%A %a %u:%g %s bytes %n' "$part"
    echo "exit $code; run line: $(zcat "$part" | tail -n 1 | "$bin/python" -c 'import json,sys; r=json.load(sys.stdin); print(r["record"], r["status"], r["records"])')"
    [[ $code == 143 ]] || { echo "FAIL: exit $code, not 143"; exit 1; }
    zcat "$part" | tail -n 1 | grep -q '"status": *"interrupted"' || { echo "FAIL: no interrupted run line"; exit 1; }
}

section "read-only root filesystem, tmpfs /tmp (podman run --read-only)"
install -d -o "$uid" -g "$uid" -m 0700 "$work/out-ro"
podman_opts=(--runtime runc --network host --read-only --tmpfs /tmp:rw,size=64m
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)  # podman's defaults exceed ours
for pair in "${sweep_env[@]}"; do podman_opts+=(--env "$pair"); done
podman_run=(podman run --rm "${podman_opts[@]}")
if "${podman_run[@]}" --entrypoint /bin/true "$image" 2>"$work/podman.err"; then
    "${podman_run[@]}" --user "$uid:$uid" --volume "$work/out-ro:/data" "$image" \
        sweep --endpoint-url "$url"
    check_output "$work/out-ro"
    if "${podman_run[@]}" --entrypoint /bin/sh "$image" -c 'touch /opt/probe' 2>/dev/null; then
        echo "FAIL: the root filesystem was writable"; exit 1
    fi
    echo "root filesystem refused a write: read-only"
    pid1_stop
else
    echo "SKIPPED: podman cannot run containers here: $(tail -n 1 "$work/podman.err")"
fi

# --- S3 sweep -----------------------------------------------------------------------------
# Runs when `collector sweep --help` mentions s3:// (every build since the S3 sink landed);
# IMAGE_TEST_S3=0 or 1 forces it off or on. It makes a bucket in the emulator,
# sweeps from the image to s3://collector-image-test/{account_id}/{date}.jsonl.gz and reads
# the object back.
s3_sweep() {
    local bucket=collector-image-test
    "$bin/python" - "$url" "$bucket" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
s3.create_bucket(Bucket=sys.argv[2])
PY
    buildah run --isolation chroot --user "$uid:$uid" "${env_args[@]}" "$container" -- \
        collector sweep --endpoint-url "$url" \
        --output "s3://$bucket/{account_id}/{date}.jsonl.gz"
    "$bin/python" - "$url" "$bucket" <<'PY'
import gzip, json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
(obj,) = s3.list_objects_v2(Bucket=sys.argv[2])["Contents"]
lines = gzip.decompress(s3.get_object(Bucket=sys.argv[2], Key=obj["Key"])["Body"].read()).splitlines()
run = json.loads(lines[-1])
print(f"s3://{sys.argv[2]}/{obj['Key']} {obj['Size']} bytes, {len(lines)} lines, run {run['status']}")
assert run["status"] == "complete"
assert not s3.list_multipart_uploads(Bucket=sys.argv[2]).get("Uploads")
PY
}

section "S3 sweep"
want_s3=${IMAGE_TEST_S3:-auto}
if [[ $want_s3 == auto ]]; then
    "$bin/collector" sweep --help | grep -q 's3://' && want_s3=1 || want_s3=0
fi
if [[ $want_s3 == 1 ]]; then
    s3_sweep
else
    echo "SKIPPED: IMAGE_TEST_S3=0, or this collector has no S3 output"
fi

section "image-test passed"
