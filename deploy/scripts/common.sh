# shellcheck shell=bash
# Shared settings and helpers for the ClawGate helper scripts. Sourced, not run.
#
# Every setting can be overridden from the environment:
#   CLAWGATE_SERVICE   systemd unit name            (clawgate.service)
#   CLAWGATE_HOME      working dir: config.yaml, rules/, .env   (/opt/clawgate)
#   CLAWGATE_BIN       installed binary             (/usr/local/bin/clawgate)
#   CLAWGATE_USER      service user and group       (clawgate)
#   CLAWGATE_PORT      port the service listens on  (8090)
#   CLAWGATE_URL       base URL of a running ClawGate (http://127.0.0.1:$CLAWGATE_PORT)
#   CLAWGATE_LINK_DIR  where install puts clawgate-<script> symlinks (/usr/local/bin)

CLAWGATE_SERVICE="${CLAWGATE_SERVICE:-clawgate.service}"
CLAWGATE_HOME="${CLAWGATE_HOME:-/opt/clawgate}"
CLAWGATE_BIN="${CLAWGATE_BIN:-/usr/local/bin/clawgate}"
CLAWGATE_USER="${CLAWGATE_USER:-clawgate}"
CLAWGATE_PORT="${CLAWGATE_PORT:-8090}"
CLAWGATE_URL="${CLAWGATE_URL:-http://127.0.0.1:${CLAWGATE_PORT}}"
CLAWGATE_LINK_DIR="${CLAWGATE_LINK_DIR:-/usr/local/bin}"
CLAWGATE_UNIT_DIR="${CLAWGATE_UNIT_DIR:-/etc/systemd/system}"

# The helper scripts' own directory and the checkout they belong to (symlinks resolved).
SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[1]:-$0}")")" && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
# shellcheck disable=SC2034
HELPER_SCRIPTS=(start stop restart status logs health update uninstall install)

die() {
  printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2
  exit 1
}

info() {
  printf '==> %s\n' "$*" >&2
}

warn() {
  printf '%s: warning: %s\n' "$(basename "$0")" "$*" >&2
}

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but not installed"
  done
}

# Run a command as root: directly when root, else through sudo.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "this needs root: run it as root or install sudo"
  fi
}

need_systemd() {
  command -v systemctl >/dev/null 2>&1 || die "systemctl not found: these scripts manage the systemd service; without systemd run 'clawgate' directly (see README: Deployment)"
}

# The service must be installed before start/stop/restart/status make sense.
need_unit() {
  need_systemd
  if ! systemctl cat "$CLAWGATE_SERVICE" >/dev/null 2>&1; then
    die "$CLAWGATE_SERVICE is not installed: run deploy/scripts/install first"
  fi
}

# Wait until GET $CLAWGATE_URL/health answers 200, trying up to $1 times, $2 seconds apart.
wait_healthy() {
  local tries="${1:-10}" delay="${2:-1}" i
  for ((i = 1; i <= tries; i++)); do
    if "$SCRIPT_DIR/health" --quiet --url "$CLAWGATE_URL"; then
      return 0
    fi
    sleep "$delay"
  done
  return 1
}
