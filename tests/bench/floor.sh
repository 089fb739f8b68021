#!/usr/bin/env bash
# The floor img-creator is measured against: the same package install and filesystem
# creation as tests/bench/creator.ks, done by hand with the same tools and nothing else.
#   floor.sh loop|raw REPO CACHE OUTDIR [--sha256]
# --sha256 adds `sha256sum` of the image, the one output duty img-creator has beyond the floor.
set -euo pipefail
type=$1 repo=$2 cache=$3 out=$4 sum=${5:-}
work=$(mktemp -d -p "$out" .floor-XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/var/cache" "$work/home" "$cache"
echo '%_dbpath /var/lib/rpm' >"$work/home/.rpmmacros"
ln -s "$(realpath "$cache")" "$root/var/cache/dnf"
cat >"$work/dnf.conf" <<CONF
[main]
reposdir=/dev/null
gpgcheck=0
keepcache=1
plugins=0
[fixture]
name=fixture
baseurl=file://$repo
CONF
HOME=$work/home dnf -q -c "$work/dnf.conf" --installroot "$root" --releasever 1 --forcearch x86_64 -y \
  install @core kernel -x bloat >/dev/null
rm "$root/var/cache/dnf"
case $type in
  loop) mkfs.ext4 -q -b 4096 -L root -d "$root" "$out/floor-root.img" 128M ;;
  raw)
    disk=$out/floor.raw
    rm -f "$disk"; truncate -s 129M "$disk"
    echo 'start=2048, size=262144, type=83, bootable' | sfdisk -q "$disk"
    mkfs.ext4 -q -b 4096 -L root -E offset=1048576 -d "$root" "$disk" 131072k ;;
esac
if [ "$sum" = --sha256 ]; then
  case $type in loop) sha256sum "$out/floor-root.img" ;; raw) sha256sum "$out/floor.raw" ;; esac >/dev/null
fi
