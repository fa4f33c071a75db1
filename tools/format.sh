#!/usr/bin/env bash
# Formats the project's C++ sources with .clang-format (clang-format 14, Debian package
# clang-format-14). `tools/format.sh` rewrites them in place; `tools/format.sh --check`
# changes nothing and lists the files that are not formatted (exit 1 if any).
set -euo pipefail
cd "$(dirname "$0")/.."
fmt="$(command -v clang-format-14 || command -v clang-format || true)"
[[ -n "$fmt" ]] || { echo "clang-format not found (apt-get install clang-format-14)" >&2; exit 2; }
mapfile -t files < <(git ls-files -- '*.cpp' '*.h' | grep -v -e '^tests/data/' -e '^tests/fuzz/corpus/')
if [[ "${1:-}" == --check ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$fmt" --dry-run --Werror "$f" > /dev/null 2>&1; then echo "$f"; bad=1; fi
  done
  exit "$bad"
fi
"$fmt" -i "${files[@]}"
