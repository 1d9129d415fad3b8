# Sourced by bin/wo and bin/test: make .venv with the project installed, once per pyproject.toml.
# Usage: bootstrap EXTRAS   (EXTRAS: "" for running, "dev" for tests and linters)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "error: Python 3.11 or newer is needed (python3 --version: $(python3 --version 2>&1))" >&2
  exit 1
}

# Run a pip step quietly; on failure show its output (kept in .venv/install.log).
_pip() {
  if ! "$VENV/bin/python" -m pip "$@" >>"$VENV/install.log" 2>&1; then
    echo "error: pip $* failed; its output:" >&2
    tail -n 40 "$VENV/install.log" >&2
    exit 1
  fi
}

bootstrap() {
  local extras="$1" spec="$ROOT" digest
  [ -n "$extras" ] && spec="$ROOT[$extras]"
  digest="$(sha256sum <"$ROOT/pyproject.toml" | cut -c1-16)"
  # The dev install includes everything running needs.
  [ -f "$VENV/.installed-${extras:-run}-$digest" ] && return
  [ -z "$extras" ] && [ -f "$VENV/.installed-dev-$digest" ] && return
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setting up $VENV (first run only)..." >&2
    "$(_python)" -m venv "$VENV"
    _pip install --upgrade pip
  fi
  echo "installing the project${extras:+ with [$extras]} into $VENV..." >&2
  _pip install --editable "$spec"
  touch "$VENV/.installed-${extras:-run}-$digest"
}
