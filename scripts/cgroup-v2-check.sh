#!/usr/bin/env bash
# Runs labrun's sandbox tests on a cgroup v2 host.
#
# This machine and CI run cgroup v1, and a host cannot switch without a
# reboot, so this boots a throwaway KVM virtual machine: Debian 12's own
# kernel with only the unified (v2) hierarchy (cgroup_no_v1=all), a Debian
# rootfs with docker.io, this machine's node, and this checkout, all in the
# initramfs. Inside it
# starts dockerd (cgroupfs driver, no bridge, no iptables) and runs the given
# integration tests (default: job limits, limits/cancel and the hostile
# suite). The VM has no network device at all. Opt-in, not part of npm test:
# the first run downloads ~150 MB of Debian packages.
#
# Usage: bash scripts/cgroup-v2-check.sh [test files...]
# Env:   LABRUN_CGV2_ACCEL (tcg, the default, or kvm)
#        LABRUN_CGV2_CACHE (default /var/cache/labrun-cgv2): rootfs and kernel, kept between runs
#        LABRUN_CGV2_MEMORY_MB (default 6144)
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)

cache="${LABRUN_CGV2_CACHE:-/var/cache/labrun-cgv2}"
memory_mb="${LABRUN_CGV2_MEMORY_MB:-6144}"
# KVM when it works; under nested virtualisation (this workplace's machines)
# the guest hangs at boot, so software emulation is the default: slower
# (roughly 5–10×), the same kernel and cgroups.
case "${LABRUN_CGV2_ACCEL:-tcg}" in
  kvm) accel="-enable-kvm -cpu host,-arch-capabilities" ;;
  *) accel="-accel tcg,thread=multi -cpu max" ;;
esac
if [ "$#" -gt 0 ]; then tests=("$@"); else
  tests=(test/job-limits.test.ts test/limits-cancel.test.ts test/hostile/hostile.test.ts)
fi

say() { printf 'cgroup-v2-check: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, KVM)"; exit 2; }
[ -d node_modules ] || { say "run npm ci first"; exit 2; }

if ! command -v qemu-system-x86_64 >/dev/null || ! command -v debootstrap >/dev/null || ! command -v cpio >/dev/null; then
  say "installing qemu-system-x86, debootstrap and cpio from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-system-x86 debootstrap cpio >/dev/null
fi

mkdir -p "$cache"
if [ ! -x "$cache/rootfs/usr/sbin/dockerd" ]; then
  say "building a Debian 12 rootfs with docker.io in $cache/rootfs (once; a few minutes)"
  rm -rf "$cache/rootfs"
  debootstrap --variant=minbase --include=docker.io,kmod,procps,iproute2 \
    bookworm "$cache/rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1
fi
if ! ls "$cache"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  say "fetching Debian 12's kernel package"
  package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  (cd "$cache" && rm -f linux-image-*.deb && apt-get download "$package" 2>/dev/null)
  rm -rf "$cache/kernel" && dpkg -x "$cache"/linux-image-*.deb "$cache/kernel"
fi
kernel=$(ls "$cache"/kernel/boot/vmlinuz-* | head -1)
release=$(basename "$kernel" | sed 's/^vmlinuz-//')

# The base archive (rootfs + the kernel's modules) is made once; the project's
# is made each run. The kernel unpacks both, one after the other.
if [ ! -s "$cache/base.cpio" ] || [ "$cache/rootfs" -nt "$cache/base.cpio" ]; then
  say "packing the rootfs"
  mkdir -p "$cache/rootfs/lib/modules"
  rm -rf "$cache/rootfs/lib/modules/$release"
  cp -a "$cache/kernel/lib/modules/$release" "$cache/rootfs/lib/modules/"
  # The package's postinst would make modules.dep; nothing runs it here.
  chroot "$cache/rootfs" /sbin/depmod "$release"
  (cd "$cache/rootfs" && find . -xdev | cpio -o -H newc --quiet) >"$cache/base.cpio"
fi

stage=$(mktemp -d /tmp/labrun-cgv2-stage.XXXXXX)
initrd="$stage.initrd"
log=$(mktemp /tmp/labrun-cgv2-console.XXXXXX)
trap 'rm -rf "$stage" "$stage.cpio" "$initrd"' EXIT
mkdir -p "$stage/project" "$stage/usr/bin"
cp "$(command -v node)" "$stage/usr/bin/node"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$stage/project"
cp -a node_modules "$stage/project/"

# Stage 1: runc's pivot_root cannot leave the initramfs, so the system moves
# to a tmpfs first, as a real boot moves to its root filesystem.
cat >"$stage/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /newroot
mount -t tmpfs -o size=90% tmpfs /newroot
for entry in /*; do
  case "$entry" in /newroot | /proc | /sys | /dev) ;; *) cp -a "$entry" /newroot/ ;; esac
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev
exec switch_root /newroot /stage2
INIT
chmod +x "$stage/init"

cat >"$stage/stage2" <<INIT
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var/lib/docker
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /var/lib/docker
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpuset +cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
modprobe overlay || echo "LABRUN_CGV2 no overlay module"
ip link set lo up
hostname cgv2
echo "LABRUN_CGV2 cgroup filesystem: \$(stat -fc %T /sys/fs/cgroup); controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
dockerd --bridge=none --iptables=false --ip6tables=false --storage-driver=overlay2 \
  --exec-opt native.cgroupdriver=cgroupfs >/tmp/dockerd.log 2>&1 &
for i in \$(seq 1 240); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
docker version >/dev/null 2>&1 || { echo "LABRUN_CGV2 dockerd did not start:"; tail -20 /tmp/dockerd.log; }
echo "LABRUN_CGV2 docker: \$(docker info --format '{{.CgroupVersion}} {{.CgroupDriver}} {{.ServerVersion}}')"
cd /project
# Software emulation is several times slower: the tests' waits scale by this.
LABRUN_HOSTILE_TABLE=1 LABRUN_TEST_SLOWDOWN=8 node node_modules/vitest/vitest.mjs run --project integration --hookTimeout 600000 --testTimeout 600000 ${tests[*]}
rc=\$?
if [ "\$rc" != 0 ]; then
  echo "LABRUN_CGV2 diagnostics: the runner image under the job container's flags"
  image=\$(docker images --format '{{.Repository}}:{{.Tag}}' | grep labrun-runner | head -1)
  echo 'exports.main = () => 1' | docker run --rm -i --network none --read-only --tmpfs /tmp:size=64m \
    --cap-drop ALL --security-opt no-new-privileges --user 65534:65534 --memory 256m \
    --memory-swap 256m --cpus 1 --pids-limit 64 --log-driver none "\$image" 2>&1 | tail -5
  tail -15 /tmp/dockerd.log
fi
echo "LABRUN_CGV2_RC=\$rc"
echo o > /proc/sysrq-trigger
sleep 30
INIT
chmod +x "$stage/stage2"
(cd "$stage" && find . | cpio -o -H newc --quiet) >"$stage.cpio"

say "booting the VM (kernel $release, ${memory_mb} MiB, no network); console log: $log"
cat "$cache/base.cpio" "$stage.cpio" >"$initrd"
timeout 3600 qemu-system-x86_64 $accel -smp 2 -m "$memory_mb" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 rdinit=/init cgroup_no_v1=all swapaccount=1 systemd.unified_cgroup_hierarchy=1 panic=-1 quiet" \
  -nic none -display none -serial stdio -no-reboot </dev/null | tee "$log"

rc=$(sed -n 's/.*LABRUN_CGV2_RC=\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ -z "$rc" ]; then
  say "the tests did not finish in the VM (see $log)"
  exit 1
fi
say "tests in the cgroup v2 VM exited $rc"
exit "$rc"
