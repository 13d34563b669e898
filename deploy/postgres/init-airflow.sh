#!/bin/sh
# Runs once, on the first start of an empty PostgreSQL volume (/docker-entrypoint-initdb.d): Airflow's own
# user and database beside the clvdrift store. The password comes from the environment (deploy/.env).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" <<'SQL'
CREATE USER airflow WITH PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
SQL
