#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the guest of a nested end-to-end suite: Debian's amd64 kernel (the
# one linux-image-amd64 depends on) and an initramfs holding busybox, the test
# VMMs, the exporter with its shared libraries, perf, setpriv, the vendor's
# kvm modules and the guest scripts: /init is lib/init.sh, /e2e/ holds
# lib/'s guest scripts and the vendor's vendor.sh and checks.sh, side by side
# (so the scripts source /e2e/NAME.sh whatever their folder here).
# E2E_VENDOR=arm64 builds the arm64 guest instead (see the table below):
# Debian's arm64 kernel, busybox from busybox-static:arm64, arm64_vmm.c
# cross-compiled as /bin/test_vmm, the exporter's aarch64 libraries; no perf,
# setpriv or vcpu_time_vmm (host binaries, x86 guest code).
#
# usage: build_image.sh OUT_DIR VMM_BINARY [EXPORTER_BINARY]
#   OUT_DIR          build folder for the suite (default: $E2E_OUT_DIR);
#                    the kernel .deb is cached in OUT_DIR/cache
#   VMM_BINARY       static test VMM (tests/e2e/test_vmm.c); empty: built here
#   EXPORTER_BINARY  kvm_exit_exporter; empty or absent: the guest skips the
#                    exporter checks
# Environment: E2E_VENDOR (svm, the default, vmx or arm64: the folder whose
# vendor.sh, checks.sh and modules go in), E2E_CHECKS (a script installed as
# /e2e/checks.sh instead of the vendor's: bench/exit_cost), E2E_KERNEL (the
# kernel line, see kernel_package_from_apt; amd64 only), VCPU_TIME_VMM, NEXT_LAYOUT_EXPORTER
# (the kvmexit_exporter_next_layout build, copied with an exporter as
# /bin/kvm_exit_exporter_next_layout; unset: the restart checks skip the upgrade).
# Writes OUT_DIR/image/vmlinuz and OUT_DIR/image/initramfs.cpio.gz. Installs
# the Debian packages it needs. Cached steps are skipped, so a second run with
# unchanged inputs takes about a second.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly VENDOR=${E2E_VENDOR:-svm}
# What differs with the guest's architecture, the one table of it:
#   DEB_ARCH             the Debian architecture of the kernel (and busybox)
#   KERNEL_META_PACKAGE  the package whose linux-image-N dependency is booted
#   HOST_PACKAGES        what this script and the suite's boot.sh need here
#   BUSYBOX_DEB          a busybox .deb to download and take bin/busybox from
#                        (empty: the host's busybox-static, same architecture)
#   VMM_CC VMM_SOURCE    how an empty VMM_BINARY is built (static)
#   HOST_TOOLS           1: the guest runs this host's architecture, so perf,
#                        setpriv and vcpu_time_vmm (x86 guest code) go in and
#                        ldd finds the exporter's libraries
#   SETPRIV_DEBS         the packages whose util-linux setpriv (and its
#                        library) go in for the least-privilege phases;
#                        empty: this host's setpriv
#   STRIP                the binutils strip for the guest's architecture
if [[ $VENDOR == arm64 ]]; then
  readonly DEB_ARCH=arm64 KERNEL_META_PACKAGE=linux-image-arm64:arm64 \
    HOST_PACKAGES="qemu-system-arm gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu cpio gzip" \
    BUSYBOX_DEB=busybox-static:arm64 VMM_CC=aarch64-linux-gnu-gcc VMM_SOURCE=arm64_vmm.c HOST_TOOLS=0 \
    SETPRIV_DEBS="util-linux:arm64 libcap-ng0:arm64" STRIP=aarch64-linux-gnu-strip
else
  readonly DEB_ARCH=amd64 KERNEL_META_PACKAGE=linux-image-amd64 \
    HOST_PACKAGES="qemu-system-x86 busybox-static cpio gzip xz-utils linux-perf binutils" \
    BUSYBOX_DEB='' VMM_CC=cc VMM_SOURCE=test_vmm.c HOST_TOOLS=1 SETPRIV_DEBS='' STRIP=strip
fi
# Where a foreign (HOST_TOOLS=0) exporter's NEEDED libraries are looked for:
# multiarch packages (libelf1:arm64, ...), then the cross toolchain's.
readonly FOREIGN_LIB_DIRS="/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib"
readonly FOREIGN_READELF=aarch64-linux-gnu-readelf
# shellcheck source-path=SCRIPTDIR source=lib/host.sh
. "$SCRIPT_DIR/lib/host.sh"
log() { printf 'build_image: %s\n' "$*" >&2; }
die() { printf 'build_image: error: %s\n' "$*" >&2; exit 1; }

[[ -f $SCRIPT_DIR/$VENDOR/modules ]] || die "E2E_VENDOR=$VENDOR: no $SCRIPT_DIR/$VENDOR/modules"
# The vendor's modules in insmod order (paths in the kernel tree; the guest
# has no modules.dep).
mapfile -t MODULES < <(grep -v -E '^(#|$)' "$SCRIPT_DIR/$VENDOR/modules")
readonly MODULES

usage() {
  echo "usage: build_image.sh OUT_DIR VMM_BINARY|'' [EXPORTER_BINARY]" >&2
  exit 2
}

# --- Kernel --------------------------------------------------------------------

# Prints the package KERNEL_META_PACKAGE depends on, e.g. linux-image-6.1.0-56-amd64
# (linux-image-6.1.0-57-arm64:arm64 for arm64). E2E_KERNEL (amd64) picks the kernel line: empty, the one linux-image-amd64 depends
# on (6.1 on Debian 12); e.g. 6.12, the newest linux-image-6.12.N+deb12-amd64
# (bookworm-security; the -unsigned build of the same kernel if that is all
# apt knows). Its modules are .ko.xz: extract_kernel stores them plain.
kernel_package_from_apt() {
  if [[ -z ${E2E_KERNEL:-} ]]; then
    apt-cache depends "$KERNEL_META_PACKAGE" 2>/dev/null \
      | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
    return
  fi
  local line=${E2E_KERNEL//./\\.}
  apt-cache search --names-only "^linux-image-$line\.[0-9]+\+deb[0-9]+-amd64(-unsigned)?\$" 2>/dev/null \
    | awk '{ print $1 }' | sort -V \
    | awk '{ base = $1; sub(/-unsigned$/, "", base); if (base != last) { n++; last = base } pick[n] = (pick[n] == "" || $1 !~ /-unsigned$/) ? $1 : pick[n] } END { if (n) print pick[n] }'
}

resolve_kernel_package() {
  local cache=$1 pkg
  pkg=$(kernel_package_from_apt)
  if [[ -z $pkg && -s $cache/kernel-package ]]; then
    pkg=$(<"$cache/kernel-package") # no apt lists here: keep what was cached
  fi
  if [[ -z $pkg ]]; then
    apt_update_once
    pkg=$(kernel_package_from_apt)
  fi
  [[ -n $pkg ]] || die "cannot tell which kernel to boot (E2E_KERNEL='${E2E_KERNEL:-}': apt-cache depends $KERNEL_META_PACKAGE, or search linux-image-$E2E_KERNEL.*)"
  printf '%s\n' "$pkg" >"$cache/kernel-package"
  printf '%s\n' "$pkg"
}

# Prints the path of the cached .deb of package $2 (NAME or NAME:ARCH),
# downloading it if needed.
fetch_deb() {
  local cache=$1 pkg=$2 deb
  deb=$(find "$cache" -maxdepth 1 -name "${pkg%%:*}_*_$DEB_ARCH.deb" -print -quit)
  if [[ -z $deb ]]; then
    log "downloading $pkg"
    if ! (cd "$cache" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2); then
      apt_update_once # the lists named a version the archive no longer has
      (cd "$cache" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2) \
        || die "apt-get download $pkg failed"
    fi
    deb=$(find "$cache" -maxdepth 1 -name "${pkg%%:*}_*_$DEB_ARCH.deb" -print -quit)
    [[ -n $deb ]] || die "apt-get download $pkg left no ${pkg%%:*}_*_$DEB_ARCH.deb in $cache"
  fi
  printf '%s\n' "$deb"
}

# Extracts vmlinuz and the modules of $MODULES from the .deb into $2, once.
extract_kernel() {
  local deb=$1 dir=$2 stamp patterns=() m f
  stamp="$dir/.extracted-from"
  if [[ -s $stamp && $(<"$stamp") == "$(basename "$deb") ${MODULES[*]}" ]]; then
    return 0
  fi
  log "extracting kernel and modules from $(basename "$deb")"
  rm -rf "$dir"
  mkdir -p "$dir/tree" "$dir/modules"
  patterns=('./boot/vmlinuz-*')
  for m in "${MODULES[@]}"; do
    patterns+=("./lib/modules/*/kernel/$m.ko*")
  done
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir/tree" --wildcards "${patterns[@]}" \
    || die "extracting ${patterns[*]} from $deb failed"

  f=$(find "$dir/tree/boot" -name 'vmlinuz-*' -print -quit)
  [[ -n $f ]] || die "no boot/vmlinuz-* in $deb"
  cp "$f" "$dir/vmlinuz"
  for m in "${MODULES[@]}"; do
    f=$(find "$dir/tree/lib/modules" -path "*/kernel/$m.ko*" -print -quit)
    [[ -n $f ]] || die "no module $m.ko* in $deb"
    # busybox insmod may not decompress: store every module plain.
    case $f in
      *.ko) cp "$f" "$dir/modules/" ;;
      *.ko.xz) xz -dc "$f" >"$dir/modules/$(basename "$f" .xz)" ;;
      *.ko.zst) zstd -qdc "$f" >"$dir/modules/$(basename "$f" .zst)" ;;
      *.ko.gz) gzip -dc "$f" >"$dir/modules/$(basename "$f" .gz)" ;;
      *) die "module $f: unknown compression" ;;
    esac
  done
  rm -rf "$dir/tree"
  printf '%s %s\n' "$(basename "$deb")" "${MODULES[*]}" >"$stamp"
}

# debs_tree CACHE NAME PKG...: the files of packages PKG... (of DEB_ARCH),
# extracted once into CACHE/NAME-DEB_ARCH/tree; prints that tree's path.
debs_tree() {
  local cache=$1 name=$2 pkg deb debs=() dir from
  shift 2
  for pkg in "$@"; do
    debs+=("$(fetch_deb "$cache" "$pkg")")
  done
  dir="$cache/$name-$DEB_ARCH"
  from=$(basename -a "${debs[@]}" | tr '\n' ' ')
  if [[ ! -d $dir/tree || ! -s $dir/.extracted-from || $(<"$dir/.extracted-from") != "$from" ]]; then
    log "extracting $from"
    rm -rf "$dir"
    mkdir -p "$dir/tree"
    for deb in "${debs[@]}"; do
      dpkg-deb -x "$deb" "$dir/tree" || die "extracting $deb failed"
    done
    printf '%s\n' "$from" >"$dir/.extracted-from"
  fi
  printf '%s\n' "$dir/tree"
}

# Adds the dpkg architecture DEB_ARCH when it is neither this host's nor a
# foreign one yet (apt-get download of NAME:arm64 needs its lists).
ensure_deb_arch() {
  [[ $DEB_ARCH != "$(dpkg --print-architecture)" ]] || return 0
  dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH" && return 0
  log "dpkg --add-architecture $DEB_ARCH"
  dpkg --add-architecture "$DEB_ARCH" || die "dpkg --add-architecture $DEB_ARCH failed"
  APT_UPDATED=0
  apt_update_once
}

# --- Initramfs -----------------------------------------------------------------

# Every file of the initramfs: SRCS[i] is copied to DESTS[i] inside the image.
SRCS=()
DESTS=()
add_file() { SRCS+=("$1"); DESTS+=("$2"); }
has_dest() {
  local d
  for d in "${DESTS[@]}"; do [[ $d != "$1" ]] || return 0; done
  return 1
}

# The exporter and every shared library ldd finds for it, dynamic loader
# included (a foreign one: foreign_libraries').
add_dynamic_binary() {
  local bin=$1 dest=$2 lib
  add_file "$bin" "$dest"
  if [[ $HOST_TOOLS == 0 ]]; then
    add_foreign_libraries "$bin"
    return
  fi
  ldd "$bin" >/dev/null 2>&1 || die "ldd $bin failed (not a dynamic executable?)"
  if ldd "$bin" | grep -q 'not found'; then
    die "ldd $bin: missing libraries: $(ldd "$bin" | grep 'not found' | tr -s ' \t' ' ')"
  fi
  while read -r lib; do
    has_dest "$lib" || add_file "$(readlink -f "$lib")" "$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}

# ldd cannot run a foreign binary: its program interpreter (PT_INTERP) and
# its NEEDED libraries, recursively, found in FOREIGN_LIB_DIRS, go in at
# the interpreter's path and /lib/aarch64-linux-gnu/NAME (the loader's
# default search path).
add_foreign_libraries() {
  local bin=$1 interp queue=() seen=" " name dir path
  interp=$("$FOREIGN_READELF" -l "$bin" | awk '/Requesting program interpreter:/ { sub(/\]$/, "", $NF); print $NF }')
  [[ -n $interp ]] || die "$FOREIGN_READELF -l $bin: no program interpreter (not a dynamic executable?)"
  path=
  for dir in "${interp%/*}" $FOREIGN_LIB_DIRS; do
    [[ -e $dir/${interp##*/} ]] && { path=$dir/${interp##*/}; break; }
  done
  [[ -n $path ]] || die "$bin: its interpreter $interp is in none of ${interp%/*} $FOREIGN_LIB_DIRS"
  has_dest "$interp" || add_file "$(readlink -f "$path")" "$interp"
  mapfile -t queue < <("$FOREIGN_READELF" -d "$bin" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }')
  local lib_dirs="$FOREIGN_LIB_DIRS ${EXTRA_FOREIGN_LIB_DIRS:-}"
  while ((${#queue[@]} > 0)); do
    name=${queue[0]}
    queue=("${queue[@]:1}")
    [[ $seen != *" $name "* ]] || continue
    seen+="$name "
    [[ $name != "${interp##*/}" ]] || continue # the loader, already in
    path=
    for dir in $lib_dirs; do
      [[ -e $dir/$name ]] && { path=$dir/$name; break; }
    done
    [[ -n $path ]] || die "$bin needs $name, which is in none of $lib_dirs"
    has_dest "/lib/aarch64-linux-gnu/$name" || add_file "$(readlink -f "$path")" "/lib/aarch64-linux-gnu/$name"
    mapfile -t -O "${#queue[@]}" queue < <("$FOREIGN_READELF" -d "$path" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }')
  done
}

collect_files() {
  local kdir=$1 vmm=$2 exporter=$3 m name f
  add_file "$BUSYBOX" /bin/busybox
  add_file "$vmm" /bin/test_vmm
  # collector.vcpu_time's vCPUs that spin or halt (lib/vcpu_time_checks.sh).
  [[ $HOST_TOOLS == 0 ]] || add_file "$VCPU_TIME_VMM" /bin/vcpu_time_vmm
  if [[ -n $exporter ]]; then
    add_dynamic_binary "$exporter" /bin/kvm_exit_exporter
    # The build with the next pinned-state layout: the restart checks'
    # upgrade (lib/restart_checks.sh; they skip it without this).
    if [[ -n ${NEXT_LAYOUT_EXPORTER:-} ]]; then
      add_dynamic_binary "$NEXT_LAYOUT_EXPORTER" /bin/kvm_exit_exporter_next_layout
    fi
  fi
  if [[ $HOST_TOOLS == 1 ]]; then
    # perf kvm stat, the independent tool the handling-time checks compare with.
    add_dynamic_binary "$(command -v perf)" /bin/perf
  fi
  # util-linux setpriv: the least-privilege phases run the exporter as the
  # systemd unit does (a non-root uid with ambient capabilities). Busybox's
  # setpriv cannot change the uid.
  if [[ -z $SETPRIV_DEBS ]]; then
    add_dynamic_binary "$(command -v setpriv)" /usr/bin/setpriv
  else
    EXTRA_FOREIGN_LIB_DIRS="$SETPRIV_TREE/lib/aarch64-linux-gnu $SETPRIV_TREE/usr/lib/aarch64-linux-gnu"
    add_dynamic_binary "$SETPRIV_TREE/usr/bin/setpriv" /usr/bin/setpriv
  fi
  add_file "$SCRIPT_DIR/lib/init.sh" /init
  for f in "$SCRIPT_DIR"/lib/*.sh; do
    case ${f##*/} in host.sh | init.sh) continue ;; esac # the host side's; /init
    add_file "$f" "/e2e/${f##*/}"
  done
  # The vendor's two guest scripts (its boot.sh is the host side's).
  for f in vendor.sh checks.sh; do
    [[ ! -e $SCRIPT_DIR/lib/$f ]] || die "lib/$f would collide with $VENDOR/$f in /e2e/"
  done
  add_file "$SCRIPT_DIR/$VENDOR/vendor.sh" /e2e/vendor.sh
  # The drill-down kinds' rows: the drill-down phases read each kind's family and labels there.
  add_file "$SCRIPT_DIR/../../bpf/drilldown_kinds.def" /e2e/drilldown_kinds.def
  add_file "${E2E_CHECKS:-$SCRIPT_DIR/$VENDOR/checks.sh}" /e2e/checks.sh
  for m in "${MODULES[@]}"; do
    name=$(basename "$m").ko
    add_file "$kdir/modules/$name" "/lib/modules/e2e/$name"
  done
}

# A fingerprint of everything that goes into the image, to skip unchanged rebuilds.
fingerprint() {
  local i
  for i in "${!SRCS[@]}"; do
    printf '%s %s\n' "${DESTS[i]}" "$(sha256sum <"${SRCS[i]}" | cut -d' ' -f1)"
  done
  printf 'modules %s\n' "${MODULES[*]}"
  sha256sum <"${BASH_SOURCE[0]}"
}

# strip_debug_info FILE: an ELF file loses its DWARF, as the package's binary
# does (CPACK_STRIP_FILES strips it whole; the symbols stay here, for a
# backtrace). A RelWithDebInfo exporter is 27.9 MB, 1.7 MB without: the two
# in the image were half of it, and the kernel's unpacking of them took the
# Bochs guest 21 s of its 79 s boot, 22 s of wall time (2026-12-07).
strip_debug_info() {
  [[ $(head -c 4 "$1" | od -An -c | tr -d ' ') == '177ELF' ]] || return 0
  "$STRIP" --strip-debug "$1" || die "$STRIP --strip-debug $1 failed"
}

build_initramfs() {
  local image=$1 root i m order
  root="$image/rootfs"
  rm -rf "$root"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,e2e,lib/modules/e2e}
  for i in "${!SRCS[@]}"; do
    mkdir -p "$root$(dirname "${DESTS[i]}")"
    cp -L "${SRCS[i]}" "$root${DESTS[i]}"
    strip_debug_info "$root${DESTS[i]}"
  done
  chmod 0755 "$root/init" "$root"/e2e/*.sh "$root/bin/test_vmm" "$root/bin/busybox"
  order=()
  for m in "${MODULES[@]}"; do order+=("$(basename "$m").ko"); done
  if ((${#order[@]} > 0)); then
    printf '%s\n' "${order[@]}" >"$root/lib/modules/e2e/order"
  else
    : >"$root/lib/modules/e2e/order" # no modules (arm64: KVM is built in)
  fi
  printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) \
    | gzip -1 >"$image/initramfs.cpio.gz.tmp"
  mv "$image/initramfs.cpio.gz.tmp" "$image/initramfs.cpio.gz"
  rm -rf "$root"
}

build_vmm() {
  local out=$1
  log "building the test VMM with $VMM_CC (no VMM binary given)"
  "$VMM_CC" -O2 -Wall -Wextra -static -pthread -o "$out" "$SCRIPT_DIR/$VMM_SOURCE" \
    || die "compiling $VMM_SOURCE failed"
}

main() {
  [[ $# -ge 1 && $# -le 3 ]] || usage
  local out=${1:-${E2E_OUT_DIR:-}} vmm=${2:-} exporter=${3:-} cache image kdir pkg deb fp
  [[ -n $out ]] || usage
  [[ -z $exporter || -x $exporter ]] || die "exporter binary '$exporter' is not an executable file"
  [[ -z $vmm || -x $vmm ]] || die "VMM binary '$vmm' is not an executable file"
  [[ -z ${NEXT_LAYOUT_EXPORTER:-} || -x $NEXT_LAYOUT_EXPORTER ]] \
    || die "NEXT_LAYOUT_EXPORTER '$NEXT_LAYOUT_EXPORTER' is not an executable file"

  [[ $HOST_TOOLS == 1 || -z ${E2E_KERNEL:-} ]] || die "E2E_KERNEL picks an amd64 kernel line: not for E2E_VENDOR=$VENDOR"
  ensure_deb_arch
  # shellcheck disable=SC2086 # one package a word
  ensure_packages $HOST_PACKAGES
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  cache="$out/cache" image="$out/image"
  mkdir -p "$cache" "$image"

  if [[ -z $vmm ]]; then
    vmm="$out/test_vmm"
    build_vmm "$vmm"
  fi
  # VCPU_TIME_VMM: the static vcpu_time_vmm (CMake passes its build); built here when unset.
  if [[ $HOST_TOOLS == 1 && -z ${VCPU_TIME_VMM:-} ]]; then
    VCPU_TIME_VMM="$out/vcpu_time_vmm"
    cc -O2 -Wall -Wextra -static -pthread -o "$VCPU_TIME_VMM" "$SCRIPT_DIR/vcpu_time_vmm.c" \
      || die "compiling vcpu_time_vmm.c failed"
  fi
  if [[ -n $BUSYBOX_DEB ]]; then
    BUSYBOX=$(debs_tree "$cache" busybox "$BUSYBOX_DEB")/bin/busybox
    [[ -x $BUSYBOX ]] || die "no bin/busybox in $BUSYBOX_DEB"
  else
    BUSYBOX=$(command -v busybox)
  fi
  if [[ -n $SETPRIV_DEBS ]]; then
    # shellcheck disable=SC2086 # one package a word
    SETPRIV_TREE=$(debs_tree "$cache" setpriv $SETPRIV_DEBS)
  fi
  pkg=$(resolve_kernel_package "$cache")
  deb=$(fetch_deb "$cache" "$pkg")
  kdir="$cache/${pkg%%:*}"
  extract_kernel "$deb" "$kdir"
  cp "$kdir/vmlinuz" "$image/vmlinuz.tmp" && mv "$image/vmlinuz.tmp" "$image/vmlinuz"

  collect_files "$kdir" "$vmm" "$exporter"
  fp=$(fingerprint | sha256sum | cut -d' ' -f1)
  if [[ -s $image/initramfs.cpio.gz && -s $image/fingerprint && $(<"$image/fingerprint") == "$fp" ]]; then
    log "initramfs up to date ($pkg)"
  else
    log "building initramfs ($pkg, exporter: ${exporter:-none})"
    build_initramfs "$image"
    printf '%s\n' "$fp" >"$image/fingerprint"
  fi
  printf '%s\n' "$image"
}

main "$@"
