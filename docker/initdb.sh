#!/bin/sh
# Run once by the postgres image on first start (sourced from /docker-entrypoint-initdb.d, as the
# postgres user): the schema owner (migrations) and the service's role (owns nothing; may only
# SELECT the log and call append_events()), with the random passwords docker/secrets.sh made.
# psql reads them from the files itself (`\set … `cat …``), so they never appear on a command line.
set -e
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\set owner_password `cat /run/huiyin-db/huiyin_owner`
\set app_password `cat /run/huiyin-db/huiyin_app`
CREATE ROLE huiyin_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE huiyin_app LOGIN PASSWORD :'app_password';
CREATE DATABASE huiyin OWNER huiyin_owner;
SQL
