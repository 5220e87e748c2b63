#!/usr/bin/env bash
# Lint and validate the shipping files, offline once its tools are installed:
#   - hadolint on the Dockerfile; shellcheck on the shell scripts of the shipping part;
#   - scripts/check_deploy.py: every Kubernetes manifest and every rendered kustomization
#     (`kubectl kustomize`: base, default entry point, overlays) against the Kubernetes JSON
#     schemas (kubernetes-validate, strict), the policies the README promises, `docker compose
#     config` on deploy/compose, the alerting rules of deploy/monitoring, and the lock files
#     against pyproject.toml;
#   - promtool (Debian's `prometheus` package, which .ci/run installs; or set PROMTOOL): `check
#     rules` and the alerting rules' unit tests (`test rules`).
# Tools come from PyPI (scripts/deploy-tools.txt) into a venv inside the clone, .cache/deploy-tools
# (ignored by git through its own .gitignore); a second run reuses it and takes a few seconds.
# Exits non-zero on any failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${DEPLOY_TOOLS_DIR:-$REPO/.cache/deploy-tools}"
REQUIREMENTS="$REPO/scripts/deploy-tools.txt"
STARTED=$SECONDS

log() { printf '[check-deploy %3ds] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "check-deploy: needs python3 >= 3.11 (tomllib)" >&2; exit 1; }

# --- tools (idempotent: reinstalled only when deploy-tools.txt or the python changes) ----------
stamp="$(cat "$REQUIREMENTS" <(python3 -VV) | sha256sum | cut -c1-16)"
if [[ "$(cat "$TOOLS_DIR/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    log "installing tools into $TOOLS_DIR"
    rm -rf "$TOOLS_DIR"
    mkdir -p "$(dirname "$TOOLS_DIR")"
    if [[ "$(dirname "$TOOLS_DIR")" == "$REPO/.cache" && ! -e "$REPO/.cache/.gitignore" ]]; then
        printf '# created by scripts/check-deploy.sh\n*\n' >"$REPO/.cache/.gitignore"
    fi
    python3 -m venv "$TOOLS_DIR"
    if ! "$TOOLS_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$REQUIREMENTS" >"$TOOLS_DIR/install.log" 2>&1; then
        cat "$TOOLS_DIR/install.log" >&2
        exit 1
    fi
    echo "$stamp" >"$TOOLS_DIR/.stamp"
fi
bin="$TOOLS_DIR/bin"
compose_bin="$("$bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')"
log "tools: $("$bin/hadolint" --version | head -n1); kubectl $("$bin/kubectl" version --client 2>/dev/null | head -n1 | awk '{print $3}'); compose $("$compose_bin" version --short); kubernetes-validate $("$bin/kubernetes-validate" --version)"

failed=0
run() { # name command...: run a check, remember a failure, go on with the others
    local name="$1"
    shift
    if "$@"; then
        log "ok: $name"
    else
        log "FAILED: $name"
        failed=1
    fi
}

cd "$REPO"
run "hadolint Dockerfile" "$bin/hadolint" --failure-threshold style Dockerfile
run "shellcheck" "$bin/shellcheck" --severity=style \
    scripts/check-deploy.sh scripts/lock.sh tests/container/run.sh .ci/run
run "manifests, compose and locks (scripts/check_deploy.py)" \
    "$bin/python" scripts/check_deploy.py --repo "$REPO" --kubectl "$bin/kubectl" \
    --compose "$compose_bin" --kubernetes-version 1.30.0 --kubernetes-version 1.37.0
promtool="${PROMTOOL:-promtool}"
if command -v "$promtool" >/dev/null 2>&1; then
    run "promtool check rules" "$promtool" check rules deploy/monitoring/rules.yaml
    run "promtool test rules (deploy/monitoring/rules.test.yaml)" \
        "$promtool" test rules deploy/monitoring/rules.test.yaml
else
    log "FAILED: promtool not found: apt-get install prometheus (or set PROMTOOL=/path/to/promtool)"
    failed=1
fi

if ((failed)); then
    echo "check-deploy: FAILED" >&2
    exit 1
fi
log "all deploy checks passed"
