#!/bin/sh
# Stand-in for Flatcar's first PXE boot: the real Ignition does what Flatcar's initramfs has it do
# with the appliance's answers, and what it wrote is printed between markers on the serial console:
#   1. `ignition -platform metal` fetches ignition.config.url from the kernel command line (the
#      install config) and runs its files stage on the live system, as Flatcar's PXE image does;
#   2. the install unit's script it wrote (/opt/bootstrap-node/install.sh) runs as written, with
#      shims for flatcar-install (which applies the final config with the real Ignition to the
#      "installed" root and prints it), curl (busybox wget) and systemctl reboot (power off: QEMU
#      runs with -no-reboot).
export PATH=/usr/bin:/bin:/sbin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
# Kernel messages on the same serial console could land inside the long config lines printed below.
echo 1 > /proc/sys/kernel/printk
say() { echo "standin: $*"; }
while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done < /lib/modules/order
ip link set lo up
for dev in /sys/class/net/*; do
  name=${dev##*/}; [ "$name" = lo ] && continue
  ip link set "$name" up && udhcpc -i "$name" -t 10 -T 2 -n -q -s /usr/share/udhcpc/default.script && break
done
url=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^ignition.config.url=//p')
say "ignition.config.url=$url"
mount -t tmpfs tmpfs /run
chown 500:500 /home/core
for stage in fetch files; do
  if ! ignition -platform metal -stage $stage -root / -log-to-stdout > /tmp/ignition-$stage.log 2>&1; then
    say "FAILED: ignition $stage stage"; cat /tmp/ignition-$stage.log; poweroff -f
  fi
done
# What Ignition fetched (its cached copy: the config as Ignition parsed it) and what it wrote.
echo "=== BEGIN INSTALL IGNITION ==="; cat /run/ignition.json; echo; echo "=== END INSTALL IGNITION ==="
echo "=== BEGIN INSTALL ROOT ==="; manifest / /etc /opt /home; echo "=== END INSTALL ROOT ==="
say "running /opt/bootstrap-node/install.sh"
/opt/bootstrap-node/install.sh
say "install.sh exited with $?"
poweroff -f
