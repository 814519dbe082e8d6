#!/usr/bin/env bash
# Makes sure Debian's chromium is installed at /usr/bin/chromium for the dashboard e2e (playwright-core drives it;
# no browser is ever downloaded by npm).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium (Debian package) for the dashboard e2e..." >&2
  [ -f /tmp/.deqo-apt-updated ] || { apt-get update -qq && touch /tmp/.deqo-apt-updated; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "error: /usr/bin/chromium is missing; install Debian package chromium" >&2; exit 1
fi
