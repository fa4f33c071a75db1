#!/usr/bin/env bash
# Builds the Debian package of a build folder and checks it (docs/packaging.md): lintian
# without errors (warnings and info tags are printed, not failed on), stripped executables,
# and `appstreamcli validate-tree` and desktop-file-validate clean on the unpacked tree.
# A manual step, or CTest package_deb with -DMYTHOS_TEST_DEB=ON.
# Usage: check_deb.sh BUILD_DIR
set -euo pipefail

build="$(cd "$1" && pwd -P)"
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=validators.sh
source "$(dirname "${BASH_SOURCE[0]}")/validators.sh"

cd "$build"
rm -f mythos-explorer_*.deb
echo "== cpack -G DEB (in $build)"
cpack -G DEB > cpack-deb.log 2>&1 || { cat cpack-deb.log; fail "cpack -G DEB"; }
debs=(mythos-explorer_*.deb)
[[ -f "${debs[0]}" ]] || { cat cpack-deb.log; fail "cpack wrote no mythos-explorer_*.deb"; }
deb="$build/${debs[0]}"
echo "$deb"
dpkg-deb --field "$deb" Package Version Maintainer Section Depends Suggests

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mythos-deb.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
for exe in "$tmp"/root/usr/bin/*; do
  file -b "$exe" | grep -q ', stripped' || fail "not stripped: ${exe#"$tmp"/root}"
done
echo "ok: executables stripped"

if command -v lintian > /dev/null; then
  echo "== lintian --info $(basename "$deb")"
  lintian --info "$deb" | tee "$tmp/lintian.out" || true
  if grep -q '^E: ' "$tmp/lintian.out"; then fail "lintian reports errors"; fi
  echo "ok: lintian reports no errors"
else
  echo "SKIP: lintian not installed (apt-get install lintian)"
fi
validate_tree "$tmp/root"
echo "PASS: $deb"
