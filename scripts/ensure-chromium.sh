#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the dashboard's browser test
# (playwright-core drives it; no browser download). Idempotent and quiet:
# apt-get runs only when chromium is missing. `npm test` runs it: when chromium
# cannot be installed it fails, saying which command fixes that — a suite that
# cannot run is not a pass. LABRUN_SKIP_BROWSER=1 (never set by CI) is the
# explicit opt-out: then it only says that the browser suite will be skipped.
set -euo pipefail

chromium="${LABRUN_CHROMIUM:-/usr/bin/chromium}"
say() { printf 'ensure-chromium: %s\n' "$*" >&2; }

# Root runs commands as they are; anyone else through sudo.
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

install_chromium() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1 || return 1
  local log
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  # Try the package lists already on the machine first; update them only if that fails.
  if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1; then
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      rm -f "$log"
      return 1
    fi
  fi
  rm -f "$log"
}

if [ ! -x "$chromium" ]; then
  if [ "${LABRUN_SKIP_BROWSER:-}" = 1 ]; then
    say "LABRUN_SKIP_BROWSER=1: no chromium at $chromium; the dashboard's browser suite will be SKIPPED"
    exit 0
  fi
  say "installing chromium (apt-get install chromium)"
  if ! install_chromium || [ ! -x "$chromium" ]; then
    say "FAILED: chromium is not at $chromium and could not be installed."
    say "Fix: sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium"
    say "(or set LABRUN_CHROMIUM to a chromium binary; LABRUN_SKIP_BROWSER=1 skips the browser suite)"
    exit 1
  fi
fi
say "chromium ready: $("$chromium" --version 2>/dev/null || echo "$chromium")"
