#!/usr/bin/env bash
# One entry point for a fresh Debian machine (run as root, from anywhere):
#   tools/setup.sh run    install what is missing, build, start Mythos Explorer
#   tools/setup.sh test   install what is missing, build, run every test
#   tools/setup.sh sanitize   the same with clang's AddressSanitizer + UBSan (the asan preset,
#                         build/asan): every test again, and any sanitizer report fails it
#                         (CI runs it after `test`; docs/sanitizers.md)
# Environment: BUILD_DIR (default build/release, build/asan for sanitize), JOBS (default
# nproc), WERROR=1 to make warnings errors (CI sets it).
set -euo pipefail

mode="${1:-}"
case "$mode" in run|test|sanitize) ;; *) echo "usage: $0 run|test|sanitize" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "$mode" == sanitize ]]; then
  build="${BUILD_DIR:-$root/build/asan}"
else
  build="${BUILD_DIR:-$root/build/release}"
fi
jobs="${JOBS:-$(nproc)}"

packages=(
  build-essential cmake ninja-build pkg-config
  qt6-base-dev libqt6opengl6-dev qt6-charts-dev qt6-svg-dev libgl-dev
  libdnnl-dev ocl-icd-opencl-dev libeigen3-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  xvfb xauth
  python3 python3-torch python3-regex libpcre2-dev
  clang-14 libclang-rt-14-dev llvm-14
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

if [[ "$mode" == sanitize ]]; then
  # The asan preset (clang 14, ASan + UBSan, GUI on, no benchmarks), into $build.
  echo "== configuring $build (AddressSanitizer + UBSan)"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
    -DMYTHOS_SANITIZE=ON -DMYTHOS_BUILD_GUI=ON -DMYTHOS_BUILD_BENCH=OFF \
    -DMYTHOS_WERROR="$([[ "${WERROR:-0}" == 1 ]] && echo ON || echo OFF)"
  echo "== building ($jobs jobs)"
  cmake --build "$build" -j "$jobs"
  # Reports go to files, so that one inside a test that expects a failing exit (the hostile
  # corpus, the CLI's error tests) is still seen: any file there fails the run.
  logs="$build/sanitizer-logs"
  rm -rf "$logs"
  mkdir -p "$logs"
  export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:log_path=$logs/asan"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
  export LSAN_OPTIONS="suppressions=$root/tools/sanitizers/lsan.supp:print_suppressions=0"
  export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)}"
  echo "== testing under AddressSanitizer + UBSan"
  rc=0
  ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 1500 || rc=$?
  if compgen -G "$logs/*" > /dev/null; then
    echo "== sanitizer reports (each fails the run):"
    for f in "$logs"/*; do echo "--- $f"; cat "$f"; done
    exit 1
  fi
  echo "== no sanitizer reports"
  exit $rc
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
