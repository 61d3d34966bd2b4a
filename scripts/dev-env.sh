# Sourced by the Makefile: sets up the environment for `make run`, `make test`, `make token`.
#
# - Without DATABASE_URL, starts (or reuses) the private PostgreSQL of scripts/pg.sh and points
#   DATABASE_URL / HUIYIN_ADMIN_DATABASE_URL at it (with the roles' passwords: the cluster asks
#   for them), and PGPASSFILE at its pgpass file. With DATABASE_URL, uses that database.
# - Tests always need a superuser connection to create one database per test:
#   HUIYIN_TEST_DATABASE_URL, from the private cluster unless set.
# - Development secrets (HS256 JWT secret, personal-data KEK, checkpoint key pair) are generated
#   once into .dev/ (git-ignored) unless set in the environment. Production sets its own.
#   .dev/ is 0700 and every secret in it 0600 (existing files are tightened on every run).
_huiyin_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${DATABASE_URL:-}" ] || { [ "${1:-}" = test ] && [ -z "${HUIYIN_TEST_DATABASE_URL:-}" ]; }; then
  "$_huiyin_root/scripts/pg.sh" ensure || { echo "dev-env: the private PostgreSQL did not start (see above)" >&2; return 1; }
  _pg_env=$("$_huiyin_root/scripts/pg.sh" env)
  if [ -z "${DATABASE_URL:-}" ]; then
    eval "$(grep -E '^export (DATABASE_URL|HUIYIN_ADMIN_DATABASE_URL)=' <<<"$_pg_env")"
  fi
  if [ -z "${HUIYIN_TEST_DATABASE_URL:-}" ]; then
    eval "$(grep -E '^export HUIYIN_TEST_DATABASE_URL=' <<<"$_pg_env")"
  fi
  eval "$(grep -E '^export PGPASSFILE=' <<<"$_pg_env")"
  unset _pg_env
fi
# Secrets are written with umask 077 in a subshell (the caller's umask is left alone).
(umask 077 && mkdir -p "$_huiyin_root/.dev") && chmod 700 "$_huiyin_root/.dev"
if [ -z "${HUIYIN_JWT_SECRET:-}" ] && [ -z "${HUIYIN_JWT_PUBLIC_KEY:-}" ]; then
  [ -s "$_huiyin_root/.dev/jwt-secret" ] ||
    (umask 077 && head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$_huiyin_root/.dev/jwt-secret")
  chmod 600 "$_huiyin_root/.dev/jwt-secret"
  export HUIYIN_JWT_SECRET=$(cat "$_huiyin_root/.dev/jwt-secret")
fi
if [ -z "${HUIYIN_KEK:-}" ]; then
  [ -s "$_huiyin_root/.dev/kek" ] ||
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$_huiyin_root/.dev/kek")
  chmod 600 "$_huiyin_root/.dev/kek"
  export HUIYIN_KEK=$(cat "$_huiyin_root/.dev/kek")
fi
# A development key pair for signed checkpoints (needs openssl; without it checkpoints are off).
if [ -z "${HUIYIN_CHECKPOINT_PRIVATE_KEY:-}" ] && command -v openssl >/dev/null 2>&1; then
  if [ ! -s "$_huiyin_root/.dev/checkpoint-private.pem" ]; then
    (umask 077 &&
      openssl genpkey -algorithm ed25519 -out "$_huiyin_root/.dev/checkpoint-private.pem" 2>/dev/null &&
      openssl pkey -in "$_huiyin_root/.dev/checkpoint-private.pem" -pubout -out "$_huiyin_root/.dev/checkpoint-public.pem" 2>/dev/null)
  fi
  if [ -e "$_huiyin_root/.dev/checkpoint-private.pem" ]; then chmod 600 "$_huiyin_root/.dev/checkpoint-private.pem"; fi
  if [ -s "$_huiyin_root/.dev/checkpoint-public.pem" ]; then
    export HUIYIN_CHECKPOINT_PRIVATE_KEY="$_huiyin_root/.dev/checkpoint-private.pem"
    export HUIYIN_CHECKPOINT_PUBLIC_KEY="$_huiyin_root/.dev/checkpoint-public.pem"
  fi
fi
export DATABASE_URL HUIYIN_ADMIN_DATABASE_URL HUIYIN_TEST_DATABASE_URL
