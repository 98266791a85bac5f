#!/usr/bin/env bash
# Build what an office installs without a Rust toolchain, from this checkout:
#
#   dist/civsync_<version>_<arch>.deb        Debian/Ubuntu package
#   dist/civsync-<version>-linux-<arch>.tar.gz  the binary, unit and guide
#
#   deploy/package.sh                  build --release, then package
#   deploy/package.sh --profile ci     package the binary of another cargo profile
#   deploy/package.sh --binary PATH    package a binary built elsewhere
#   deploy/package.sh --out DIR        write into DIR instead of dist/
#
# Needs only dpkg-deb and tar (both on every Debian machine). The package
# holds the binary (/usr/bin/civsync), the systemd unit, this folder's guide,
# and maintainer scripts that make the civsync system user and
# /var/lib/civsync and work on a machine without a running systemd
# (a container, a chroot). It never starts a node by itself: an office's
# node needs its station and certificate first (deploy/install.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
profile=release binary="" out="$root/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "package.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done
command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 2; }

if [ -z "$binary" ]; then
  (cd "$root" && cargo build --profile "$profile" -p civsync-node --bin civsync)
  binary="$root/target/$profile/civsync"
fi
[ -x "$binary" ] || { echo "package.sh: no executable at $binary" >&2; exit 2; }

# The version is what the binary says of itself, so a package can never
# carry a binary of another version than its name.
version=$("$binary" --version | awk '{print $2}')
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || { echo "package.sh: '$binary --version' said '$version'" >&2; exit 2; }
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
# The oldest glibc the binary runs on: the highest symbol version it links.
glibc=$(grep -aoE 'GLIBC_2\.[0-9]+' "$binary" | sed 's/GLIBC_//' | sort -uV | tail -1)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/deb"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/system" "$pkg/usr/share/doc/civsync" "$pkg/usr/share/civsync"
install -m 0755 "$binary" "$pkg/usr/bin/civsync"
strip --strip-debug "$pkg/usr/bin/civsync" 2>/dev/null || true
install -m 0644 "$here/civsync.service" "$pkg/usr/lib/systemd/system/civsync.service"
install -m 0644 "$here/README.md" "$pkg/usr/share/doc/civsync/README.md"
install -m 0644 "$here/RUNBOOK-stolen-pc.md" "$pkg/usr/share/doc/civsync/RUNBOOK-stolen-pc.md"
install -m 0755 "$here/install.sh" "$pkg/usr/share/civsync/install.sh"
for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$pkg/DEBIAN/$script"
done
installed_kib=$(du -sk "$pkg/usr" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: civsync
Version: $version
Architecture: $arch
Maintainer: civsync developers <civsync@localhost>
Installed-Size: $installed_kib
Depends: libc6 (>= ${glibc:-2.31}), libgcc-s1, passwd, util-linux
Section: net
Priority: optional
Description: offline-first sync node for New Era Civilization Practice offices
 One node per county center, township institute and village station:
 volunteers, teams, activities with service hours and citizens' service
 orders, recorded offline and synced peer to peer over QUIC. The web app
 is served at http://127.0.0.1:7400/. Start with
 /usr/share/doc/civsync/README.md.
EOF
(cd "$pkg" && find usr -type f -exec md5sum {} + >DEBIAN/md5sums)

install -d "$out"
deb="$out/civsync_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null

# The plain tarball: for a machine without dpkg, or to copy one binary.
tar_dir="$stage/civsync-$version"
install -d "$tar_dir"
install -m 0755 "$pkg/usr/bin/civsync" "$tar_dir/civsync"
install -m 0644 "$here/civsync.service" "$here/README.md" "$here/RUNBOOK-stolen-pc.md" "$tar_dir/"
tarball="$out/civsync-$version-linux-$arch.tar.gz"
tar -C "$stage" --owner=0 --group=0 -czf "$tarball" "civsync-$version"

echo "$deb"
echo "$tarball"
