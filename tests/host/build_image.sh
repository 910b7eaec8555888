#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds (once) the Debian 12 system image the host suite boots: mmdebstrap
# from Debian's archive (the host's own apt sources), with systemd, Debian's
# kernel, QEMU, libvirt and the exporter package's runtime libraries, turned
# into a raw ext4 disk without loop mounts (mke2fs -d). The kernel and initrd
# are copied out beside it for QEMU's -kernel/-initrd.
#
#   tests/host/build_image.sh [--path] [EXTRA_PACKAGE...]
#
# --path only prints the directory the image has (or would have), building nothing.
#
# Prints the image directory (disk.raw, vmlinuz-VERSION and initrd.img-VERSION
# of every kernel in it, packages.txt: `name version` of every installed
# package). Cached under
# $HOST_IMAGE_CACHE (default /var/cache/kvm-exit-exporter-tests) keyed by this
# script, the package list and the candidate versions `apt-cache policy` gives
# for them, so a second run reuses the image and a new package version (or a
# changed script) builds a new one. The image holds two kernels, Debian 12's
# 6.1 (linux-image-amd64) and 6.12 (linux-image-6.12-amd64): run_host.sh boots
# either, and a new machine builds one image, not two. Environment:
# HOST_KERNEL_PACKAGES (default: those two), HOST_IMAGE_CACHE.
# Needs root (mmdebstrap's root mode, mke2fs -d keeping owners) and installs
# mmdebstrap and e2fsprogs if missing. Takes 4-7 minutes when not cached.
set -euo pipefail
only_path=0
if [[ ${1:-} == --path ]]; then
  only_path=1
  shift
fi

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
readonly SCRIPT
cache=${HOST_IMAGE_CACHE:-/var/cache/kvm-exit-exporter-tests}
read -r -a kernel_packages <<<"${HOST_KERNEL_PACKAGES:-linux-image-amd64 linux-image-6.12-amd64}"
sources=/etc/apt/sources.list.d/debian.sources

log() { printf 'build_image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (mmdebstrap, mke2fs -d keep file owners)"
[[ -r $sources ]] || die "$sources not found: it is the mirror list the image is built from"

need=()
for tool in mmdebstrap:mmdebstrap mke2fs:e2fsprogs; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# What a user of the package has on a KVM host, and no more: systemd as PID 1,
# the kernel, QEMU and libvirt, curl and kmod for the checks. The runtime
# libraries of the exporter come as EXTRA_PACKAGEs (the .deb's Depends, read
# by run_host.sh) so that `apt install ./kvm-exit-exporter_*.deb` resolves
# without a network; the list below holds the Depends of today's package so
# that the usual key needs no second image.
packages=(
  systemd systemd-sysv dbus "${kernel_packages[@]}" initramfs-tools
  qemu-system-x86 seabios libvirt-daemon-system libvirt-clients
  curl kmod util-linux procps mawk
  libbpf1 libc6 libcap2 libcrypt1 libelf1 libgcc-s1 libgnutls30 libmicrohttpd12
  libprometheus-cpp-core1.0 libre2-9 libstdc++6 libyaml-cpp0.7 zlib1g
  "$@"
)
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

# The key: this script, the package list and what apt would install today.
key=$({
  # The scripts without comments and blank lines: what they do, not how it is explained.
  sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$SCRIPT" "$(dirname "$SCRIPT")/image_customize.sh" | sha256sum | cut -d' ' -f1
  printf '%s\n' "${packages[@]}"
  apt-cache policy "${packages[@]}" 2>/dev/null | awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }'
} | sha256sum | cut -c1-16)
dir=$cache/debian12-$key
if ((only_path)); then
  printf '%s\n' "$dir"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 1800 9 || die "could not lock $cache/.lock within 30 minutes"
# Images not used for 30 days (another key: older packages or scripts) go.
find "$cache" -mindepth 1 -maxdepth 1 -name 'debian12-*' ! -path "$dir" -mtime +30 -exec rm -rf {} + || true
if [[ -s $dir/disk.raw && -s $dir/packages.txt ]] && compgen -G "$dir/vmlinuz-*" >/dev/null; then
  touch "$dir"  # used: kept by the pruning above
  log "cached image $dir"
  printf '%s\n' "$dir"
  exit 0
fi

started=$SECONDS
work=$(mktemp -d "$cache/build.XXXXXX")
# An interrupted mmdebstrap can leave its chroot's mounts (proc, sys, dev):
# unmount them before removing anything, and never cross a mount point.
cleanup() {
  local mount_point
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mount_point; do umount -l "$mount_point" || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
root=$work/root
log "mmdebstrap bookworm (${#packages[@]} packages asked for) into $root; log $work/mmdebstrap.log"
include=$(IFS=,; echo "${packages[*]}")
# The customize hook runs on the finished tree ($1): the control service the
# suite drives the guest with, a static address for QEMU's user network (only
# the hostfwd port forward reaches it), and no timers that would run apt.
if ! mmdebstrap --variant=apt --mode=root \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --include="$include" \
  --customize-hook="$(dirname "$SCRIPT")/image_customize.sh \"\$1\"" \
  bookworm "$root" "$sources" >"$work/mmdebstrap.log" 2>&1; then
  tail -n 40 "$work/mmdebstrap.log" >&2
  die "mmdebstrap failed"
fi
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package} ${Version}\n' >"$work/packages.txt"
kernels=()
for kernel in "$root"/boot/vmlinuz-*; do
  [[ -e $kernel ]] || die "no kernel in $root/boot"
  version=${kernel##*/vmlinuz-}
  [[ -s $root/boot/initrd.img-$version ]] || die "no initrd for $version in $root/boot"
  cp "$kernel" "$work/vmlinuz-$version"
  cp "$root/boot/initrd.img-$version" "$work/initrd.img-$version"
  kernels+=("$version")
done
# 1.5 GiB free for the package, logs and the journal.
size_mb=$(($(du -sm "$root" | cut -f1) + 1536))
log "mke2fs -d: ${size_mb} MiB ext4"
truncate -s "${size_mb}M" "$work/disk.raw"
mke2fs -q -F -t ext4 -L host-test -d "$root" "$work/disk.raw" >"$work/mke2fs.log" 2>&1 \
  || { cat "$work/mke2fs.log" >&2; die "mke2fs -d failed"; }
rm -rf "$root"
mkdir -p "$dir"
mv "$work/disk.raw" "$work"/vmlinuz-* "$work"/initrd.img-* "$work/packages.txt" "$work/mmdebstrap.log" "$dir/"
log "built $dir in $((SECONDS - started)) s (kernels ${kernels[*]})"
printf '%s\n' "$dir"
