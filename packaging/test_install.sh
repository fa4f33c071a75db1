#!/usr/bin/env bash
# CTest package_install_tree (label package): installs the build into a temporary
# <tmp>/usr, as the .deb does under /usr, and from another directory checks that
#   - the files the package needs are there (docs, copyright, changelog, manual pages, desktop file,
#     metainfo, icon, demo models, the checkpoint converter) and the tokenizer test data
#     is not;
#   - `mythos-cli info` uses the installed demo model and says so;
#   - `mythos-explorer --screenshot` renders a PNG of the installed demo model (the model it
#     opened is read back from its settings file, kept in <tmp>);
#   - with the installed demo models moved away, neither falls back to the source tree's:
#     `mythos-cli info` fails saying the demo model was not found, and the window opens its
#     random-weight preset;
#   - desktop-file-validate and `appstreamcli validate-tree` are clean (each skipped with a
#     message when not installed).
# Usage: test_install.sh BUILD_DIR gui|nogui
set -euo pipefail

build="$(cd "$1" && pwd -P)"
gui="${2:-gui}"

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "== $*"; }
# shellcheck source=validators.sh
source "$(dirname "${BASH_SOURCE[0]}")/validators.sh"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mythos-install.XXXXXX")"
tmp="$(cd "$tmp" && pwd -P)"
trap 'rm -rf "$tmp"' EXIT
# An executable inside its build folder may use the source tree (mythos::buildSourceTree);
# the point here is one that is not.
case "$tmp/" in "$build/"*) fail "the temporary folder $tmp is inside the build folder $build" ;; esac

prefix="$tmp/usr"
note "cmake --install $build --prefix $prefix --strip"
cmake --install "$build" --prefix "$prefix" --strip > "$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }

share="$prefix/share/mythos-explorer"
doc="$prefix/share/doc/mythos-explorer"
expect=(
  "$prefix/bin/mythos-cli"
  "$share/models/demo_mla/config.json"
  "$share/models/demo_gqa/config.json"
  "$share/tools/export_checkpoint.py"
  "$share/tools/mythos_torch.py"
  "$doc/README.md"
  "$doc/copyright"
  "$doc/changelog.Debian.gz"
  "$doc/docs/engine.md"
  "$prefix/share/man/man1/mythos-cli.1.gz"
)
if [[ "$gui" == gui ]]; then
  expect+=(
    "$prefix/bin/mythos-explorer"
    "$prefix/share/applications/mythos-explorer.desktop"
    "$prefix/share/metainfo/io.mythosexplorer.mythosexplorer.metainfo.xml"
    "$prefix/share/icons/hicolor/scalable/apps/mythos-explorer.svg"
    "$prefix/share/man/man1/mythos-explorer.1.gz"
  )
fi
for f in "${expect[@]}"; do
  [[ -f "$f" ]] || fail "not installed: ${f#"$tmp"/}"
done
[[ -x "$share/tools/export_checkpoint.py" ]] || fail "export_checkpoint.py is not executable"
gzip -t "$doc/changelog.Debian.gz" || fail "changelog.Debian.gz is not gzip"
grep -q '^License: MIT$' "$doc/copyright" || fail "copyright does not name the MIT licence"
if [[ "$gui" == gui ]]; then
  grep -q '<project_license>MIT</project_license>' \
    "$prefix/share/metainfo/io.mythosexplorer.mythosexplorer.metainfo.xml" || fail "metainfo licence is not MIT"
fi
stray="$(find "$tmp" \( -name '*.tiktoken' -o -name 'gpt2_tokenizer.json' -o -path '*/tests/*' \) -print)"
[[ -z "$stray" ]] || fail "test data installed: $stray"
echo "ok: installed files"

# From another directory, with nothing of the build or source tree in the environment.
work="$tmp/work"
mkdir -p "$work" "$tmp/home" "$tmp/config"
cd "$work"
run_env=(env -u MYTHOS_EXPORT_TOOL HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" QT_QPA_PLATFORM=offscreen)
demo="$share/models/demo_mla"

note "$prefix/bin/mythos-cli info (in $work)"
"${run_env[@]}" "$prefix/bin/mythos-cli" info > "$tmp/info.out" 2>&1 || { cat "$tmp/info.out"; fail "mythos-cli info"; }
cat "$tmp/info.out"
grep -qF "using the bundled demo model $demo" "$tmp/info.out" || fail "mythos-cli info did not use the installed demo model $demo"
echo "ok: mythos-cli info uses the installed demo model"

settings="$tmp/config/MythosExplorer/mythos-explorer.conf"
opened() { sed -n 's/^last=//p' "$settings" 2>/dev/null | head -n 1; }
shot() { # shot FILE: the window's screenshot of its default model
  rm -f "$settings"
  "${run_env[@]}" "$prefix/bin/mythos-explorer" --screenshot "$1" > "$tmp/explorer.out" 2>&1 \
    || { cat "$tmp/explorer.out"; fail "mythos-explorer --screenshot $1"; }
  [[ -f "$1" ]] || fail "no screenshot $1"
  local size
  size="$(stat -c %s "$1")"
  ((size > 20000)) || fail "screenshot $1 is only $size bytes"
  echo "screenshot $1: $size bytes, model $(opened)"
}
if [[ "$gui" == gui ]]; then
  note "$prefix/bin/mythos-explorer --screenshot $tmp/shot.png (in $work)"
  shot "$tmp/shot.png"
  [[ "$(opened)" == "$demo" ]] || fail "mythos-explorer opened '$(opened)', not the installed demo model $demo"
  echo "ok: mythos-explorer --screenshot uses the installed demo model"
fi

# Without the installed demo models: no fallback to the source tree's.
mv "$share/models" "$tmp/models-aside"
note "mythos-cli info without the installed demo models"
if "${run_env[@]}" "$prefix/bin/mythos-cli" info > "$tmp/info2.out" 2>&1; then
  cat "$tmp/info2.out"; fail "mythos-cli info succeeded without the installed demo model (source tree fallback?)"
fi
cat "$tmp/info2.out"
grep -q "bundled demo model was not found" "$tmp/info2.out" || fail "mythos-cli info: unexpected error"
echo "ok: mythos-cli does not fall back to the source tree"
if [[ "$gui" == gui ]]; then
  note "mythos-explorer --screenshot without the installed demo models"
  shot "$tmp/shot2.png"
  [[ "$(opened)" == preset:* ]] || fail "mythos-explorer opened '$(opened)' without the installed demo model, not its preset"
  echo "ok: mythos-explorer does not fall back to the source tree"
fi
mv "$tmp/models-aside" "$share/models"

if [[ "$gui" == gui ]]; then validate_tree "$tmp"; fi
echo "PASS"
