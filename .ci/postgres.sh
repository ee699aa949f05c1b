#!/usr/bin/env bash
# A local PostgreSQL for the `postgres`-marked tests. Idempotent: installs the server if it is
# missing, starts a cluster listening on 127.0.0.1 only, creates the role and database, and prints
# the SQLAlchemy URL on stdout (everything else goes to stderr):
#
#   export VZ_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
#
# Settings (environment): VZ_PG_PORT (5432), VZ_PG_USER (vz), VZ_PG_PASSWORD (vz), VZ_PG_DB (vz_test).
set -euo pipefail

PORT="${VZ_PG_PORT:-5432}"
ROLE="${VZ_PG_USER:-vz}"
PASSWORD="${VZ_PG_PASSWORD:-vz}"
DB="${VZ_PG_DB:-vz_test}"
CLUSTER=main

say() { echo "postgres.sh: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    say "installing PostgreSQL (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    say "creating cluster $VERSION/$CLUSTER"
    as_root pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" >&2
fi

# Loopback only, on the wanted port: a drop-in read after postgresql.conf (include_dir conf.d).
CONF_D="/etc/postgresql/$VERSION/$CLUSTER/conf.d"
WANT="$(printf "listen_addresses = '127.0.0.1'\nport = %s\n" "$PORT")"
if [ "$(cat "$CONF_D/vz-test.conf" 2>/dev/null)" != "$WANT" ]; then
    printf '%s\n' "$WANT" | as_root tee "$CONF_D/vz-test.conf" >/dev/null
    if pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
        say "restarting cluster $VERSION/$CLUSTER for the new listen address/port"
        as_root pg_ctlcluster "$VERSION" "$CLUSTER" restart >&2
    fi
fi

status="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
if [ "$status" != "online" ]; then
    say "starting cluster $VERSION/$CLUSTER on 127.0.0.1:$PORT"
    as_root pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$PORT" || { say "server did not come up on 127.0.0.1:$PORT"; exit 1; }

psql_admin() { as_postgres psql -v ON_ERROR_STOP=1 -q -p "$PORT" -d postgres "$@"; }
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
    say "creating role $ROLE"
    psql_admin -c "CREATE ROLE \"$ROLE\" LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    say "creating database $DB owned by $ROLE"
    psql_admin -c "CREATE DATABASE \"$DB\" OWNER \"$ROLE\"" >&2
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
