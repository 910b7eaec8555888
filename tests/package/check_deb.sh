#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package from a configured build directory and checks it end
# to end, without touching this machine's dpkg database or services:
#   - cpack -G DEB (into a temporary directory);
#   - control data: name, version, Depends computed by dpkg-shlibdeps and
#     naming the package of every library the binary links, the conffile,
#     executable maintainer scripts;
#   - contents: every file the package must install, byte-equal to its source
#     (the systemd unit: equal but for ExecStart), the binary stripped;
#   - dpkg -i into a fresh root with an empty dpkg database (maintainer scripts
#     run there through DPKG_ROOT): files, conffile registration, the unit
#     enabled in that root and nowhere else; the INSTALLED binary passes
#     --config.check on the INSTALLED config and prints its version;
#     systemd-analyze verify on the installed unit;
#   - a reinstall (upgrade path) keeps an edited conffile and a disabled unit;
#   - dpkg -r keeps the conffile, dpkg -P removes it and the enable symlink;
#   - apt-get --simulate: the dependencies resolve on this machine;
#   - the binary is for the package's architecture (file), the libraries it
#     needs are that architecture's (/usr/lib/<tuple>), and it embeds the BPF
#     object of its build, compiled for that architecture;
#   - lintian (when installed): errors fail, warnings are listed.
# It never starts the daemon (other tests use port 9756).
#
#   tests/package/check_deb.sh [--arch ARCH] [--build-with SCRIPT] BUILD_DIR
#
# --arch: the Debian architecture the package must have (default: this
# machine's). Another one's binary is not run: the checks that run the
# installed binary are skipped, everything else is checked the same.
# --build-with: run SCRIPT BUILD_DIR first (it configures and builds
# BUILD_DIR and prints the path of the .deb it made last, as
# scripts/build_arm64.sh does) and check that .deb instead of making one.
#
# Prints PASS/FAIL per check and a summary; exits 1 if any check failed. The
# temporary directory is removed on success and kept (and named) on failure.
# `condition && pass ... || fail ...` is an if/else here, as pass never fails;
# cleanup and dpkg_root run through trap and check.
# shellcheck disable=SC2015,SC2317
set -euo pipefail

usage() {
  echo "usage: $0 [--arch ARCH] [--build-with SCRIPT] BUILD_DIR   (a configured build directory with CPackConfig.cmake)" >&2
  exit 2
}
arch=$(dpkg --print-architecture)
native_arch=$arch
build_with=""
while [[ $# -gt 1 ]]; do
  case $1 in
    --arch) arch=$2 ;;
    --build-with) build_with=$2 ;;
    *) usage ;;
  esac
  shift 2
done
[[ $# -eq 1 ]] || usage
label=package_deb
[[ $arch == "$native_arch" ]] || label="package_deb ($arch)"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
started=$SECONDS
if [[ -n $build_with ]]; then
  echo "== $build_with $1"
  built=$("$build_with" "$1") || {
    printf '%s\n' "$built"
    echo "FAIL $build_with $1"
    echo "$label: 0 passed, 1 failed, $((SECONDS - started))s"
    exit 1
  }
  printf '%s\n' "$built"
  built_deb=$(tail -n 1 <<<"$built")
fi
[[ -f $1/CPackConfig.cmake ]] || usage
build=$(cd "$1" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_deb.XXXXXX")
passed=0
failed=0
failures=()
cleanup() {
  if [[ $failed -eq 0 ]]; then
    rm -rf "$tmp"
  else
    echo "kept for inspection: $tmp"
  fi
}
trap cleanup EXIT

indent() { sed 's/^/  | /' "$@"; }
pass() {
  passed=$((passed + 1))
  echo "PASS $*"
}
fail() {
  failed=$((failed + 1))
  failures+=("$*")
  echo "FAIL $*"
}
check() { # check NAME COMMAND...: PASS when the command succeeds; its output indented
  local name=$1 rc=0
  shift
  "$@" >"$tmp/out" 2>&1 || rc=$?
  indent "$tmp/out"
  if [[ $rc -eq 0 ]]; then pass "$name"; else fail "$name (exit $rc)"; fi
}
finish() {
  echo "$label: $passed passed, $failed failed, $((SECONDS - started))s"
  for failure in "${failures[@]}"; do echo "  failed: $failure"; done
  if [[ $failed -ne 0 ]]; then exit 1; fi
  exit 0
}
die() { # a failure the remaining checks cannot run without
  fail "$*"
  finish
}

# --- build the package ------------------------------------------------------------
if [[ -n $build_with ]]; then
  [[ $built_deb == "$build"/*.deb && -f $built_deb ]] ||
    die "$build_with made a .deb in $build (it printed '$built_deb')"
  deb=$built_deb
  pass "$(basename "$build_with") made $(basename "$deb")"
else
  echo "== cpack -G DEB ($build)"
  if ! (cd "$build" && cpack -G DEB -B "$tmp/cpack") >"$tmp/cpack.log" 2>&1; then
    indent "$tmp/cpack.log"
    die "cpack -G DEB"
  fi
  debs=("$tmp"/cpack/*.deb)
  [[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || die "cpack made one .deb (found: ${debs[*]})"
  deb=${debs[0]}
  pass "cpack -G DEB made $(basename "$deb")"
fi

# --- control data -----------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
project_version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[[ $(field Package) == kvm-exit-exporter ]] && pass "Package: kvm-exit-exporter" ||
  fail "Package is '$(field Package)', want kvm-exit-exporter"
[[ $(field Version) == "$project_version-"* ]] && pass "Version: $(field Version)" ||
  fail "Version '$(field Version)' is not the project's $project_version-<release>"
[[ $(field Architecture) == "$arch" ]] && pass "Architecture: $arch" ||
  fail "Architecture is '$(field Architecture)', want $arch"

depends=$(field Depends)
echo "  Depends: $depends"
# The package names of Depends, one a line.
dep_names=$(tr ',|' '\n' <<<"$depends" | sed 's/(.*)//; s/[[:space:]]//g' | sed '/^$/d' | sort -u)
has_dep() { grep -qx "$1" <<<"$dep_names"; }
# Libraries the binary links directly (prometheus-cpp-core serves the
# exporter's own metrics, libre2-9 runs vms.naming_rules, libcap2 drops
# capabilities, GnuTLS and libcrypt serve --web.config.file).
for package in libc6 libstdc++6 libbpf1 libyaml-cpp0.7 libmicrohttpd12 libprometheus-cpp-core1.0 zlib1g \
  libre2-9 libcap2 libgnutls30 libcrypt1; do
  has_dep "$package" && pass "Depends names $package" || fail "Depends lacks $package: $depends"
done
# The docs' source of truth for the dependency list (tests/docs/check_docs.py)
# is this field: the same package names, so neither can go stale alone.
documented=$(sed '/^#/d' "$repo/tests/docs/package_depends.txt" | tr ',|' '\n' |
  sed 's/(.*)//; s/[[:space:]]//g' | sed '/^$/d' | sort -u)
[[ "$documented" == "$dep_names" ]] && pass "Depends names the packages of tests/docs/package_depends.txt" ||
  fail "Depends and tests/docs/package_depends.txt differ: $(diff <(echo "$documented") <(echo "$dep_names") | sed -n 's/^[<>] //p' | tr '\n' ' ')"
# Computed, not listed by hand: every library the binary needs comes from a
# package that Depends names (dpkg-shlibdeps), whatever the libraries are.
mkdir -p "$tmp/deb"
dpkg-deb -x "$deb" "$tmp/deb"
dpkg-deb -e "$deb" "$tmp/deb/DEBIAN"
needed=$(readelf -d "$tmp/deb/usr/bin/kvm_exit_exporter" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
if [[ $arch == "$native_arch" ]]; then
  multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
else
  multiarch=$(dpkg-architecture -a "$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
fi
for soname in $needed; do
  # The package architecture's library, where its dynamic loader looks.
  [[ -e /usr/lib/$multiarch/$soname || -e /lib/$multiarch/$soname ]] &&
    pass "NEEDED $soname is in /usr/lib/$multiarch or /lib/$multiarch" ||
    fail "NEEDED $soname is in neither /usr/lib/$multiarch nor /lib/$multiarch"
  # "pkg:arch[, pkg:arch]: /path" lines for paths ending in /<multiarch>/<soname>.
  owners=$(dpkg -S "$multiarch/$soname" 2>/dev/null | awk -v suffix="/$multiarch/$soname" \
    'substr($NF, length($NF) - length(suffix) + 1) == suffix' |
    sed 's/: \/.*//' | tr ',' '\n' | sed 's/:.*//; s/[[:space:]]//g' | sort -u || true)
  owner_ok=0
  for owner in $owners; do has_dep "$owner" && owner_ok=1; done
  if [[ $owner_ok -eq 1 ]]; then
    pass "NEEDED $soname: its package ($(tr '\n' ' ' <<<"$owners" | sed 's/ $//')) is in Depends"
  else
    fail "NEEDED $soname: package '${owners:-none found}' is not in Depends"
  fi
done

[[ $(cat "$tmp/deb/DEBIAN/conffiles" 2>/dev/null) == /etc/kvm_exit_exporter/config.yml ]] &&
  pass "control conffiles: /etc/kvm_exit_exporter/config.yml" ||
  fail "control conffiles is not exactly /etc/kvm_exit_exporter/config.yml"
for script in postinst prerm postrm; do
  [[ -x $tmp/deb/DEBIAN/$script ]] && cmp -s "$tmp/deb/DEBIAN/$script" "$repo/deploy/debian/$script" &&
    pass "control $script: executable, deploy/debian/$script" ||
    fail "control $script missing, not executable or not deploy/debian/$script"
done

# --- contents ---------------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's#^\./#/#' >"$tmp/contents"
share=/usr/share/kvm_exit_exporter
expected=( # package path : source file it must equal ("" = checked separately)
  "/usr/bin/kvm_exit_exporter:"
  "/lib/systemd/system/kvm_exit_exporter.service:"
  "/etc/kvm_exit_exporter/config.yml:exporter/config/default_config.yaml"
  "$share/prometheus/kvm_exit_exporter.rules.yml:deploy/prometheus/kvm_exit_exporter.rules.yml"
  "/usr/share/doc/kvm-exit-exporter/copyright:deploy/debian/copyright"
  "/usr/share/doc/kvm-exit-exporter/changelog.Debian.gz:"
)
for dashboard in "$repo"/dashboards/*.json; do
  expected+=("$share/dashboards/${dashboard##*/}:dashboards/${dashboard##*/}")
done
while IFS= read -r provisioning; do
  expected+=("$share/dashboards/$provisioning:dashboards/$provisioning")
done < <(cd "$repo/dashboards" && find provisioning -type f -name '*.yml' | sort)
for entry in "${expected[@]}"; do
  path=${entry%%:*} source=${entry#*:}
  if ! grep -qx "$path" "$tmp/contents"; then
    fail "dpkg-deb -c lists $path"
  elif [[ -n $source ]] && ! cmp -s "$tmp/deb$path" "$repo/$source"; then
    fail "$path differs from $source"
  else
    pass "dpkg-deb -c lists $path${source:+ (= $source)}"
  fi
done

# The unit: deploy/systemd's settings, with ExecStart at /usr/bin.
unit=$tmp/deb/lib/systemd/system/kvm_exit_exporter.service
if diff <(grep -v '^#' "$repo/deploy/systemd/kvm_exit_exporter.service" |
  sed 's#^ExecStart=/usr/local/bin/kvm_exit_exporter #ExecStart=/usr/bin/kvm_exit_exporter #') \
  <(grep -v '^#' "$unit") >"$tmp/unit.diff" && grep -q '^ExecStart=/usr/bin/kvm_exit_exporter ' "$unit"; then
  pass "packaged unit = deploy/systemd unit with ExecStart=/usr/bin/kvm_exit_exporter"
else
  indent "$tmp/unit.diff"
  fail "packaged unit differs from deploy/systemd/kvm_exit_exporter.service beyond ExecStart"
fi
if readelf -S -W "$tmp/deb/usr/bin/kvm_exit_exporter" | grep -qE '\.(symtab|debug_)'; then
  fail "binary is stripped (it has .symtab or .debug_* sections)"
else
  pass "binary is stripped"
fi

# --- the binary's architecture and its BPF object -----------------------------------
# Per architecture: file(1)'s name of the machine; the name bpf_tracing.h
# knows it by (-D__TARGET_ARCH_<name>, CMakeLists.txt KVMEXIT_ARCH_*); a field
# of the kernel's kvm_exit record on that architecture only, which
# bpf/exit_count.bpf.c reads there (x86: exit_reason; arm64: esr_ec).
case $arch in
  amd64) machine="x86-64" bpf_arch=x86 record_field=exit_reason ;;
  arm64) machine="ARM aarch64" bpf_arch=arm64 record_field=esr_ec ;;
  *) die "tests/package/check_deb.sh knows no machine for architecture $arch" ;;
esac
binary=$tmp/deb/usr/bin/kvm_exit_exporter
info=$(file -b "$binary")
echo "  | $info"
[[ $info == "ELF 64-bit LSB "*executable", $machine, "* ]] &&
  pass "binary: an ELF executable for $machine ($arch)" || fail "binary is not an ELF $machine executable"
# The BPF object the build linked (BUILD_DIR/gen) was compiled for the
# architecture: the compile command the build ran, and the record layout in
# the object's BTF, which is the layout the program reads at run time.
defines=$(grep -hoE -- '-D__TARGET_ARCH_[A-Za-z0-9_]+' "$build/CMakeFiles/kvm_exit_skel.dir/build.make" \
  "$build/build.ninja" 2>/dev/null | sort -u | tr '\n' ' ' || true)
[[ $defines == "-D__TARGET_ARCH_$bpf_arch " ]] &&
  pass "BPF objects compiled with -D__TARGET_ARCH_$bpf_arch (the build's compile command)" ||
  fail "BPF objects compiled with '$defines', want -D__TARGET_ARCH_$bpf_arch alone"
object=$build/gen/kvm_exit.bpf.o
bpftool=$(command -v bpftool || echo /usr/sbin/bpftool)
fields=$("$bpftool" btf dump file "$object" 2>/dev/null |
  awk '/^\[[0-9]+\] STRUCT .trace_event_raw_kvm_exit. / { on = 1; next } on && /^\t/ { print $1; next } { on = 0 }' |
  tr -d "'" | tr '\n' ' ' || true)
echo "  | BTF of gen/kvm_exit.bpf.o: struct trace_event_raw_kvm_exit { ${fields}}"
grep -qw "$record_field" <<<"$fields" &&
  pass "BPF object reads $arch's kvm_exit record (field $record_field in its BTF)" ||
  fail "BPF object's kvm_exit record lacks $arch's field $record_field: built for another architecture"
# The skeleton holds the object's bytes: the packaged binary embeds this object.
python3 -c 'import sys; sys.exit(open(sys.argv[1], "rb").read() not in open(sys.argv[2], "rb").read())' \
  "$object" "$binary" && pass "binary embeds gen/kvm_exit.bpf.o" ||
  fail "binary does not embed $object (another build's binary?)"
check "changelog.Debian.gz names version $(field Version)" \
  sh -c "gzip -dc '$tmp/deb/usr/share/doc/kvm-exit-exporter/changelog.Debian.gz' | head -1 | grep -F '($(field Version))'"

# --- install into a fresh root ----------------------------------------------------
# Maintainer scripts run outside a chroot (the root has no shell) with DPKG_ROOT
# set; they must then leave this machine's systemd alone.
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# Another architecture's package installs where dpkg knows the architecture.
[[ $arch == "$native_arch" ]] || dpkg --root="$root" --add-architecture "$arch"
dpkg_root() { # dpkg on the root; its complaints about the (absent) dependencies left out
  local rc=0
  dpkg --root="$root" --log="$root/dpkg.log" --force-not-root --force-script-chrootless \
    --force-depends "$@" >"$tmp/dpkg.out" 2>&1 || rc=$?
  grep -v -e 'dependency problems, but configuring anyway' -e ' depends on .*; however:$' \
    -e '^  Package .* is not installed\.$' -e '^$' "$tmp/dpkg.out" || true
  return "$rc"
}
wants=etc/systemd/system/multi-user.target.wants/kvm_exit_exporter.service
host_link_before=0
[[ -L /$wants ]] && host_link_before=1
status() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev}' kvm-exit-exporter 2>/dev/null || true; }

check "dpkg -i into an empty root (maintainer scripts succeed)" dpkg_root -i "$deb"
[[ $(status) == "ii " ]] && pass "dpkg status: install ok installed" || fail "dpkg status is '$(status)', want 'ii '"
conffiles=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}' kvm-exit-exporter)
grep -q '^ /etc/kvm_exit_exporter/config.yml [0-9a-f]\{32\}$' <<<"$conffiles" &&
  pass "dpkg registered /etc/kvm_exit_exporter/config.yml as a conffile" ||
  fail "/etc/kvm_exit_exporter/config.yml is not a registered conffile: '$conffiles'"
missing=()
for entry in "${expected[@]}"; do
  [[ -f $root${entry%%:*} ]] || missing+=("${entry%%:*}")
done
[[ ${#missing[@]} -eq 0 ]] && pass "all ${#expected[@]} files landed in the root" ||
  fail "not installed: ${missing[*]}"
[[ $(readlink "$root/$wants" 2>/dev/null) == /lib/systemd/system/kvm_exit_exporter.service ]] &&
  pass "postinst enabled the unit in the root (multi-user.target.wants)" ||
  fail "postinst did not enable the unit in the root"
if [[ $host_link_before -eq 0 && -L /$wants ]]; then
  fail "postinst enabled the unit on THIS machine (/$wants): DPKG_ROOT not honoured"
else
  pass "this machine's /etc/systemd is untouched"
fi

# The installed binary and config (another architecture's binary is not run).
bin=$root/usr/bin/kvm_exit_exporter
if [[ $arch == "$native_arch" ]]; then
  out=$("$bin" --config.check --config.file="$root/etc/kvm_exit_exporter/config.yml" 2>&1) || true
  echo "  | $out"
  [[ $out == "configuration OK"* ]] && pass "installed binary: --config.check on the installed config.yml" ||
    fail "installed binary: --config.check did not print 'configuration OK'"
  out=$("$bin" --version 2>&1) || true
  echo "  | $out"
  [[ $out == "kvm_exit_exporter $project_version "* ]] && pass "installed binary: --version" ||
    fail "installed binary: --version is not 'kvm_exit_exporter $project_version ...'"
else
  echo "SKIP installed binary: --config.check, --version (an $arch binary on this $native_arch machine)"
fi

# systemd-analyze verify wants the ExecStart binary to exist: point it at the
# installed one (the unit is otherwise the installed file).
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/verify"
  sed "s#^ExecStart=/usr/bin/kvm_exit_exporter #ExecStart=$bin #" \
    "$root/lib/systemd/system/kvm_exit_exporter.service" >"$tmp/verify/kvm_exit_exporter.service"
  out=$(systemd-analyze verify "$tmp/verify/kvm_exit_exporter.service" 2>&1) && [[ -z $out ]] &&
    pass "systemd-analyze verify: installed unit clean" ||
    { printf '%s\n' "$out" | indent; fail "systemd-analyze verify on the installed unit"; }
else
  echo "SKIP systemd-analyze verify (systemd-analyze not installed)"
fi

# --- upgrade path: a reinstall keeps the administrator's choices --------------------
echo "# edited by check_deb.sh" >>"$root/etc/kvm_exit_exporter/config.yml"
rm "$root/$wants" # as `systemctl disable` would
check "dpkg -i again (upgrade path)" dpkg_root -i "$deb"
grep -q '^# edited by check_deb.sh$' "$root/etc/kvm_exit_exporter/config.yml" &&
  pass "reinstall kept the edited conffile" || fail "reinstall overwrote the edited conffile"
[[ ! -e $root/$wants && ! -L $root/$wants ]] && pass "reinstall kept the unit disabled" ||
  fail "reinstall re-enabled a unit the administrator disabled"

# --- remove and purge ---------------------------------------------------------------
check "dpkg -r (prerm, postrm succeed)" dpkg_root -r kvm-exit-exporter
[[ $(status) == "rc " ]] && pass "dpkg status after remove: config-files" ||
  fail "dpkg status after remove is '$(status)', want 'rc '"
[[ ! -e $bin && -f $root/etc/kvm_exit_exporter/config.yml ]] &&
  pass "remove deleted the binary and kept the conffile" || fail "remove: binary left or conffile gone"
check "dpkg -P (postrm purge succeeds)" dpkg_root -P kvm-exit-exporter
leftovers=$(find "$root" \( -type f -o -type l \) -printf '%P\n' |
  grep -v -e '^var/lib/dpkg/' -e '^dpkg\.log$' || true)
[[ -z $leftovers ]] && pass "purge left no files (conffile, enable links, deb-systemd-helper state)" ||
  fail "purge left: $(tr '\n' ' ' <<<"$leftovers")"

# --- the dependencies resolve here ----------------------------------------------------
# A simulation changes nothing; no lock, so a concurrent apt-get does not fail it.
check "apt-get install --simulate ./$(basename "$deb")" \
  apt-get install --simulate -o Debug::NoLocking=1 "$deb"
grep -qE "^Inst kvm-exit-exporter(:$arch)? " "$tmp/out" || fail "apt-get --simulate would not install the package"

# --- lintian ------------------------------------------------------------------------
# Warnings left on purpose, and why (see also the README's package section).
declare -A known=(
  [copyright-without-copyright-notice]="the repository names no copyright holder; deploy/debian/copyright says so (TODO)"
  [initial-upload-closes-no-bugs]="not uploaded to Debian: there is no ITP bug to close"
  [no-manual-page]="the exporter has no man page yet; --help documents the flags"
)
if command -v lintian >/dev/null; then
  echo "== lintian $(basename "$deb")"
  lintian --allow-root --display-info "$deb" >"$tmp/lintian" 2>&1 || true
  indent "$tmp/lintian"
  errors=$(grep -c '^E: ' "$tmp/lintian" || true)
  while read -r severity _ tag _; do
    [[ $severity == W: ]] || continue
    if [[ -n ${known[$tag]:-} ]]; then
      echo "  lintian warning $tag: known: ${known[$tag]}"
    else
      echo "  lintian warning $tag: NEW, look at it"
    fi
  done <"$tmp/lintian"
  [[ $errors -eq 0 ]] && pass "lintian: no errors" || fail "lintian: $errors error(s)"
else
  echo "SKIP lintian (not installed; scripts/install_deps.sh test installs it)"
fi

finish
