#!/usr/bin/env bash
# One command from a fresh machine to a job's result:
#   installs the npm dependencies and builds (if needed), makes sure a Docker
#   engine runs (installing Debian's docker.io if none does), starts
#   `labrun up` in the background, and submits examples/hello.js.
# The cluster keeps running afterwards; stop it with the command printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/client/cli.bundle.js ] || npm run build
bash scripts/ensure-docker.sh

data_dir="${LABRUN_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/labrun}"
mkdir -p "$data_dir"
port="${LABRUN_PORT:-7878}"
pid_file="$data_dir/up.pid"
log_file="$data_dir/up.log"

if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "labrun is already up (pid $(cat "$pid_file"), log $log_file)"
else
  echo "starting labrun up (log: $log_file); the first start builds the runner image"
  setsid node bin/labrun.js up --port "$port" </dev/null >"$log_file" 2>&1 &
  echo $! >"$pid_file"
  # `up` prints this line once its agent has registered and the client config is written.
  for _ in $(seq 1 240); do
    grep -q "labrun is up at" "$log_file" 2>/dev/null && break
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      echo "labrun up exited; last lines of $log_file:" >&2
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.5
  done
fi

echo "\$ labrun submit examples/hello.js"
node bin/labrun.js submit examples/hello.js
echo
echo "labrun is up at http://127.0.0.1:$port. Try: npx labrun submit examples/sum.js --input '{\"a\":2,\"b\":3}'"
echo "Stop it with: kill $(cat "$pid_file")"
