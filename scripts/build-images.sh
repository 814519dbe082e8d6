#!/usr/bin/env bash
# Builds the local images Deqo's demo and tests run in, reusing any already present.
#   deqo/busybox:test  — busybox from Debian's busybox-static (tests: fast, tiny)
#   deqo/python-sklearn:bookworm — python3 + scikit-learn (the demo sweep)
# Where base images can be pulled, the Dockerfiles in images/ build the same images;
# where they cannot (no registry), the rootfs comes from Debian packages and `docker import`.
# Usage: scripts/build-images.sh [busybox|sklearn|all]   (default all)
set -euo pipefail
what=${1:-all}
need_root_pkg() { # $1 = command, $2 = Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $2 (for $1)..." >&2
    [ -f /tmp/.deqo-apt-updated ] || { apt-get update -qq && touch /tmp/.deqo-apt-updated; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "error: $1 is missing; install Debian package $2" >&2; exit 1
  fi
}
have() { docker image inspect "$1" >/dev/null 2>&1; }
try_dockerfile() { # $1 = tag, $2 = dir: build from a Dockerfile when a base image can be pulled
  timeout 60 docker build -q -t "$1" "$2" >/dev/null 2>&1
}

build_busybox() {
  local tag=deqo/busybox:test
  have "$tag" && { echo "$tag present"; return; }
  need_root_pkg busybox busybox-static
  local dir; dir=$(mktemp -d)
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc" "$dir/outputs" "$dir/inputs"
  chmod 1777 "$dir/tmp"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  for app in $("$dir/bin/busybox" --list); do [ "$app" = busybox ] || ln -s busybox "$dir/bin/$app"; done
  echo 'nobody:x:65534:65534:nobody:/tmp:/bin/sh' > "$dir/etc/passwd"
  echo 'nogroup:x:65534:' > "$dir/etc/group"
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/bin' - "$tag" >/dev/null
  rm -rf "$dir"; echo "$tag built"
}

build_sklearn() {
  local tag=deqo/python-sklearn:bookworm
  have "$tag" && { echo "$tag present"; return; }
  if try_dockerfile "$tag" "$(dirname "$0")/../images/python-sklearn"; then echo "$tag built (Dockerfile)"; return; fi
  need_root_pkg debootstrap debootstrap
  local dir; dir=$(mktemp -d)
  echo "building $tag with debootstrap (about a minute)..." >&2
  debootstrap --variant=minbase --include=python3-sklearn bookworm "$dir" >/tmp/deqo-debootstrap.log 2>&1 \
    || { echo "debootstrap failed; see /tmp/deqo-debootstrap.log" >&2; exit 1; }
  rm -rf "$dir/var/cache/apt/archives"/*.deb "$dir/var/lib/apt/lists"/*
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'ENV PYTHONDONTWRITEBYTECODE=1' - "$tag" >/dev/null
  rm -rf "$dir"; echo "$tag built"
}

command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "error: no Docker engine reachable (docker info failed)" >&2; exit 1; }
case "$what" in
  busybox) build_busybox ;;
  sklearn) build_sklearn ;;
  all) build_busybox; build_sklearn ;;
  *) echo "usage: $0 [busybox|sklearn|all]" >&2; exit 2 ;;
esac
