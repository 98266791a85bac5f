#!/usr/bin/env bash
# Install the civsync package on this machine the way an office does and
# check the result; CI runs it on its own throwaway machine:
#
#   deploy/check-package.sh dist/civsync_<version>_<arch>.deb
#
# It installs system-wide (the package, the civsync user, /var/lib/civsync),
# so it refuses to run where any of them already exists, and removes what it
# made when it ends. Needs root. Works without a running systemd.
set -euo pipefail

deb=${1:?usage: deploy/check-package.sh civsync_<version>_<arch>.deb}
here=$(cd "$(dirname "$0")" && pwd)
data_dir=/var/lib/civsync
unit=/usr/lib/systemd/system/civsync.service
[ "$(id -u)" = 0 ] || { echo "check-package: run as root" >&2; exit 2; }
if dpkg-query -W civsync >/dev/null 2>&1 || getent passwd civsync >/dev/null || [ -e "$data_dir" ]; then
  echo "check-package: civsync is already on this machine (package, user or $data_dir); run this on a throwaway machine" >&2
  exit 2
fi

work=$(mktemp -d)
node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  dpkg --purge civsync >/dev/null 2>&1 || true
  rm -rf "$data_dir" "$work"
  userdel civsync 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "check-package: FAILED: $*" >&2; exit 1; }

version=$(dpkg-deb --field "$deb" Version)
echo "== package $(basename "$deb"): version $version"
dpkg-deb --contents "$deb" | grep ' ./usr/bin/civsync$' >/dev/null || fail "the package holds no usr/bin/civsync"

echo "== install.sh --package (dpkg -i, init as the civsync user, certificate folder)"
# The county's CA and this office's certificate, as the county makes them.
dpkg-deb -x "$deb" "$work/unpacked"
"$work/unpacked/usr/bin/civsync" pki init --dir "$work/county-ca" --county xh >/dev/null
"$work/unpacked/usr/bin/civsync" pki issue --ca "$work/county-ca" --station xh/t01/v01 \
  --tier village --out "$work/v01-pki" >/dev/null
"$here/install.sh" --package "$deb" --station xh/t01/v01 --tier village \
  --name 测试村新时代文明实践站 --parent-address 127.0.0.1:7499 --pki "$work/v01-pki"

echo "== what the package and install.sh left"
installed=$(/usr/bin/civsync --version)
[ "$installed" = "civsync $version" ] || fail "installed binary says '$installed', package is $version"
getent passwd civsync | grep -q ':/usr/sbin/nologin$' || fail "no civsync system user without a login shell"
[ "$(stat -c '%U:%G %a' "$data_dir")" = "civsync:civsync 750" ] || fail "$data_dir is $(stat -c '%U:%G %a' "$data_dir")"
[ "$(stat -c '%U %a' "$data_dir/pki/node.key")" = "civsync 600" ] || fail "node.key is $(stat -c '%U %a' "$data_dir/pki/node.key")"
[ -f "$data_dir/civsync.toml" ] || fail "install.sh did not run civsync init"
grep -q '^ExecStart=/usr/bin/civsync run --data-dir /var/lib/civsync$' "$unit" || fail "$unit does not run /usr/bin/civsync"

echo "== the node runs as the civsync user, by the unit's own command line"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
runuser -u civsync -- $exec_start >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 60); do
  if runuser -u civsync -- /usr/bin/civsync status --data-dir "$data_dir" >"$work/status.txt" 2>&1; then break; fi
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.log" >&2; fail "the node stopped"; }
  sleep 0.5
done
grep -q 'xh/t01/v01' "$work/status.txt" || { cat "$work/status.txt" "$work/node.log" >&2; fail "civsync status did not answer for xh/t01/v01"; }
head -3 "$work/status.txt"

echo "== reinstalling (an upgrade) keeps the office's data"
dpkg -i "$deb" >/dev/null
[ -f "$data_dir/civsync.toml" ] && [ -f "$data_dir/pki/node.key" ] || fail "the upgrade lost the data directory"
kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=""

echo "== purging the package keeps the data directory"
dpkg --purge civsync >/dev/null
[ ! -e /usr/bin/civsync ] || fail "purge left /usr/bin/civsync"
[ -f "$data_dir/civsync.toml" ] || fail "purge deleted $data_dir"
echo "check-package: ok ($(basename "$deb"))"
