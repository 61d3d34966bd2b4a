#!/bin/sh
# Run by docker-compose.yml's `secrets` service before anything else: generates, once, the
# deployment's random secrets into two volumes, each readable only by the container that needs
# it. Existing secrets are never replaced (the KEK opens every sealed complainant: losing it
# loses them), only their modes tightened.
#
#   /run/secrets-db   (the db container, the postgres image's uid 999): the passwords of the
#                     roles postgres, huiyin_owner and huiyin_app
#   /run/secrets-app  (the huiyin container, uid 10001 of the Dockerfile): kek, jwt-secret,
#                     the checkpoint signing pair (Ed25519 PEM, by `huiyin keygen`) and the two
#                     database URLs, with their passwords
#
# It runs in the huiyin image (for `huiyin keygen`), as root.
set -eu
umask 077
db=${SECRETS_DB_DIR:-/run/secrets-db}
app=${SECRETS_APP_DIR:-/run/secrets-app}
DB_UID=${DB_UID:-999}
APP_UID=${APP_UID:-10001}

# $1: file, $2: random bytes; written as hex, once.
gen() {
  if [ ! -s "$1" ]; then
    head -c "$2" /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1.tmp"
    mv "$1.tmp" "$1"
  fi
}

mkdir -p "$db" "$app"
for role in postgres huiyin_owner huiyin_app; do gen "$db/$role" 24; done
gen "$app/kek" 32
gen "$app/jwt-secret" 48
if [ ! -s "$app/checkpoint-private.pem" ]; then
  huiyin keygen --private "$app/checkpoint-private.pem" --public "$app/checkpoint-public.pem"
fi
printf 'postgres://huiyin_app:%s@db:5432/huiyin' "$(cat "$db/huiyin_app")" >"$app/database-url"
printf 'postgres://huiyin_owner:%s@db:5432/huiyin' "$(cat "$db/huiyin_owner")" >"$app/admin-database-url"

chown -R "$DB_UID:$DB_UID" "$db"
chown -R "$APP_UID:$APP_UID" "$app"
chmod 700 "$db" "$app"
find "$db" "$app" -type f -exec chmod 600 {} +
echo "secrets: ready (generated where missing)"
