#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the event-store tests, installing it from the
# Debian packages when it is missing. Prints the URL the tests read from RECLOOP_TEST_PG_URL:
#   export RECLOOP_TEST_PG_URL=$(bash .ci/postgres.sh)
set -euo pipefail
SUDO="" AS_PG="runuser -u postgres --"
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; AS_PG="sudo -u postgres"; fi
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
read -r ver cluster _ <<<"$(pg_lsclusters -h | head -1)"
$SUDO pg_ctlcluster "$ver" "$cluster" start >&2 2>/dev/null || true
for _ in $(seq 30); do
  $AS_PG psql -qAtc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
$AS_PG psql -qAt >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recloop') THEN
    CREATE ROLE recloop LOGIN PASSWORD 'recloop' CREATEDB;
  END IF;
END $$;
SQL
port=$($AS_PG psql -qAtc "show port")
echo "postgresql://recloop:recloop@127.0.0.1:${port}/postgres"
