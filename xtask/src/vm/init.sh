#!/bin/sh
# Strata VM guest init: PID 1 of the throwaway guest, run by busybox from the initramfs.
# Design notes: xtask/src/vm/mod.rs. Lines starting STRATA-VM-<WORD>-<nonce> are read by the
# host; everything else on the console is output.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/strata-vm.conf

RUN=
NONCE=unknown
for arg in $(cat /proc/cmdline); do
	case $arg in
	strata_run=*) RUN=${arg#strata_run=} ;;
	strata_nonce=*) NONCE=${arg#strata_nonce=} ;;
	esac
done

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Waits until the console has sent everything written to it (busybox stty sets the mode with
# TCSADRAIN), so the last lines are not lost when the machine powers off.
CONSOLE=/dev/console
drain_console() {
	stty -F $CONSOLE "$(stty -F $CONSOLE -g)" 2>/dev/null
	sleep 0.2
}

fail() {
	echo "STRATA-VM-ERROR-$NONCE $*"
	drain_console
	poweroff -f
}

# One modprobe per list (each process start costs ~0.1 s under TCG); /sys/module tells
# which modules made it.
modprobe -a $REQUIRED_MODULES
for m in $REQUIRED_MODULES; do
	[ -d "/sys/module/$m" ] || fail "cannot load the kernel module $m"
done
# From here on, output goes to the virtio console (qemu's stdout on the host): the emulated
# UART is slow under TCG and keeps only the kernel's messages.
i=0
while [ ! -c /dev/hvc0 ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -c /dev/hvc0 ] || fail "no virtio console (/dev/hvc0)"
CONSOLE=/dev/hvc0
exec </dev/null >$CONSOLE 2>&1

# The optional modules load in two background jobs (xfs and btrfs alone take seconds)
# while init goes on; the command starts once they are done.
half1= half2= n=0
for m in $OPTIONAL_MODULES; do
	if [ $((n % 2)) = 0 ]; then half1="$half1 $m"; else half2="$half2 $m"; fi
	n=$((n + 1))
done
modprobe -a $half1 2>/dev/null &
job1=$!
modprobe -a $half2 2>/dev/null &
job2=$!

# The host's root, read-only: the lower layer of the guest's root.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower ||
	fail "cannot mount the host root over 9p"
[ -n "$RUN" ] && [ -f "/lower$RUN/run.conf" ] || fail "no run directory (strata_run=$RUN)"
# Sets TIMEOUT, MODULES_TREE, SHARE_TAGS and SHARE_<tag> (the host path of each share).
. "/lower$RUN/run.conf"

# Last resort should the host lose track of the guest: it powers itself off.
(
	sleep "$TIMEOUT"
	fail "guest watchdog: the command still ran after ${TIMEOUT}s"
) &

# Every module of the kernel, for modprobe here and the kernel's own module autoloading.
mount --bind "/lower$MODULES_TREE" "/lib/modules/$KERNEL_RELEASE" ||
	fail "cannot bind the module tree $MODULES_TREE"

# The scratch disk (ext4, made on the host) holds the overlay's upper layer and /tmp.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
mount -t ext4 -o noinit_itable /dev/vda /scratch || fail "cannot mount the scratch disk"
mkdir -p /scratch/upper /scratch/work /scratch/tmp && chmod 1777 /scratch/tmp
mount -t overlay overlay -o lowerdir=/lower,upperdir=/scratch/upper,workdir=/scratch/work \
	/newroot || fail "cannot mount the overlay root"

R=/newroot
mount -t proc proc $R/proc || fail "cannot mount proc"
mount -t sysfs sysfs $R/sys || fail "cannot mount sysfs"
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "cannot mount cgroup2"
for c in cpu memory pids io; do
	echo "+$c" >$R/sys/fs/cgroup/cgroup.subtree_control ||
		fail "cannot enable the $c cgroup controller"
done
for c in cpuset hugetlb rdma misc; do
	echo "+$c" >$R/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
mount -t devtmpfs devtmpfs $R/dev || fail "cannot mount /dev"
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $R/dev/pts ||
	fail "cannot mount devpts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm $R/dev/shm || fail "cannot mount /dev/shm"
mount -t mqueue mqueue $R/dev/mqueue 2>/dev/null
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $R/run || fail "cannot mount /run"
mount --bind /scratch/tmp $R/tmp || fail "cannot mount /tmp"
mount -t fusectl fusectl $R/sys/fs/fuse/connections 2>/dev/null
mkdir -p "$R/lib/modules/$KERNEL_RELEASE" &&
	mount --bind "/lower$MODULES_TREE" "$R/lib/modules/$KERNEL_RELEASE" ||
	fail "cannot bind the module tree into the root"
# A host without kmod (a monolithic kernel needs none) still gets modprobe and friends.
if [ ! -e $R/sbin/modprobe ] && [ ! -e $R/usr/sbin/modprobe ] && [ -x $R/bin/busybox ]; then
	mkdir -p $R/usr/local/sbin
	for a in modprobe insmod rmmod lsmod modinfo depmod; do
		ln -sf /bin/busybox $R/usr/local/sbin/$a
	done
fi
for t in $SHARE_TAGS; do
	eval "p=\$SHARE_$t"
	mkdir -p "$R$p" && # shares below /tmp or /run are not in the lower layer
		mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 "$t" "$R$p" ||
		fail "cannot mount the read-write share $p"
done
hostname strata-vm
ip link set lo up

cp "/lower$RUN/cmd.sh" $R/run/strata-vm-cmd.sh || fail "cannot copy the command script"
wait $job1 $job2
for m in $OPTIONAL_MODULES; do
	[ -d "/sys/module/$m" ] || echo "strata-vm: warning: cannot load the kernel module $m"
done
# The root becomes the real root (switch_root moves it onto / and frees the initramfs), not a
# chroot: inside a chroot the kernel refuses new user namespaces (rootless containers) and
# OCI runtimes' pivot_root. init goes on as the second stage, from the new root, which runs
# the command, reports its status and powers off (busybox from the host: it has busybox-static).
cat >$R/run/strata-vm-stage2.sh <<STAGE2
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/sh /run/strata-vm-cmd.sh </dev/null
rc=\$?
echo "STRATA-VM-EXIT-$NONCE \$rc"
stty -F $CONSOLE "\$(stty -F $CONSOLE -g)" 2>/dev/null
sleep 0.2
/bin/busybox poweroff -f
STAGE2
[ -x $R/bin/busybox ] || fail "the host has no /bin/busybox (busybox-static) for the guest's second stage"
echo "STRATA-VM-READY-$NONCE $(uptime_s)"
exec env -i switch_root $R /bin/sh /run/strata-vm-stage2.sh
