# Sourced by bin/test and deploy/check.sh: install a Debian package when its command is missing.
# Usage: ensure_debian_package COMMAND PACKAGE   (returns 1 with a message when it cannot)
#        ensure_debian_font FAMILY PACKAGE       (a font family fc-list must know, e.g. the
#                                                 report's "Noto Sans CJK SC" from fonts-noto-cjk)
# Installs only as root with apt-get, without recommended packages and without starting
# the package's services (policy-rc.d): the test run starts what it needs itself.

_debian_apt_updated=0

ensure_debian_package() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "'$cmd' not found: install Debian's '$pkg' package (apt-get install $pkg) as root" >&2
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "'$cmd' not found and apt-get is unavailable: install '$pkg' by hand" >&2
    return 1
  fi
  echo "'$cmd' not found: installing Debian's '$pkg' package..." >&2
  if [ "$_debian_apt_updated" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || {
      echo "apt-get update failed" >&2
      return 1
    }
    _debian_apt_updated=1
  fi
  local rcd=/usr/sbin/policy-rc.d created_rcd=0 status=0
  if [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$rcd" && chmod +x "$rcd" && created_rcd=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" \
    >/dev/null || status=$?
  [ "$created_rcd" -eq 1 ] && rm -f "$rcd"
  if [ "$status" -ne 0 ]; then
    echo "apt-get install $pkg failed (exit $status)" >&2
    return 1
  fi
  # Some packages put their commands outside PATH (postgresql: /usr/lib/postgresql/*/bin).
  command -v "$cmd" >/dev/null 2>&1 || {
    echo "installed '$pkg' but '$cmd' is still not on PATH" >&2
    return 1
  }
}

ensure_debian_font() {
  local family=$1 pkg=$2
  fc-list ":family=$family" family 2>/dev/null | grep -q . && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "font '$family' not found: install Debian's '$pkg' package (apt-get install $pkg) as root" >&2
    return 1
  fi
  echo "font '$family' not found: installing Debian's '$pkg' package..." >&2
  if [ "$_debian_apt_updated" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
    _debian_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" fontconfig \
    >/dev/null || { echo "apt-get install $pkg failed" >&2; return 1; }
  fc-list ":family=$family" family 2>/dev/null | grep -q . || {
    echo "installed '$pkg' but fc-list knows no '$family'" >&2
    return 1
  }
}
