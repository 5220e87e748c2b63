#!/usr/bin/env bash
# Regenerate the hash-pinned lock files the container image installs from:
#   requirements.lock        runtime dependencies of pyproject.toml [project.dependencies]
#   requirements-build.lock  the build backend of pyproject.toml [build-system.requires]
#
# Usage: scripts/lock.sh [--upgrade]
#   Without --upgrade, versions already pinned in the lock files are kept where they still satisfy
#   pyproject.toml (uv reads the existing output file as preferences); with it, everything is
#   re-resolved to the newest allowed releases.
#
# The lock is "universal" (environment markers kept, hashes for every wheel and sdist of each pinned
# release), so one file serves the Debian bookworm python3 (3.11) used in CI and the default
# python:3.12-slim base, on amd64 and arm64. It resolves against PyPI only, whatever pip.conf or
# PIP_* variables say, so the same command gives the same file on any machine.
set -euo pipefail

UV_VERSION="0.13.9"
INDEX_URL="${LOCK_INDEX_URL:-https://pypi.org/simple}"
PROJECT_DIR="${PROJECT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

upgrade=()
case "${1:-}" in
    "") ;;
    --upgrade) upgrade=(--upgrade) ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "usage: scripts/lock.sh [--upgrade]" >&2; exit 64 ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# uv itself, pinned, in a throw-away venv (PIP_CONFIG_FILE=/dev/null: ignore local mirrors).
if command -v uv >/dev/null 2>&1 && [[ "$(uv --version | awk '{print $2}')" == "$UV_VERSION" ]]; then
    uv=uv
else
    python3 -m venv "$tmp/venv"
    PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS="" "$tmp/venv/bin/pip" install --quiet \
        --index-url "$INDEX_URL" "uv==$UV_VERSION"
    uv="$tmp/venv/bin/uv"
fi

cd "$PROJECT_DIR"
common=(
    --universal --python-version 3.11 --generate-hashes
    --default-index "$INDEX_URL" --no-config
    --custom-compile-command "scripts/lock.sh"
    --quiet "${upgrade[@]}"
)

"$uv" pip compile "${common[@]}" --output-file requirements.lock pyproject.toml

python3 - "$tmp/build.in" <<'PY'
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
with open(sys.argv[1], "w") as out:
    out.write("\n".join(requires) + "\n")
PY
"$uv" pip compile "${common[@]}" --output-file requirements-build.lock "$tmp/build.in"
# The temporary input's path would otherwise end up in the annotations.
sed -i "s|$tmp/build.in|pyproject.toml [build-system.requires]|g" requirements-build.lock

echo "wrote $PROJECT_DIR/requirements.lock and $PROJECT_DIR/requirements-build.lock"
