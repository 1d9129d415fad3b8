# Sourced by bin/test: a PostgreSQL server at 127.0.0.1:$WO_TEST_POSTGRES_PORT (5432) for the tests.
#
# start_test_postgres: use a server already listening there; otherwise install Debian's
# `postgresql` when it is missing (root only), let user `postgres` in from 127.0.0.1 without
# a password (a `trust` line at the top of the cluster's pg_hba.conf), and start the cluster.
# A cluster this started is stopped again by stop_test_postgres (bin/test's exit trap), and
# one that fails to come up is stopped at once: nothing is left half-started.
# Returns 1 with the reason on stderr when no server can be had.

# shellcheck source=bin/_debian.sh
source "$(dirname "${BASH_SOURCE[0]}")/_debian.sh"

WO_TEST_POSTGRES_PORT="${WO_TEST_POSTGRES_PORT:-5432}"
export WO_TEST_POSTGRES_PORT
_pg_started_cluster=""

_pg_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$WO_TEST_POSTGRES_PORT") 2>/dev/null
}

# The cluster ("version name") on the test port; made with pg_createcluster when there is none.
_pg_cluster() {
  local cluster
  cluster="$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$WO_TEST_POSTGRES_PORT" '$3 == p {print $1, $2; exit}')"
  if [ -z "$cluster" ]; then
    local version
    version="$(find /usr/lib/postgresql -maxdepth 1 -mindepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n1)"
    [ -n "$version" ] || return 1
    pg_createcluster --port "$WO_TEST_POSTGRES_PORT" "$version" wotest >/dev/null || return 1
    cluster="$version wotest"
  fi
  echo "$cluster"
}

_pg_trust_localhost() {
  local hba="/etc/postgresql/$1/$2/pg_hba.conf" line="host all postgres 127.0.0.1/32 trust"
  [ -f "$hba" ] || { echo "no $hba" >&2; return 1; }
  # pg_hba.conf is first match: the line goes first, once.
  grep -qxF "$line" "$hba" || sed -i "1i $line" "$hba"
}

start_test_postgres() {
  if _pg_listening; then
    echo "PostgreSQL: using the server already at 127.0.0.1:$WO_TEST_POSTGRES_PORT" >&2
    return 0
  fi
  if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
    ensure_debian_package pg_ctlcluster postgresql || return 1
    # The package's own cluster may only appear with the server binaries.
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || {
      echo "installed 'postgresql' but found no server in /usr/lib/postgresql" >&2
      return 1
    }
  fi
  local cluster version name
  cluster="$(_pg_cluster)" || { echo "could not find or create a PostgreSQL cluster" >&2; return 1; }
  read -r version name <<<"$cluster"
  _pg_trust_localhost "$version" "$name" || return 1
  echo "PostgreSQL: starting cluster $version/$name on 127.0.0.1:$WO_TEST_POSTGRES_PORT" >&2
  _pg_started_cluster="$version $name"
  if ! pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start; then
    tail -n 20 "/var/log/postgresql/postgresql-$version-$name.log" >&2 2>/dev/null || true
    stop_test_postgres
    return 1
  fi
  local waited=0
  until _pg_listening; do
    if [ "$waited" -ge 30 ]; then
      echo "PostgreSQL cluster $version/$name did not accept connections within 30 s" >&2
      stop_test_postgres
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

stop_test_postgres() {
  [ -n "$_pg_started_cluster" ] || return 0
  local version name
  read -r version name <<<"$_pg_started_cluster"
  _pg_started_cluster=""
  pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop -m fast >/dev/null 2>&1 || true
}
