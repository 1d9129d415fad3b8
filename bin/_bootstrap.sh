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

bootstrap() {
  local extras="$1" spec="$ROOT" digest stamp
  [ -n "$extras" ] && spec="$ROOT[$extras]"
  digest="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  stamp="$VENV/.installed-${extras:-run}-$digest"
  [ -f "$stamp" ] && return
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setting up $VENV (first run only)..." >&2
    "$(_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  fi
  echo "installing the project${extras:+ with [$extras]} into $VENV..." >&2
  "$VENV/bin/python" -m pip install --quiet --editable "$spec" >&2
  touch "$stamp"
}
