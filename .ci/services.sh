#!/usr/bin/env bash
# Install and start what the postgres, browser and stack tests need: a PostgreSQL server on
# loopback, Debian's Chromium and Caddy. Writes var/test-services.env for `make test`. Safe to run again.
# Without root and apt-get it installs nothing: those tests then skip with a reason.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
env_file=var/test-services.env
: > "$env_file"

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() {
  can_install || { echo "services: cannot install $* (need root and apt-get); those tests will skip"; return 1; }
  if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null && apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v chromium >/dev/null; then apt_install chromium fonts-dejavu-core || true; fi
if command -v chromium >/dev/null; then
  echo "VZ_CHROMIUM=$(command -v chromium)" >> "$env_file"
  echo "services: chromium $(chromium --version 2>/dev/null | awk '{print $2}')"
fi

# the proxy of the deployed stack (deploy/stack.sh); Debian's package, not started as a service
if ! command -v caddy >/dev/null; then apt_install caddy || true; fi
if command -v caddy >/dev/null; then echo "services: caddy $(caddy version | awk '{print $1}')"; fi

if url=$(bash .ci/postgres.sh); then
  echo "VZ_TEST_POSTGRES_URL=$url" >> "$env_file"
  echo "services: postgres at ${url%%@*}@…"
fi
exit 0
