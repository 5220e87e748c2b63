#!/usr/bin/env bash
# Build the container image from the top-level Dockerfile for real, then run it.
#
# No Docker engine is needed: the image is built by buildah (chroot isolation) from a base image
# made locally with mmdebstrap (Debian bookworm + python3), and run by podman (runc, host network,
# read-only root filesystem), or by `buildah run --isolation chroot` where podman cannot run
# containers. Checks:
#   - the image config: non-root USER 10001:10001, ENTRYPOINT, CMD, HEALTHCHECK, OCI labels,
#     no compiler and no pip in the final image;
#   - `allowlist-sync --version` through the image's entrypoint, with a read-only root filesystem;
#   - it runs as UID/GID 10001 and can write only its cache dir and /tmp (the image's VOLUMEs);
#   - `sync --dry-run --output json` (and --detailed-exitcode), `sync` (apply) and an in-sync
#     re-run against `allowlist-sync emulator` (run from the same image) on the host's loopback,
#     with the token read from a mounted file as a Kubernetes Secret would give it and the feed
#     from tests/data;
#   - when the package has `serve`: the image's own HEALTHCHECK command passes against it, /readyz
#     reports ready, and it stops cleanly on SIGTERM.
#
# Environment:
#   ALLOWLIST_SYNC_CONTAINER_TESTS  auto (default): run if the tools can be had and can run here,
#                                   else print "SKIP: ..." and exit 0; require: such a skip is a
#                                   failure; skip: skip at once.
#   CONTAINER_TEST_BASE_TAR         reuse this rootfs tarball instead of running mmdebstrap.
#   DEBIAN_MIRROR                   default http://deb.debian.org/debian
#   CONTAINER_TEST_RUNNER=buildah   use `buildah run` even where podman works (to test that path).
#   KEEP_CONTAINER_TEST_DIR=1       keep the work directory (logs, base tarball) for debugging.
#
# Everything (image store, base tarball, logs) lives in one temporary directory, removed on exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${ALLOWLIST_SYNC_CONTAINER_TESTS:-auto}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
FEED="$REPO/tests/data/ServiceTags_Public_20251028.trimmed.json"
EXPECTED_UID=10001
IMAGE=localhost/allowlist-sync:container-test
BASE=localhost/allowlist-sync-base:$SUITE
TOKEN=dbtc_emulator_token # the emulator's documented default token, not a secret
STARTED=$SECONDS

log() { printf '[container %3ds] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
fail() {
    echo "FAIL: container test: $*" >&2
    exit 1
}
skip() {
    if [[ "$MODE" == require ]]; then
        fail "cannot run here ($*) and ALLOWLIST_SYNC_CONTAINER_TESTS=require"
    fi
    echo "SKIP: container test: $*"
    exit 0
}

case "$MODE" in
    auto | require) ;;
    skip) skip "ALLOWLIST_SYNC_CONTAINER_TESTS=skip" ;;
    *) fail "ALLOWLIST_SYNC_CONTAINER_TESTS must be auto, require or skip, not '$MODE'" ;;
esac
[[ -f "$FEED" ]] || fail "missing $FEED"
[[ -f "$REPO/README.md" ]] || fail "missing README.md (pyproject.toml names it; the build needs it)"

# --- tools -------------------------------------------------------------------------------------
install_tools() {
    local missing=()
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
    # Debian's crun 1.8 refuses hybrid cgroup hosts; runc copes with them.
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    ((${#missing[@]} == 0)) && return 0
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        skip "missing ${missing[*]} and cannot install them (needs root and apt-get)"
    fi
    log "installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1; then
        apt-get update -q >>"$WORK/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1 ||
            { tail -n 20 "$WORK/apt.log" >&2; skip "apt-get install ${missing[*]} failed"; }
    fi
}

# --- clean-up ----------------------------------------------------------------------------------
WORK=""
EMULATOR_PID=""
cleanup() {
    local rc=$?
    set +e
    if [[ -n "$EMULATOR_PID" ]]; then
        kill -- "-$EMULATOR_PID" 2>/dev/null || kill "$EMULATOR_PID" 2>/dev/null
        wait "$EMULATOR_PID" 2>/dev/null
    fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ -d "$WORK/store" ]]; then
            podman "${PODMAN_GLOBAL[@]}" rm --all --force --time 0 >/dev/null 2>&1
            buildah "${BUILDAH_GLOBAL[@]}" rm --all >/dev/null 2>&1
            podman "${PODMAN_GLOBAL[@]}" rmi --all --force >/dev/null 2>&1
            # Anything still mounted under the store (overlay layers) must go before rm -rf.
            awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
                while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
        fi
        if [[ "${KEEP_CONTAINER_TEST_DIR:-}" == 1 ]]; then
            echo "kept $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WORK="$(mktemp -d "${TMPDIR:-/tmp}/allowlist-sync-container.XXXXXX")"
STORE_DRIVER=overlay
PODMAN_GLOBAL=()
BUILDAH_GLOBAL=()
set_store() {
    PODMAN_GLOBAL=(--root "$WORK/store" --runroot "$WORK/run" --storage-driver "$STORE_DRIVER"
        --cgroup-manager cgroupfs --events-backend none)
    BUILDAH_GLOBAL=(--root "$WORK/store" --runroot "$WORK/run" --storage-driver "$STORE_DRIVER")
}
set_store
mkdir -p "$WORK/store" "$WORK/run"

install_tools
log "podman $(podman --version | awk '{print $3}'), buildah $(buildah --version | awk '{print $3}')"

# Overlay needs kernel support; vfs always works (slower, more disk).
if ! buildah "${BUILDAH_GLOBAL[@]}" from --name probe scratch >"$WORK/probe.log" 2>&1; then
    STORE_DRIVER=vfs
    set_store
    buildah "${BUILDAH_GLOBAL[@]}" from --name probe scratch >"$WORK/probe.log" 2>&1 ||
        { cat "$WORK/probe.log" >&2; skip "buildah cannot create a container store here"; }
fi
buildah "${BUILDAH_GLOBAL[@]}" rm probe >/dev/null

# --- base image: Debian + python3, made locally -------------------------------------------------
if [[ -n "${CONTAINER_TEST_BASE_TAR:-}" && -f "${CONTAINER_TEST_BASE_TAR}" ]]; then
    base_tar="$CONTAINER_TEST_BASE_TAR"
    log "base rootfs: reusing $base_tar"
else
    base_tar="$WORK/base.tar"
    log "base rootfs: mmdebstrap $SUITE + python3 from $MIRROR"
    # tzdata, netbase and ca-certificates: what the official python:*-slim images carry too.
    if ! mmdebstrap --variant=minbase --mode=root \
        --include=python3,python3-venv,ca-certificates,tzdata,netbase \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        "$SUITE" "$base_tar" "deb $MIRROR $SUITE main" </dev/null >"$WORK/mmdebstrap.log" 2>&1; then
        tail -n 20 "$WORK/mmdebstrap.log" >&2
        skip "mmdebstrap could not make a $SUITE base from $MIRROR"
    fi
fi
podman "${PODMAN_GLOBAL[@]}" import --quiet --change 'CMD ["/bin/sh"]' "$base_tar" "$BASE" >/dev/null
log "base image $BASE imported"

# --- how to run a container here ----------------------------------------------------------------
# podman, preferably with runc (Debian's crun 1.8 refuses hybrid cgroup v1/v2 hosts). Podman's
# default rlimits (nofile 1048576) can exceed what a sandbox without CAP_SYS_RESOURCE may set, so
# try the host's own limits too.
RUNNER=""
limit() { if [[ "$1" == unlimited ]]; then echo -1; else echo "$1"; fi; }
host_nofile="nofile=$(limit "$(ulimit -Sn)"):$(limit "$(ulimit -Hn)")"
host_nproc="nproc=$(limit "$(ulimit -Su)"):$(limit "$(ulimit -Hu)")"
PODMAN_RUN=()
probe_podman() {
    local runtime ulimits
    for runtime in runc crun; do
        command -v "$runtime" >/dev/null 2>&1 || continue
        for ulimits in "" "--ulimit $host_nofile --ulimit nproc=32768:32768" \
            "--ulimit $host_nofile --ulimit $host_nproc" "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"; do
            # shellcheck disable=SC2206 # word splitting of $ulimits is intended
            # The hardening of compose.yaml and the Kubernetes manifests: no capabilities,
            # no privilege escalation.
            PODMAN_RUN=(run --network host --no-healthcheck --pull never
                --cap-drop all --security-opt no-new-privileges $ulimits)
            if podman "${PODMAN_GLOBAL[@]}" --runtime "$runtime" "${PODMAN_RUN[@]}" --rm "$BASE" \
                /bin/true >>"$WORK/probe-podman.log" 2>&1; then
                PODMAN_GLOBAL+=(--runtime "$runtime")
                return 0
            fi
        done
    done
    return 1
}
if [[ "${CONTAINER_TEST_RUNNER:-podman}" == podman ]] && probe_podman; then
    RUNNER=podman
fi
if [[ -z "$RUNNER" ]]; then
    c="$(buildah "${BUILDAH_GLOBAL[@]}" from --pull-never "$BASE")"
    if buildah "${BUILDAH_GLOBAL[@]}" run --isolation chroot "$c" -- /bin/true \
        >"$WORK/probe-chroot.log" 2>&1; then
        RUNNER=buildah
    fi
    buildah "${BUILDAH_GLOBAL[@]}" rm "$c" >/dev/null
fi
if [[ -z "$RUNNER" ]]; then
    cat "$WORK"/probe-*.log >&2 2>/dev/null || true
    skip "neither podman nor buildah can run a container in this environment"
fi
log "containers run with: $RUNNER"

# --- build --------------------------------------------------------------------------------------
build_args=(
    --build-arg "BASE_IMAGE=$BASE"
    --build-arg "VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/allowlist_sync/_version.py")"
    --build-arg "REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)
# pip in the build reaches the registry the way the host does: the host's CA bundle (this host may
# sit behind a TLS-inspecting proxy), proxy variables (passed by buildah itself) and index URL.
[[ -d /etc/ssl/certs ]] && build_args+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro)
index_url="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
[[ "$index_url" == http* ]] && build_args+=(--build-arg "PIP_INDEX_URL=$index_url")

log "building $IMAGE from $REPO/Dockerfile"
if ! buildah "${BUILDAH_GLOBAL[@]}" build --isolation chroot --format docker --pull-never \
    --layers=false "${build_args[@]}" --tag "$IMAGE" --file "$REPO/Dockerfile" "$REPO" \
    >"$WORK/build.log" 2>&1; then
    tail -n 60 "$WORK/build.log" >&2
    fail "image build failed"
fi
log "built: $(podman "${PODMAN_GLOBAL[@]}" image inspect --format '{{.Size}}' "$IMAGE" |
    awk '{printf "%.0f MB", $1 / 1e6}')"

# --- image config -------------------------------------------------------------------------------
inspect() { podman "${PODMAN_GLOBAL[@]}" image inspect --format "$1" "$IMAGE"; }
check_eq() { # what, got, want
    [[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"
    log "ok: $1 = $2"
}
check_eq "image user" "$(inspect '{{.Config.User}}')" "$EXPECTED_UID:$EXPECTED_UID"
check_eq "entrypoint" "$(inspect '{{json .Config.Entrypoint}}')" '["allowlist-sync"]'
check_eq "cmd" "$(inspect '{{json .Config.Cmd}}')" '["serve"]'
healthcheck="$(inspect '{{json .HealthCheck.Test}}')"
[[ "$healthcheck" == *"/livez"* ]] || fail "HEALTHCHECK does not ask /livez: $healthcheck"
for label in title description version revision created licenses; do
    [[ -n "$(inspect "{{index .Config.Labels \"org.opencontainers.image.$label\"}}")" ]] ||
        fail "missing label org.opencontainers.image.$label"
done
log "ok: HEALTHCHECK on /livez, OCI labels present"

# --- running it ---------------------------------------------------------------------------------
# ctr [-e K=V]... [-v SRC:DST:ro]... [--entrypoint CMD] -- ARGS...: run the image once, read-only
# root filesystem, host network; stdout is the container's.
ctr() {
    local opts=() entrypoint=""
    while [[ "$1" != "--" ]]; do
        case "$1" in
            -e | -v) opts+=("$1" "$2"); shift 2 ;;
            --entrypoint) entrypoint="$2"; shift 2 ;;
            *) fail "ctr: bad option $1" ;;
        esac
    done
    shift
    if [[ "$RUNNER" == podman ]]; then
        # --read-only-tmpfs=false: like `docker run --read-only`, only the image's VOLUMEs
        # (cache dir and /tmp) are writable.
        podman "${PODMAN_GLOBAL[@]}" "${PODMAN_RUN[@]}" --rm --read-only --read-only-tmpfs=false \
            ${entrypoint:+--entrypoint "$entrypoint"} "${opts[@]}" "$IMAGE" "$@"
    else
        # buildah run neither applies ENTRYPOINT nor makes the root filesystem read-only.
        local c rc=0
        c="$(buildah "${BUILDAH_GLOBAL[@]}" from --pull-never "$IMAGE")"
        buildah "${BUILDAH_GLOBAL[@]}" run --isolation chroot --network host "${opts[@]}" "$c" -- \
            "${entrypoint:-allowlist-sync}" "$@" || rc=$?
        buildah "${BUILDAH_GLOBAL[@]}" rm "$c" >/dev/null
        return "$rc"
    fi
}

version="$(ctr -- --version)" || fail "--version failed"
check_eq "allowlist-sync --version" "$version" "allowlist-sync $(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/allowlist_sync/_version.py")"
check_eq "uid in the container" "$(ctr --entrypoint id -- -u)" "$EXPECTED_UID"
check_eq "gid in the container" "$(ctr --entrypoint id -- -g)" "$EXPECTED_UID"

# shellcheck disable=SC2016 # expanded by the container's shell, not this one
ctr --entrypoint /bin/sh -- -c '
    for tool in gcc cc make pip pip3; do
        if command -v "$tool" >/dev/null 2>&1; then echo "found $tool in the final image"; exit 1; fi
    done
    touch "$ALLOWLIST_SYNC_CACHE_DIR/probe" && touch "${TMPDIR:-/tmp}/probe"
' || fail "final image has build tools, or its cache dir / TMPDIR is not writable"
log "ok: no compiler or pip in the image; cache dir and TMPDIR writable"
if [[ "$RUNNER" == podman ]]; then
    if ctr --entrypoint /bin/sh -- -c 'touch /opt/venv/probe' 2>/dev/null; then
        fail "the root filesystem is writable under --read-only"
    fi
    log "ok: root filesystem read-only"
else
    log "note: buildah run cannot make the root filesystem read-only; not checked"
fi

# The emulator, from the same image, on a free loopback port.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port seconds
    local deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
EMULATOR_PORT="$(free_port)"
if [[ "$RUNNER" == podman ]]; then
    podman "${PODMAN_GLOBAL[@]}" "${PODMAN_RUN[@]}" --rm --read-only --read-only-tmpfs=false \
        --detach --name allowlist-sync-emulator "$IMAGE" \
        emulator --host 127.0.0.1 --port "$EMULATOR_PORT" >/dev/null
else
    setsid bash -c "$(declare -f ctr fail); $(declare -p RUNNER BUILDAH_GLOBAL IMAGE); \
        ctr -- emulator --host 127.0.0.1 --port $EMULATOR_PORT" >"$WORK/emulator.log" 2>&1 &
    EMULATOR_PID=$!
fi
wait_port "$EMULATOR_PORT" 30 || fail "the emulator did not listen on 127.0.0.1:$EMULATOR_PORT"
log "ok: emulator (from the image) on 127.0.0.1:$EMULATOR_PORT"

# Token as a file, the way the Kubernetes Secret mount gives it (readable by the container user).
# buildah run puts a fresh /run (= /var/run) over such a mount, so it gets another path there.
SECRET_PATH=/var/run/secrets/allowlist-sync/token
[[ "$RUNNER" == podman ]] || SECRET_PATH=/etc/allowlist-sync/token
printf '%s' "$TOKEN" >"$WORK/token"
chmod 0644 "$WORK/token"
job_env=(
    -e DBT_CLOUD_ACCOUNT_ID=1
    -e "DBT_CLOUD_HOST_URL=http://127.0.0.1:$EMULATOR_PORT"
    -e "DBT_CLOUD_TOKEN_FILE=$SECRET_PATH"
    -v "$WORK/token:$SECRET_PATH:ro"
    -v "$FEED:/feed/ServiceTags.json:ro"
)
sync_args=(--source-file /feed/ServiceTags.json --output json)

# check_outcome FILE STATUS DRY_RUN: the JSON contract of `sync --output json` (DESIGN.md).
check_outcome() {
    python3 - "$@" <<'PY' || fail "unexpected sync output in $1: $(head -c 600 "$1")"
import json
import sys

path, status, dry_run = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
with open(path) as f:
    out = json.load(f)
assert out["status"] == status, out["status"]
assert out["dry_run"] is dry_run, out["dry_run"]
assert isinstance(out["add"], list) and isinstance(out["remove"], list)
if status == "changes_pending":
    assert out["add"] and not out["remove"], (len(out["add"]), len(out["remove"]))
if status == "in_sync":
    assert not out["add"] and not out["remove"]
assert "rule" in out and "source" in out
assert out["source"].get("changeNumber"), out["source"]
print(f"{status}: add={len(out['add'])} remove={len(out['remove'])}", file=sys.stderr)
PY
}

rc=0
ctr "${job_env[@]}" -- sync --dry-run "${sync_args[@]}" >"$WORK/dry-run.json" 2>"$WORK/dry-run.log" || rc=$?
((rc == 0)) || { cat "$WORK/dry-run.log" >&2; fail "sync --dry-run exited $rc"; }
check_outcome "$WORK/dry-run.json" changes_pending true
log "ok: sync --dry-run against the emulator: changes pending, nothing written"

rc=0
ctr "${job_env[@]}" -- sync --dry-run --detailed-exitcode "${sync_args[@]}" >/dev/null 2>&1 || rc=$?
check_eq "exit code of sync --dry-run --detailed-exitcode with changes" "$rc" 2

rc=0
ctr "${job_env[@]}" -- sync "${sync_args[@]}" >"$WORK/apply.json" 2>"$WORK/apply.log" || rc=$?
((rc == 0)) || { cat "$WORK/apply.log" >&2; fail "sync (apply) exited $rc"; }
check_outcome "$WORK/apply.json" applied false
rc=0
ctr "${job_env[@]}" -- sync --dry-run --detailed-exitcode "${sync_args[@]}" \
    >"$WORK/again.json" 2>"$WORK/again.log" || rc=$?
((rc == 0)) || { cat "$WORK/again.log" >&2; fail "re-run after apply exited $rc"; }
check_outcome "$WORK/again.json" in_sync true
log "ok: sync applied, then a re-run is in sync"

# --- serve: the image's HEALTHCHECK against the real /livez -------------------------------------
if ! ctr -- serve --help >/dev/null 2>&1; then
    log "note: this version has no 'serve' command yet; HEALTHCHECK not exercised"
elif [[ "$RUNNER" != podman ]]; then
    log "note: serve/HEALTHCHECK check needs podman; not exercised"
else
    HEALTH_PORT="$(free_port)"
    # serve has no flags: the feed comes from ALLOWLIST_SYNC_SOURCE_FILE (it syncs on start).
    podman "${PODMAN_GLOBAL[@]}" "${PODMAN_RUN[@]}" --read-only --read-only-tmpfs=false \
        --detach --name allowlist-sync-serve "${job_env[@]}" \
        -e ALLOWLIST_SYNC_SOURCE_FILE=/feed/ServiceTags.json \
        -e ALLOWLIST_SYNC_HEALTH_HOST=127.0.0.1 -e "ALLOWLIST_SYNC_HEALTH_PORT=$HEALTH_PORT" \
        "$IMAGE" serve >/dev/null
    # The HEALTHCHECK's own command, exactly as the image declares it.
    mapfile -t hc < <(python3 -c 'import json, sys; [print(a) for a in json.loads(sys.argv[1])[1:]]' "$healthcheck")
    deadline=$((SECONDS + 30))
    until podman "${PODMAN_GLOBAL[@]}" exec allowlist-sync-serve "${hc[@]}" >"$WORK/health.log" 2>&1; do
        if ((SECONDS >= deadline)); then
            cat "$WORK/health.log" >&2
            podman "${PODMAN_GLOBAL[@]}" logs allowlist-sync-serve >&2 || true
            fail "the image's HEALTHCHECK did not pass against serve within 30 s"
        fi
        sleep 1
    done
    log "ok: HEALTHCHECK passes against serve on port $HEALTH_PORT"
    # /readyz, the Deployment's readinessProbe: ready once configured and the first run is done.
    readyz="import urllib.request; urllib.request.urlopen('http://127.0.0.1:$HEALTH_PORT/readyz', timeout=4)"
    deadline=$((SECONDS + 30))
    until podman "${PODMAN_GLOBAL[@]}" exec allowlist-sync-serve /opt/venv/bin/python -c "$readyz" \
        >"$WORK/ready.log" 2>&1; do
        ((SECONDS < deadline)) || { cat "$WORK/ready.log" >&2; fail "serve never became ready (/readyz)"; }
        sleep 1
    done
    log "ok: serve reports ready on /readyz"
    stop_started=$SECONDS
    podman "${PODMAN_GLOBAL[@]}" stop --time 20 allowlist-sync-serve >/dev/null
    code="$(podman "${PODMAN_GLOBAL[@]}" inspect --format '{{.State.ExitCode}}' allowlist-sync-serve)"
    podman "${PODMAN_GLOBAL[@]}" logs allowlist-sync-serve >"$WORK/serve.log" 2>&1 || true
    podman "${PODMAN_GLOBAL[@]}" rm allowlist-sync-serve >/dev/null
    ((code == 0)) || { tail -n 20 "$WORK/serve.log" >&2; fail "serve exited $code after SIGTERM"; }
    log "ok: serve stopped on SIGTERM with exit code 0 in $((SECONDS - stop_started)) s"
fi

log "PASS: image built from Dockerfile and run ($RUNNER) in $((SECONDS - STARTED)) s"
