#!/usr/bin/env bash
# Install and set up a civsync node on a Debian/Ubuntu office PC, as root.
#
#   deploy/install.sh --package civsync_0.1.0_amd64.deb \
#       --station xh/t03/v12 --tier village --name 东村新时代文明实践站 \
#       --parent-address 10.0.3.1:7401 --pki ./v12-pki
#
# --package is the .deb that deploy/package.sh built (no Rust toolchain is
# needed on the office PC). Without --package the installed civsync package
# is used (the package carries this script as /usr/share/civsync/install.sh),
# and an installed package is upgraded by passing a newer one.
#
# --pki is the folder `civsync pki issue` wrote at the county for this
# station (node.crt, node.key, ca.crt, county-id.pub; for the county office
# also county-id.key). An old identity.key left in the data directory is
# removed below the county: it confirms guessed ID numbers.
#
# Where systemd runs, the node is enabled and started; elsewhere (a container)
# the script says how to start it by hand.
set -euo pipefail

station="" tier="" name="" parent="" pki="" package=""
data_dir=/var/lib/civsync
while [ $# -gt 0 ]; do
  case "$1" in
    --package) package=$2; shift 2 ;;
    --station) station=$2; shift 2 ;;
    --tier) tier=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --parent-address) parent=$2; shift 2 ;;
    --pki) pki=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    *) echo "install.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done
[ -n "$station" ] && [ -n "$tier" ] || { echo "install.sh: --station and --tier are required" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 2; }

if [ -n "$package" ]; then
  [ -f "$package" ] || { echo "install.sh: no package file at $package" >&2; exit 2; }
  dpkg -i "$package"
elif ! dpkg-query -W -f='${Status}' civsync 2>/dev/null | grep -q "install ok installed"; then
  echo "install.sh: the civsync package is not installed; pass --package civsync_<version>_<arch>.deb (built by deploy/package.sh)" >&2
  exit 2
fi
civsync=/usr/bin/civsync
echo "installed: $($civsync --version)"

install -d -m 0750 -o civsync -g civsync "$data_dir"
if [ ! -f "$data_dir/civsync.toml" ]; then
  args=(init --data-dir "$data_dir" --station "$station" --tier "$tier" --name "$name")
  [ -n "$parent" ] && args+=(--parent-address "$parent")
  runuser -u civsync -- "$civsync" "${args[@]}"
fi
if [ -n "$pki" ]; then
  install -d -m 0700 -o civsync -g civsync "$data_dir/pki"
  for f in node.crt ca.crt county-id.pub; do install -m 0644 -o civsync -g civsync "$pki/$f" "$data_dir/pki/$f"; done
  install -m 0600 -o civsync -g civsync "$pki/node.key" "$data_dir/pki/node.key"
  if [ "$tier" = county ] && [ -f "$pki/county-id.key" ]; then
    install -m 0600 -o civsync -g civsync "$pki/county-id.key" "$data_dir/pki/county-id.key"
  fi
  if [ "$tier" != county ]; then rm -f "$data_dir/pki/identity.key" "$data_dir/pki/county-id.key"; fi
fi

if [ "$data_dir" != /var/lib/civsync ]; then
  echo "note: the systemd unit runs /var/lib/civsync; for $data_dir start the node with:"
  echo "  runuser -u civsync -- $civsync run --data-dir $data_dir"
elif [ -d /run/systemd/system ]; then
  systemctl enable --now civsync.service
  echo "civsync is running: systemctl status civsync; civsync status --data-dir $data_dir"
else
  echo "systemd is not running here; start the node with:"
  echo "  runuser -u civsync -- $civsync run --data-dir $data_dir"
fi
