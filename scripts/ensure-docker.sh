#!/usr/bin/env bash
# Makes sure a Docker engine answers `docker info`. As root on Debian, installs docker.io when absent and
# starts dockerd in the background; otherwise says plainly what to do. Exit 69 when no engine can be had.
set -uo pipefail
docker info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing Debian's docker.io…" >&2
    [ -f /tmp/.deqo-apt-updated ] || { apt-get update -qq && touch /tmp/.deqo-apt-updated; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null || { echo "error: apt-get install docker.io failed" >&2; exit 69; }
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "starting dockerd in the background (log: /var/log/deqo-dockerd.log)…" >&2
    nohup dockerd >/var/log/deqo-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
  echo "error: dockerd did not answer within 60 s; see /var/log/deqo-dockerd.log" >&2
  exit 69
fi
cat >&2 <<'MSG'
error: no Docker engine is reachable (`docker info` failed).
Deqo's agents run jobs in Docker containers. To fix:
  - Debian/Ubuntu:  sudo apt-get install docker.io && sudo systemctl start docker
  - or start an engine you have:  sudo dockerd &
  - and let your user use it:  sudo usermod -aG docker $USER   (then log in again)
MSG
exit 69
