#!/usr/bin/env bash
# A throwaway PostgreSQL from Debian's packages: `initdb` in a temporary directory, on a free
# loopback port, trust auth for one database user. Prints the connection URL on stdout.
#
#   scripts/postgres-temp.sh start DIR     # installs postgresql if missing; prints postgres://…
#   scripts/postgres-temp.sh stop DIR
#
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user
# (created by the Debian package).
set -euo pipefail
cmd=${1:?usage: postgres-temp.sh start|stop DIR}
dir=${2:?usage: postgres-temp.sh start|stop DIR}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] && [ "$cmd" = start ]; then
  echo "postgres-temp: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  # The cluster lives in a directory of its own that its owner can reach (a caller's temporary
  # directory is usually 0700 root); DIR keeps a pointer to it.
  data=$(mktemp -d /tmp/af-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$data"
  echo "$data" >"$dir/cluster"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_owner "$bindir/initdb" -D "$data/data" -U af --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$bindir/pg_ctl" -D "$data/data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" start >&2 \
    || { cat "$data/server.log" >&2; exit 1; }
  as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U af af >&2
  echo "$port" >"$dir/port"
  echo "postgres://af@127.0.0.1:$port/af"
  ;;
stop)
  data=$(cat "$dir/cluster" 2>/dev/null || true)
  if [ -n "$data" ] && [ -d "$data/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$data/data" -m immediate stop >&2 || true
    rm -rf "$data"
  fi
  ;;
*) echo "usage: postgres-temp.sh start|stop DIR" >&2; exit 2 ;;
esac
