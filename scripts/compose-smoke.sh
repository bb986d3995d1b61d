#!/usr/bin/env bash
# End-to-end smoke test of docker-compose.yml on this machine:
#   installs docker-compose (Debian's) if missing, makes sure Docker answers,
#   builds labrun-app:local, starts the coordinator and two agents as compose
#   project "labrun-smoke" on 127.0.0.1:$LABRUN_SMOKE_PORT (7979, not the
#   default 7878 of a developer's `labrun up`), waits for both agents to be
#   ready, runs examples/hello.js with the real CLI on the host, checks the
#   result and that `labrun nodes` lists both agents.
# Always (trap, also on failure or Ctrl-C): `docker-compose down -v` and
# removal of the job containers the compose agents left — only those (label
# labrun.agent=compose-agent-N). A previous failed run is cleaned up first.
# Every wait is bounded; exit 0 only if every check passed.
#
# Env: LABRUN_SMOKE_PORT (7979), LABRUN_SMOKE_READY_SECONDS (180: both agents
#      ready, including the runner image build on a fresh engine),
#      LABRUN_SMOKE_KEEP_LOG=1 keeps the detailed log file.
set -euo pipefail
cd "$(dirname "$0")/.."

project=labrun-smoke
port="${LABRUN_SMOKE_PORT:-7979}"
ready_seconds="${LABRUN_SMOKE_READY_SECONDS:-180}"
agents=(compose-agent-1 compose-agent-2)
server="http://127.0.0.1:$port"
started=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/labrun-compose-smoke.XXXXXX")
log="$tmp/smoke.log" # everything verbose goes here; shown on failure

# Only what this test sets: the compose file's port, and a client config that
# does not exist, so a developer's own labrun config or env cannot interfere.
export LABRUN_PORT="$port" LABRUN_CONFIG="$tmp/no-config.json"
unset LABRUN_SERVER LABRUN_TOKEN LABRUN_ADMIN_TOKEN LABRUN_DATA_DIR COMPOSE_FILE COMPOSE_PROJECT_NAME

say() { printf 'compose-smoke: %s\n' "$*"; }
elapsed() { echo "$(($(date +%s) - started)) s"; }
compose() { timeout 300 docker-compose --ansi never -p "$project" -f docker-compose.yml "$@"; }
cli() { timeout 90 node dist/client/cli.js "$@"; }

fail() {
  say "FAILED after $(elapsed): $*"
  {
    echo "--- last lines of $log (repeats dropped)"
    uniq "$log" | tail -n 20
    echo "--- service logs (repeats dropped)"
    compose logs --no-color --tail 20 2>&1 | uniq || true
  } >&2
  exit 1
}

# Removes everything of project labrun-smoke and the compose agents' job containers.
teardown() {
  if command -v docker-compose >/dev/null 2>&1; then
    compose down -v --remove-orphans --timeout 20 >>"$log" 2>&1 || true
  fi
  # Twice: a create request an agent sent just before it was stopped may still
  # complete in the engine after the first sweep.
  local agent ids sweep
  for sweep in 1 2; do
    [ "$sweep" = 1 ] || sleep 2
    for agent in "${agents[@]}"; do
      ids=$(docker ps -aq --filter "label=labrun.agent=$agent" 2>/dev/null || true)
      # shellcheck disable=SC2086 # one id per word
      [ -z "$ids" ] || docker rm -f $ids >>"$log" 2>&1 || true
    done
  done
  docker volume rm "${project}_labrun-data" >>"$log" 2>&1 || true
}

on_exit() {
  local code=$?
  trap - EXIT INT TERM
  teardown
  if [ "$code" = 0 ] && [ -z "${LABRUN_SMOKE_KEEP_LOG:-}" ]; then
    rm -rf "$tmp"
  else
    say "detailed log kept in $log"
  fi
  say "cleaned up (project $project removed); total $(elapsed)"
  exit "$code"
}
trap on_exit EXIT
trap 'say "interrupted"; exit 130' INT TERM

# --- prerequisites --------------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v docker-compose >/dev/null 2>&1; then
  say "installing docker-compose (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -qq --no-install-recommends docker-compose >>"$log" 2>&1; then
    $SUDO apt-get update -qq >>"$log" 2>&1 || true
    $SUDO apt-get install -y -qq --no-install-recommends docker-compose >>"$log" 2>&1 ||
      fail "could not install docker-compose"
  fi
fi
bash scripts/ensure-docker.sh >>"$log" 2>&1 || fail "no Docker engine (scripts/ensure-docker.sh)"

# A previous run that was killed may have left its project behind.
teardown
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  fail "127.0.0.1:$port is already in use; set LABRUN_SMOKE_PORT to a free port"
fi

bash scripts/build-app-image.sh 2>>"$log" || fail "could not build labrun-app:local"

# --- up -------------------------------------------------------------------
say "starting coordinator + 2 agents (project $project, $server)"
compose up -d >>"$log" 2>&1 || fail "docker-compose up failed"

# The tokens, from the coordinator's data volume (no shell in the image: docker cp).
tokens=""
for _ in $(seq 1 60); do
  cid=$(compose ps -q coordinator 2>>"$log" || true)
  if [ -n "$cid" ]; then
    tokens=$(docker cp "$cid:/data/tokens.json" - 2>>"$log" | tar -xOf - 2>>"$log" || true)
    [ -n "$tokens" ] && break
  fi
  sleep 1
done
[ -n "$tokens" ] || fail "the coordinator wrote no tokens.json within 60 s"
token_of() { node -e 'process.stdout.write(JSON.parse(process.argv[1])[process.argv[2]])' "$tokens" "$1"; }
client_token=$(token_of client)
admin_token=$(token_of admin)

# Both agents registered and ready (the first start builds the runner image).
# A service that keeps exiting fails the test at once rather than at the deadline.
containers=$(compose ps -q 2>>"$log" || true)
crash_looping() {
  # shellcheck disable=SC2086 # one id per word
  docker inspect --format '{{.Name}} {{.RestartCount}}' $containers 2>>"$log" |
    awk '($1 ~ /coordinator/ && $2 >= 1) || $2 >= 2 { sub("^/", "", $1); print $1 }'
}
deadline=$(($(date +%s) + ready_seconds))
while :; do
  looping=$(crash_looping | tr '\n' ' ')
  [ -z "$looping" ] || fail "restarting after an exit: ${looping% }"
  nodes_json=$(cli nodes --json --server "$server" --token "$admin_token" 2>>"$log" || true)
  ready=$(node -e '
    const names = process.argv.slice(2);
    let nodes = [];
    try { nodes = JSON.parse(process.argv[1]).nodes; } catch {}
    const ready = names.filter((n) => nodes.some((x) => x.name === n && x.state === "ready"));
    process.stdout.write(String(ready.length));
  ' "$nodes_json" "${agents[@]}")
  [ "$ready" = "${#agents[@]}" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "only $ready of ${#agents[@]} agents ready after $ready_seconds s"
  sleep 2
done
say "both agents ready after $(elapsed)"

# --- a job through the real CLI ---------------------------------------------
result=$(cli submit examples/hello.js --server "$server" --token "$client_token" --json 2>>"$log") ||
  fail "labrun submit examples/hello.js failed: $result"
# shellcheck disable=SC2016 # a JavaScript template literal, not a shell expansion
check=$(node -e '
  const job = JSON.parse(process.argv[1]);
  const ok = job.state === "succeeded" && job.outcome?.result?.hello === "world";
  process.stdout.write(ok ? `ok ${job.id} on ${job.node ?? "?"} in ${job.outcome.stats?.durationMs ?? "?"} ms` : `bad ${process.argv[1].replace(/\s+/g, " ").slice(0, 300)}`);
' "$result" 2>>"$log" || echo "bad unparsable output: ${result:0:300}")
case "$check" in
ok*) say "submit examples/hello.js: {\"hello\":\"world\"} (job ${check#ok })" ;;
*) fail "unexpected job result: ${check#bad }" ;;
esac

# --- labrun nodes lists both agents ----------------------------------------------
table=$(cli nodes --server "$server" --token "$admin_token" 2>>"$log") || fail "labrun nodes failed"
echo "$table" >>"$log"
for agent in "${agents[@]}"; do
  grep -qw -- "$agent" <<<"$table" || fail "labrun nodes does not list $agent"
done
say "labrun nodes lists ${agents[*]}"
say "PASSED in $(elapsed)"
