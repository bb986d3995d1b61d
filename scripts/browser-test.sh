#!/usr/bin/env bash
# The dashboard's end-to-end browser test (test/dashboard/) in headless
# chromium from Debian, driven by playwright-core: no browser download.
#
# Idempotent: installs chromium with apt-get only when it is missing. When it
# cannot be installed, the test is skipped with a message (exit 0); once
# chromium is there, a failing test fails this script.
#
# Env: LABRUN_CHROMIUM (default /usr/bin/chromium). Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${LABRUN_CHROMIUM:-/usr/bin/chromium}"
bash scripts/ensure-chromium.sh
if [ ! -x "$chromium" ]; then
  exit 0 # ensure-chromium.sh said why the browser test is skipped
fi


bash scripts/ensure-docker.sh

export LABRUN_CHROMIUM="$chromium" LABRUN_REQUIRE_BROWSER=1
exec npx vitest run --project browser "$@"
