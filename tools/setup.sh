#!/usr/bin/env bash
# One entry point for a fresh Debian machine (run as root, from anywhere):
#   tools/setup.sh run    install what is missing, build, start Mythos Explorer
#   tools/setup.sh test   install what is missing, build, run every test
# Environment: BUILD_DIR (default build/release), JOBS (default nproc), WERROR=1 to make
# warnings errors (CI sets it).
set -euo pipefail

mode="${1:-}"
case "$mode" in run|test) ;; *) echo "usage: $0 run|test" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build/release}"
jobs="${JOBS:-$(nproc)}"

packages=(
  build-essential cmake ninja-build pkg-config
  qt6-base-dev libqt6opengl6-dev qt6-charts-dev qt6-svg-dev libgl-dev
  libdnnl-dev ocl-icd-opencl-dev libeigen3-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  xvfb xauth
  python3 python3-torch
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== configuring $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DMYTHOS_WERROR="$([[ "${WERROR:-0}" == 1 ]] && echo ON || echo OFF)"
echo "== building ($jobs jobs)"
cmake --build "$build" -j "$jobs"

if [[ "$mode" == test ]]; then
  export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
  echo "== testing"
  ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600
  exit $?
fi

if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
  exec "$build/app/mythos-explorer" "${@:2}"
fi
# No display (a server or a container): render the window once to a PNG instead.
shot="$build/mythos-explorer.png"
"$build/app/mythos-explorer" --screenshot "$shot" "${@:2}"
echo "No display found: the window was rendered to $shot (run tools/setup.sh run on a desktop to use it)."
