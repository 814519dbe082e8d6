#!/usr/bin/env bash
# Makes sure the PostgreSQL the store tests use answers (DEQO_TEST_PG_URL, default
# postgres://postgres@127.0.0.1:5432/postgres). A stopped local cluster is started with pg_ctlcluster. As root on
# Debian with no PostgreSQL at all, installs Debian's postgresql and lets user postgres in from 127.0.0.1 without a
# password (a throw-away test cluster, like a CI container's). Otherwise says what to do. Exit 69 when none answers.
set -uo pipefail
url="${DEQO_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ready() { pg_isready -q -d "$url" >/dev/null 2>&1; }
ready && exit 0
installed=0
if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's postgresql for the store tests…" >&2
  [ -f /tmp/.deqo-apt-updated ] || { apt-get update -qq && touch /tmp/.deqo-apt-updated; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || { echo "error: apt-get install postgresql failed" >&2; exit 69; }
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  done
  installed=1
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    echo "starting PostgreSQL $version/main…" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    # The package may have started it before pg_hba.conf was edited.
    [ "$installed" = 1 ] && pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2
  done
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
shown=$(printf '%s' "$url" | sed -E 's#//([^:/@]*):[^@]*@#//\1:…@#')
cat >&2 <<MSG
error: no PostgreSQL answers at $shown.
The store tests run every query on PostgreSQL as well as SQLite. To fix:
  - Debian/Ubuntu:  sudo apt-get install postgresql && sudo pg_ctlcluster <version> main start
  - or point DEQO_TEST_PG_URL at a server where the user may create databases (the tests create and drop deqo_pg_*).
MSG
exit 69
