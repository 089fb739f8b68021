# img-initramfs: loads the drivers, finds the root (disk: root=; live: the medium labelled
# img.live=), mounts it and switches to the image's own init. IMG_MODE, IMG_KVER and
# IMG_MODULES are set above by img-creator. Only busybox applets are used.
export PATH=/sbin:/bin

say() { echo "img-initramfs: $*"; }

# rd.shell=0 (as dracut's) powers off instead, so unattended boots end instead of hanging.
fail() {
	say "$*"
	if [ "$shell" != 0 ]; then
		say "starting a shell; the machine powers off when it exits"
		setsid cttyhack sh || sh
	fi
	poweroff -f
}

mount_pseudo() {
	mkdir -p /proc /sys /dev /run /newroot
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	# The Debian kernel does not mount devtmpfs by itself; device nodes come from it.
	mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs (kernel without CONFIG_DEVTMPFS?)"
}

parse_cmdline() {
	root= rootfstype= rootflags= rwmode=ro init=/sbin/init live= shell=1 wait=10
	for arg in $(cat /proc/cmdline); do
		case $arg in
		root=*) root=${arg#root=} ;;
		rootfstype=*) rootfstype=${arg#rootfstype=} ;;
		rootflags=*) rootflags=${arg#rootflags=} ;;
		ro) rwmode=ro ;;
		rw) rwmode=rw ;;
		init=*) init=${arg#init=} ;;
		img.live=*) live=${arg#img.live=} ;;
		rd.shell=0) shell=0 ;;
		rootdelay=*) wait=${arg#rootdelay=} ;;
		esac
	done
}

# Already loaded, built in or without hardware: insmod's complaint is not an error here.
load_modules() {
	for m in $IMG_MODULES; do
		insmod "/lib/modules/$IMG_KVER/$m" 2>/dev/null
	done
}

# The device for root= (UUID=, LABEL=, PARTUUID=, /dev/...), waiting for it to appear.
wait_device() {
	i=0
	while [ "$i" -le $((wait * 10)) ]; do
		case $1 in
		/dev/*) [ -b "$1" ] && echo "$1" && return 0 ;;
		*=*) findfs "$1" 2>/dev/null && return 0 ;;
		*) return 1 ;;
		esac
		usleep 100000
		i=$((i + 1))
	done
	return 1
}

mount_disk_root() {
	[ -n "$root" ] || fail "no root= on the kernel command line"
	dev=$(wait_device "$root") || fail "root device $root did not appear within $wait s"
	opts=$rwmode${rootflags:+,$rootflags}
	if [ -n "$rootfstype" ]; then
		mount -t "$rootfstype" -o "$opts" "$dev" /newroot
	else
		mount -o "$opts" "$dev" /newroot
	fi || fail "cannot mount root $root ($dev${rootfstype:+, $rootfstype}) on /newroot"
}

# iso9660 first (CD, or the isohybrid image as a disk), then a FAT stick; FAT asks for
# iocharset=utf8 because the kernel's default (ascii) may not be shipped.
mount_medium() {
	mount -t iso9660 -o ro "$1" /run/medium 2>/dev/null ||
		mount -t vfat -o ro,iocharset=utf8 "$1" /run/medium 2>/dev/null ||
		mount -o ro "$1" /run/medium
}

mount_live_root() {
	[ -n "$live" ] || fail "no img.live=LABEL on the kernel command line"
	mkdir -p /run/medium /run/squash /run/overlay
	dev=$(wait_device "LABEL=$live") || fail "no medium labelled $live appeared within $wait s"
	mount_medium "$dev" || fail "cannot mount the medium $dev (label $live)"
	[ -f /run/medium/LiveOS/squashfs.img ] || fail "$dev (label $live) has no /LiveOS/squashfs.img"
	mount -t squashfs -o ro,loop /run/medium/LiveOS/squashfs.img /run/squash ||
		fail "cannot loop-mount /LiveOS/squashfs.img of $dev"
	mount -t tmpfs -o mode=0755 tmpfs /run/overlay || fail "cannot mount a tmpfs for the overlay"
	mkdir -p /run/overlay/upper /run/overlay/work
	mount -t overlay -o lowerdir=/run/squash,upperdir=/run/overlay/upper,workdir=/run/overlay/work overlay /newroot ||
		fail "cannot mount the overlay root"
}

# /dev, /proc, /sys go along to the new root when it has the folders, else they are dropped.
move_pseudo() {
	for d in dev proc sys; do
		mkdir -p "/newroot/$d" 2>/dev/null
		mount --move "/$d" "/newroot/$d" 2>/dev/null || umount -l "/$d"
	done
}

mount_pseudo
parse_cmdline
load_modules
case $IMG_MODE in
live) mount_live_root ;;
*) mount_disk_root ;;
esac
[ -L "/newroot$init" ] || [ -e "/newroot$init" ] || fail "$init is not in the root filesystem (init= to pick another)"
move_pseudo
exec switch_root /newroot "$init" "$@"
