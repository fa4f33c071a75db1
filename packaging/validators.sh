# Sourced by check_deb.sh and test_install.sh: the desktop-file and AppStream checks of an
# installed tree, each skipped with a message when its validator is not installed.
# validate_tree ROOT: ROOT holds usr/share/applications and usr/share/metainfo (ROOT/usr is
# the prefix). Calls fail() (defined by the caller) on the first problem.
validate_tree() {
  local root="$1"
  if command -v desktop-file-validate > /dev/null; then
    echo "== desktop-file-validate"
    desktop-file-validate "$root"/usr/share/applications/*.desktop || fail "desktop-file-validate"
    echo "ok: desktop-file-validate"
  else
    echo "SKIP: desktop-file-validate not installed (apt-get install desktop-file-utils)"
  fi
  if command -v appstreamcli > /dev/null; then
    echo "== appstreamcli validate-tree --no-net $root"
    appstreamcli validate-tree --no-net "$root" || fail "appstreamcli validate-tree"
  else
    echo "SKIP: appstreamcli not installed (apt-get install appstream)"
  fi
}
