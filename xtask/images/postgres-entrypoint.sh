#!/bin/sh
# The upstream postgres image's interface, on Debian's PostgreSQL: the first
# start makes the cluster in $PGDATA for $POSTGRES_USER with
# $POSTGRES_PASSWORD (scram-sha-256 over TCP) and creates $POSTGRES_DB; the
# arguments go to postgres (e.g. `-c max_connections=300`).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres: POSTGRES_PASSWORD is not set; refusing to make a database without one" >&2
    exit 1
  fi
  printf '%s\n' "$POSTGRES_PASSWORD" | initdb --username="$POSTGRES_USER" --pwfile=/dev/stdin \
    --auth-local=trust --auth-host=scram-sha-256 --no-locale --encoding=UTF8 -D "$PGDATA"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$POSTGRES_DB" "$POSTGRES_USER" |
      postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
