#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the dashboard's browser test
# (playwright-core drives it; no browser download). Idempotent and quiet:
# apt-get runs only when chromium is missing. Exits 0 either way; when it
# cannot be installed, the browser test skips itself with a message.
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
  say "installing chromium (apt-get install chromium)"
  if ! install_chromium || [ ! -x "$chromium" ]; then
    say "SKIPPED: chromium is not at $chromium and could not be installed; the dashboard was not tested in a browser"
    exit 0
  fi
fi
say "chromium ready: $("$chromium" --version 2>/dev/null || echo "$chromium")"
