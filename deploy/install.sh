#!/usr/bin/env bash
# Install a civsync node on a Debian/Ubuntu office PC, as root.
#
#   deploy/install.sh --station xh/t03/v12 --tier village \
#       --name 东村新时代文明实践站 --parent-address 10.0.3.1:7401 \
#       --pki ./v12-pki
#
# --pki is the folder `civsync pki issue` wrote at the county for this
# station (node.crt, node.key, ca.crt, county-id.pub; for the county office
# also county-id.key). An old identity.key left in the data directory is
# removed below the county: it confirms guessed ID numbers. The binary is built
# from this checkout unless --binary points at one.
set -euo pipefail

station="" tier="" name="" parent="" pki="" binary=""
data_dir=/var/lib/civsync
while [ $# -gt 0 ]; do
  case "$1" in
    --station) station=$2; shift 2 ;;
    --tier) tier=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --parent-address) parent=$2; shift 2 ;;
    --pki) pki=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$station" ] && [ -n "$tier" ] || { echo "--station and --tier are required" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$binary" ]; then
  (cd "$here/.." && cargo build --release -p civsync-node)
  binary="$here/../target/release/civsync"
fi
install -m 0755 "$binary" /usr/local/bin/civsync

id civsync >/dev/null 2>&1 || useradd --system --home "$data_dir" --shell /usr/sbin/nologin civsync
install -d -m 0750 -o civsync -g civsync "$data_dir"

if [ ! -f "$data_dir/civsync.toml" ]; then
  args=(init --data-dir "$data_dir" --station "$station" --tier "$tier" --name "$name")
  [ -n "$parent" ] && args+=(--parent-address "$parent")
  runuser -u civsync -- /usr/local/bin/civsync "${args[@]}"
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

install -m 0644 "$here/civsync.service" /etc/systemd/system/civsync.service
systemctl daemon-reload
systemctl enable --now civsync
echo "civsync is running: systemctl status civsync; civsync status --data-dir $data_dir"
