#!/usr/bin/env bash
# The onepipe container image: one image, every binary, FROM scratch (no shell, no package
# manager, no compiler), run as uid 10001. deploy/Dockerfile uses this script in its builder
# stage; people and CI call it directly.
#
#   deploy/image.sh build [--prebuilt BIN_DIR] [--tag NAME:TAG]
#       Builds the image from deploy/Dockerfile with podman where it is installed, else with
#       docker; prints the image's size. By default the Dockerfile's builder stage compiles the
#       release binaries (a clean build takes about half an hour on 2 cores). --prebuilt takes
#       the binaries from BIN_DIR instead (CI passes its debug build, so that no second build
#       runs); only the runtime stage is built then, and no base image is pulled.
#       The tag defaults to onepipe:<the chart's appVersion>, which is what the Helm chart runs.
#   deploy/image.sh rootfs BIN_DIR OUT
#       Writes the image's root filesystem to OUT: the binaries (debug info stripped), exactly
#       the shared libraries they load (from ldd) and the dynamic loader, CA certificates,
#       /etc/passwd and /etc/group with the onepipe user, and /tmp. Fails if a binary is missing
#       or a library cannot be found, so a broken image is not built.
#   deploy/image.sh runtime
#       Prints the container runtime it would use (podman or docker), or fails with a message.
#
# podman here runs with runc and without systemd: when CONTAINERS_CONF is not set, a
# containers.conf for that is written under ~/.cache/onepipe and used.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BINARIES=(registry http-producer copycat copydog warehouse-loader verifier online-sink onepipe)
UID_GID=10001

die() { echo "image: $*" >&2; exit 1; }

rootfs() {
  local bin_dir=$1 out=$2
  [ -d "$bin_dir" ] || die "no binary folder $bin_dir"
  rm -rf "$out"
  mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp"
  chmod 1777 "$out/tmp"
  local libs=() bin lib
  for bin in "${BINARIES[@]}"; do
    [ -x "$bin_dir/$bin" ] || die "binary $bin_dir/$bin is missing (build with cargo build --bins)"
    # objcopy keeps the symbol table (readable backtraces) and drops the DWARF debug info.
    objcopy --strip-debug "$bin_dir/$bin" "$out/usr/local/bin/$bin"
    local deps
    deps=$(ldd "$bin_dir/$bin") || die "ldd failed on $bin_dir/$bin"
    if grep -q 'not found' <<<"$deps"; then
      die "$bin needs a library that is not installed: $(grep 'not found' <<<"$deps" | tr -s ' \t' ' ')"
    fi
    # "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)"
    while read -r lib; do libs+=("$lib"); done < <(grep -oE '/[^ ]+' <<<"$deps")
  done
  for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
    # The loader finds libraries by the real folder too (/lib is a link to /usr/lib on Debian).
    local real
    real=$(readlink -f "$lib")
    if [ "$real" != "$lib" ] && [ ! -e "$out$real" ]; then
      mkdir -p "$out$(dirname "$real")"
      cp -L "$lib" "$out$real"
    fi
  done
  local ca=/etc/ssl/certs/ca-certificates.crt
  [ -f "$ca" ] || die "$ca is missing (install the ca-certificates package)"
  cp "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nonepipe:x:%s:%s:onepipe:/nonexistent:/sbin/nologin\n' \
    "$UID_GID" "$UID_GID" >"$out/etc/passwd"
  printf 'root:x:0:\nonepipe:x:%s:\n' "$UID_GID" >"$out/etc/group"
  printf 'hosts: files dns\n' >"$out/etc/nsswitch.conf"
  echo "image: root filesystem in $out: ${#BINARIES[@]} binaries, $(printf '%s\n' "${libs[@]}" | sort -u | wc -l) shared libraries, $(du -sh "$out" | cut -f1)"
}

runtime() {
  if command -v podman >/dev/null 2>&1; then
    if [ -z "${CONTAINERS_CONF:-}" ]; then
      local conf=$HOME/.cache/onepipe/containers.conf
      if [ ! -f "$conf" ]; then
        mkdir -p "$(dirname "$conf")"
        printf '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$conf"
        command -v runc >/dev/null 2>&1 && printf 'runtime = "runc"\n' >>"$conf"
      fi
      export CONTAINERS_CONF=$conf
    fi
    echo podman
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  else
    die "no container runtime: install podman (apt-get install podman runc) or start docker"
  fi
}

chart_tag() {
  local version
  version=$(sed -nE 's/^appVersion: *"?([^"]+)"?$/\1/p' "$root/helm/onepipe/Chart.yaml")
  echo "onepipe:$version"
}

build() {
  local prebuilt= tag
  tag=$(chart_tag)
  while [ $# -gt 0 ]; do
    case $1 in
      --prebuilt) prebuilt=$2; shift 2 ;;
      --tag) tag=$2; shift 2 ;;
      -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
      *) die "unknown option $1 (see deploy/image.sh --help)" ;;
    esac
  done
  local rt
  rt=$(runtime)
  local start=$SECONDS
  if [ -n "$prebuilt" ]; then
    local ctx
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' RETURN
    rootfs "$prebuilt" "$ctx/rootfs"
    "$rt" build -q -f "$root/deploy/Dockerfile" --build-arg BINARIES=prebuilt --target runtime \
      -t "$tag" "$ctx" >/dev/null
    # Each build leaves the images of its stages, and untags the image it replaced, each a
    # copy of the binaries: pruned here (dangling images only: untagged and unused).
    "$rt" image prune -f >/dev/null
  else
    "$rt" build -f "$root/deploy/Dockerfile" -t "$tag" "$root"
  fi
  local size
  size=$("$rt" image inspect --format '{{.Size}}' "$tag")
  echo "image: built $tag with $rt in $((SECONDS - start)) s: $((size / 1048576)) MiB"
}

case ${1:-} in
  rootfs) shift; [ $# -eq 2 ] || die "usage: deploy/image.sh rootfs BIN_DIR OUT"; rootfs "$@" ;;
  build) shift; build "$@" ;;
  runtime) runtime ;;
  tag) chart_tag ;;
  *) sed -n '2,21p' "$0"; exit 2 ;;
esac
