#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mmdebstrap's customize hook for tests/host/build_image.sh: $1 is the
# finished root tree. Adds the control service that drives the host suite's
# guest, its network and a quiet boot.
set -euo pipefail
root=$1

echo host-test >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 host-test\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"

# QEMU's user network, static (no DHCP client in the image); the host reaches
# the exporter only through its hostfwd port forward.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-qemu-user.network" <<'NET'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
systemctl --root="$root" enable systemd-networkd.service >/dev/null 2>&1

# The control channel: at boot, mount the host's 9p share and run its
# control.sh (the suite's checks), its output to the share and to the second
# serial port, then power off. Without the share (a manual boot) it does nothing.
cat >"$root/usr/local/sbin/host-test-control" <<'CTL'
#!/bin/bash
mkdir -p /mnt/host
modprobe 9pnet_virtio 2>/dev/null; modprobe 9p 2>/dev/null
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host; then
  echo "host-test-control: no 9p share hostshare: nothing to do" >/dev/ttyS1
  exit 0
fi
if [[ -x /mnt/host/control.sh ]]; then
  /mnt/host/control.sh </dev/null 2>&1 | tee /mnt/host/guest.log >/dev/ttyS1
fi
echo "HOST CONTROL DONE" >/dev/ttyS1
sync
systemctl poweroff --no-block
CTL
chmod 0755 "$root/usr/local/sbin/host-test-control"
cat >"$root/etc/systemd/system/host-test-control.service" <<'UNIT'
[Unit]
Description=Host suite control script (9p share hostshare)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/host-test-control
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$root" enable host-test-control.service >/dev/null 2>&1

# Nothing that runs apt or timers in the background during a test.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer man-db.timer systemd-timesyncd.service; do
  systemctl --root="$root" mask "$unit" >/dev/null 2>&1 || true
done
# A root login on the serial console for debugging a manual boot.
passwd --root "$root" -d root >/dev/null
# mmdebstrap's path-exclude options kept the image small; a package installed
# later (the exporter's) must get all its files, as on a user's machine.
rm -f "$root/etc/dpkg/dpkg.cfg.d/99mmdebstrap"
