#!/usr/bin/env bash
# Builds (once) the Debian 12 system image the host suite boots: mmdebstrap
# from Debian's archive (the host's own apt sources), with systemd, Debian's
# kernel, QEMU, libvirt and the exporter package's runtime libraries, turned
# into a raw ext4 disk without loop mounts (mke2fs -d). The kernel and initrd
# are copied out beside it for QEMU's -kernel/-initrd.
#
#   tests/host/build_image.sh [EXTRA_PACKAGE...]
#
# Prints the image directory (disk.raw, vmlinuz, initrd.img, packages.txt:
# `name version` of every installed package). Cached under
# $HOST_IMAGE_CACHE (default /var/cache/kvm-exit-exporter-tests) keyed by this
# script, the package list and the candidate versions `apt-cache policy` gives
# for them, so a second run reuses the image and a new package version (or a
# changed script) builds a new one. Environment: HOST_KERNEL_PACKAGE (default
# linux-image-amd64, Debian 12's 6.1), HOST_IMAGE_CACHE.
# Needs root (mmdebstrap's root mode, mke2fs -d keeping owners) and installs
# mmdebstrap and e2fsprogs if missing. Takes 4-7 minutes when not cached.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
readonly SCRIPT
cache=${HOST_IMAGE_CACHE:-/var/cache/kvm-exit-exporter-tests}
kernel_package=${HOST_KERNEL_PACKAGE:-linux-image-amd64}
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
  systemd systemd-sysv dbus "$kernel_package" initramfs-tools
  qemu-system-x86 seabios libvirt-daemon-system libvirt-clients
  curl kmod util-linux procps mawk
  libbpf1 libc6 libcap2 libcrypt1 libelf1 libgcc-s1 libgnutls30 libmicrohttpd12
  libprometheus-cpp-core1.0 libre2-9 libstdc++6 libyaml-cpp0.7 zlib1g
  "$@"
)
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

# The key: this script, the package list and what apt would install today.
key=$({
  sha256sum "$SCRIPT" "$(dirname "$SCRIPT")/image_customize.sh" | cut -d' ' -f1
  printf '%s\n' "${packages[@]}"
  apt-cache policy "${packages[@]}" 2>/dev/null | awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }'
} | sha256sum | cut -c1-16)
dir=$cache/debian12-$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 1800 9 || die "could not lock $cache/.lock within 30 minutes"
if [[ -s $dir/disk.raw && -s $dir/vmlinuz && -s $dir/initrd.img && -s $dir/packages.txt ]]; then
  log "cached image $dir"
  printf '%s\n' "$dir"
  exit 0
fi

started=$SECONDS
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
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
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
[[ -n $kernel ]] || die "no kernel in $root/boot"
initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
[[ -s $initrd ]] || die "no initrd $initrd"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
# 1.5 GiB free for the package, logs and the journal.
size_mb=$(($(du -sm "$root" | cut -f1) + 1536))
log "mke2fs -d: ${size_mb} MiB ext4"
truncate -s "${size_mb}M" "$work/disk.raw"
mke2fs -q -F -t ext4 -L host-test -d "$root" "$work/disk.raw" >"$work/mke2fs.log" 2>&1 \
  || { cat "$work/mke2fs.log" >&2; die "mke2fs -d failed"; }
rm -rf "$root"
mkdir -p "$dir"
mv "$work/disk.raw" "$work/vmlinuz" "$work/initrd.img" "$work/packages.txt" "$work/mmdebstrap.log" "$dir/"
log "built $dir in $((SECONDS - started)) s (kernel ${kernel##*/vmlinuz-})"
printf '%s\n' "$dir"
