#!/usr/bin/env bash
# Build labrun-app:local, the image docker-compose.yml runs, FROM scratch:
# this machine's own node binary + the shared libraries ldd lists for it and
# for the native addons, dist/, bin/, package.json, runner-image/ and the
# production node_modules of this checkout, plus compose/'s entry scripts.
# No registry is contacted (the classic builder, FROM scratch).
#
# Builds dist/ first when it is missing or older than the sources. The
# previous labrun-app:local is pruned once replaced, unless a container uses it.
#
# Env: LABRUN_APP_IMAGE (default labrun-app:local)
#      LABRUN_APP_USE_DIST=1: take dist/ as it is (built by an earlier CI step)
# Prints one line on success; the build's output only when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${LABRUN_APP_IMAGE:-labrun-app:local}"
say() { printf 'build-app-image: %s\n' "$*"; }
started=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/labrun-app-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ ! -d node_modules/better-sqlite3 ]; then
  say "installing the npm dependencies (npm ci)"
  npm ci --no-audit --no-fund >"$work/npm-ci.log" 2>&1 || {
    say "npm ci failed:"
    tail -n 20 "$work/npm-ci.log" >&2
    exit 1
  }
fi

# dist/ must match the sources it is built from.
if [ -n "${LABRUN_APP_USE_DIST:-}" ] && [ ! -f dist/client/cli.js ]; then
  say "LABRUN_APP_USE_DIST is set but dist/ is not built"
  exit 1
fi
if [ -z "${LABRUN_APP_USE_DIST:-}" ] && { [ ! -f dist/client/cli.js ] || [ ! -f dist/client/cli.bundle.js ] ||
  [ -n "$(find protocol coordinator agent client bench -name '*.ts' ! -name '*.test.ts' -newer dist/client/cli.js -print -quit)" ] ||
  [ package.json -nt dist/client/cli.js ]; }; then
  say "dist/ is missing or stale: npm run build"
  npm run build >"$work/npm-build.log" 2>&1 || {
    say "npm run build failed:"
    tail -n 20 "$work/npm-build.log" >&2
    exit 1
  }
fi

summary=$(node compose/assemble-app-image.mjs "$work/context") || {
  say "could not lay out the build context (compose/assemble-app-image.mjs)"
  exit 1
}

# The context goes as a tarball on stdin; the classic builder (no BuildKit
# frontend image to pull). COPY keeps the modes (/tmp 1777); owners are root.
if ! tar -C "$work/context" --owner=0 --group=0 --numeric-owner -cf - . |
  DOCKER_BUILDKIT=0 docker build --quiet --tag "$image" --label labrun.app=1 - \
    >"$work/build.log" 2>&1; then
  say "docker build failed:"
  grep -v -e 'DEPRECATED' -e 'BuildKit is currently disabled' -e 'environment-variable' \
    -e 'Install the buildx' -e 'docs.docker.com/go/buildx' "$work/build.log" >&2 || true
  exit 1
fi
new_id=$(docker image inspect --format '{{.Id}}' "$image" 2>"$work/inspect.log") || {
  say "the build ended but $image cannot be inspected: $(cat "$work/inspect.log")"
  exit 1
}

# A replaced labrun-app image is left untagged: prune those (only dangling
# images with our label; one a container still uses is kept).
docker image prune --force --filter label=labrun.app=1 >/dev/null 2>&1 || true

size=$(docker image inspect --format '{{.Size}}' "$image")
say "$image (${new_id:7:12}, $((size / 1048576)) MB) built in $(($(date +%s) - started)) s: $summary"
