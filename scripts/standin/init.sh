#!/bin/sh
# Stand-in for Flatcar's first PXE boot. It does what Flatcar's initramfs + Ignition would do with
# the appliance's answers, and prints what it received between markers on the serial console:
#   1. fetch ignition.config.url from the kernel command line (the install config);
#   2. run that config's install unit script (/opt/bootstrap-node/install.sh) as written, with
#      shims for flatcar-install (prints its arguments and the final config), curl (busybox wget)
#      and systemctl reboot (power off: QEMU runs with -no-reboot).
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
if ! wget -q -O /tmp/install.ign "$url"; then
  say "FAILED to fetch the Ignition config"; poweroff -f
fi
echo "=== BEGIN INSTALL IGNITION ==="; cat /tmp/install.ign; echo; echo "=== END INSTALL IGNITION ==="
# Decode /opt/bootstrap-node/install.sh from the config's data URL (percent, base64 or gzip+base64).
entry=$(sed -n 's|.*"path":"/opt/bootstrap-node/install.sh","contents":{"compression":"\([a-z]*\)","source":"data:\([^"]*\)".*|\1 \2|p' /tmp/install.ign)
compression=${entry%% *}; data=${entry#* }
case "$data" in
  ";base64,"*) echo "${data#;base64,}" | base64 -d > /tmp/install.raw ;;
  ","*) printf '%b' "$(echo "${data#,}" | sed 's/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')" > /tmp/install.raw ;;
  *) say "no install script in the config"; poweroff -f ;;
esac
if [ "$compression" = gzip ]; then gunzip -c /tmp/install.raw > /tmp/install.sh; else mv /tmp/install.raw /tmp/install.sh; fi
# Ignition would also write the one-install credential the appliance added to this config.
credential=$(sed -n 's|.*"path":"/etc/bootstrap-node/credential","contents":{"source":"data:,\([A-Za-z0-9_-]*\)".*|\1|p' /tmp/install.ign)
mkdir -p /etc/bootstrap-node && printf '%s' "$credential" > /etc/bootstrap-node/credential
mkdir -p /opt/bootstrap-node && mv /tmp/install.sh /opt/bootstrap-node/install.sh && chmod +x /opt/bootstrap-node/install.sh
say "running /opt/bootstrap-node/install.sh"
/opt/bootstrap-node/install.sh
say "install.sh exited with $?"
poweroff -f
