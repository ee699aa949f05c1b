#!/bin/sh
# The MLflow backend store beside the warehouse (the postgres image runs this once, on first start).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"$VZ_MLFLOW_DB_NAME\" OWNER \"$POSTGRES_USER\""
