#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start one if not.
#
# Idempotent: when an engine already answers it does nothing. Otherwise it
# installs Debian's docker.io (the only source reachable here), then starts
# dockerd fully detached (own session, stdin from /dev/null, output to a log
# file) so it never holds a CI job's output open. The daemon runs without a
# bridge or iptables rules: job containers use NetworkMode none, and the
# compose services use host networking on 127.0.0.1.
#
# Env: LABRUN_DOCKERD_LOG (default /var/log/labrun-dockerd.log)
#      LABRUN_DOCKERD_PIDFILE (default /var/run/labrun-dockerd.pid) — written
#      only when this script started the daemon, so callers can stop it.
set -euo pipefail

log_file="${LABRUN_DOCKERD_LOG:-/var/log/labrun-dockerd.log}"
pid_file="${LABRUN_DOCKERD_PIDFILE:-/var/run/labrun-dockerd.pid}"
socket="/var/run/docker.sock"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_answers() {
  command -v docker >/dev/null 2>&1 && timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

if engine_answers; then
  say "Docker engine already answers ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

# Root runs commands as they are; anyone else through sudo.
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v dockerd >/dev/null 2>&1; then
  say "no dockerd found: installing Debian's docker.io (this takes a minute once)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# A daemon of ours may be starting already (a parallel call): wait for it
# rather than starting a second one.
if ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd (log: $log_file)"
  $SUDO mkdir -p "$(dirname "$log_file")"
  # Not through a shell function: $! must be the daemon itself (setsid execs it),
  # so that whoever started it can stop it by the pid file.
  # shellcheck disable=SC2024 # the log file is opened by this shell on purpose
  $SUDO setsid dockerd \
    --bridge=none --iptables=false --ip6tables=false \
    --storage-driver=overlay2 --exec-opt native.cgroupdriver=cgroupfs \
    </dev/null >>"$log_file" 2>&1 &
  echo $! | $SUDO tee "$pid_file" >/dev/null
  disown || true
fi

for _ in $(seq 1 120); do
  if [ -S "$socket" ] && engine_answers; then
    say "Docker engine is up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 0.5
done

say "dockerd did not answer within 60 s; last lines of $log_file:"
tail -n 20 "$log_file" >&2 || true
exit 1
