#!/bin/sh
# The huiyin container's entrypoint under docker-compose.yml: reads the secrets docker/secrets.sh
# generated (files 0600 owned by this container's user, in a volume no other container but the
# generator mounts) into the environment, then runs `huiyin` with the given arguments:
#   docker compose run --rm huiyin token --sub wang --role clerk
set -eu
s=${HUIYIN_SECRETS_DIR:-/run/huiyin}
HUIYIN_KEK=$(cat "$s/kek")
HUIYIN_JWT_SECRET=$(cat "$s/jwt-secret")
DATABASE_URL=$(cat "$s/database-url")
HUIYIN_ADMIN_DATABASE_URL=$(cat "$s/admin-database-url")
export HUIYIN_KEK HUIYIN_JWT_SECRET DATABASE_URL HUIYIN_ADMIN_DATABASE_URL
# Signed checkpoints: the Ed25519 pair docker/secrets.sh generated (`huiyin keygen`).
HUIYIN_CHECKPOINT_PRIVATE_KEY=$s/checkpoint-private.pem
HUIYIN_CHECKPOINT_PUBLIC_KEY=$s/checkpoint-public.pem
export HUIYIN_CHECKPOINT_PRIVATE_KEY HUIYIN_CHECKPOINT_PUBLIC_KEY
exec huiyin "$@"
