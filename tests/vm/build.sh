#!/usr/bin/env bash
# Builds the microVM tests' guest: Debian's cloud kernel and a busybox initramfs.
#
#   tests/vm/build.sh DIR
#
# Writes DIR/vmlinuz (the kernel of linux-image-cloud-amd64's current version, downloaded
# with `apt-get download` and unpacked with dpkg-deb: nothing is installed) and
# DIR/initrd.gz (busybox-static, the ACPI button and evdev modules of that kernel, and an
# /init that prints "canopy microvm up: <release>" and powers off on the ACPI power button,
# which qemu presses on QMP's system_powerdown).
# Reused when DIR already holds both. Prints DIR's two files' sha256s, one per line.
#
# Needs: apt-get (a reachable Debian mirror), dpkg-deb, busybox-static, gzip.
set -euo pipefail

dir=${1:?usage: build.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ ! -s "$dir/vmlinuz" ] || [ ! -s "$dir/initrd.gz" ]; then
  work=$(mktemp -d "$dir/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # The metapackage depends on the versioned image: download that one.
  image=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$image" ] || { echo "build.sh: no linux-image-*-cloud-amd64 in apt's lists (apt-get update?)" >&2; exit 1; }
  (cd "$work" && apt-get download "$image" >/dev/null 2>"$work/apt.log") \
    || { cat "$work/apt.log" >&2; exit 1; }
  dpkg-deb -x "$work"/"$image"_*.deb "$work/x"
  modules=$(echo "$work"/x/lib/modules/*/kernel)

  root="$work/initramfs"
  mkdir -p "$root"/{bin,dev,proc,sys,lib}
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh mount insmod echo uname sleep dd poweroff cat; do
    ln -s busybox "$root/bin/$applet"
  done
  cp "$modules/drivers/input/evdev.ko" "$modules/drivers/acpi/button.ko" "$root/lib/"
  cat >"$root/bin/off" <<'OFF'
#!/bin/sh
echo "canopy microvm: power button, powering off"
exec poweroff -f
OFF
  cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
insmod /lib/evdev.ko
insmod /lib/button.ko
# The button's input device appears after its driver probes.
n=0
while [ ! -e /dev/input/event0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
# The power button's first input event (24 bytes: struct input_event) powers off.
( dd if=/dev/input/event0 of=/dev/null bs=24 count=1 2>/dev/null && /bin/off ) &
echo "canopy microvm up: $(uname -r)"
while true; do sleep 1000; done
INIT
  chmod +x "$root/init" "$root/bin/off"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$work/initrd.gz"
  cp "$work"/x/boot/vmlinuz-* "$work/vmlinuz"
  mv "$work/vmlinuz" "$dir/vmlinuz"
  mv "$work/initrd.gz" "$dir/initrd.gz"
fi
sha256sum "$dir/vmlinuz" "$dir/initrd.gz" | cut -d' ' -f1
