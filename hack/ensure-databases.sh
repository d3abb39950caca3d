#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) answer,
# starting the machine's servers when they are stopped. Fails, never skips:
# the store tests must run against both.
set -euo pipefail
log() { printf '[databases] %s\n' "$*" >&2; }

wait_for() { # name check-command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 1
  done
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up >/dev/null 2>&1; then
  log "PostgreSQL is not answering; starting it"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
wait_for PostgreSQL pg_up || { log "PostgreSQL does not answer on 127.0.0.1:5432. Install and start it (Debian: apt-get install postgresql; pg_ctlcluster --skip-systemctl-redirect 15 main start) or set SCIMOP_TEST_POSTGRES_URL."; exit 1; }

my_up() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping; }
if ! my_up >/dev/null 2>&1; then
  log "MariaDB is not answering; starting it"
  if [ -x /usr/sbin/mariadbd ]; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  fi
fi
wait_for MariaDB my_up || { log "MariaDB does not answer on 127.0.0.1:3306. Install and start it (Debian: apt-get install mariadb-server; start-stop-daemon --start --background --exec /usr/sbin/mariadbd) or set SCIMOP_TEST_MYSQL_URL."; exit 1; }
