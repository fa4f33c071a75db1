#!/usr/bin/env bash
# Builds the libFuzzer programs (clang 14, ASan + UBSan, tests/fuzz) and runs each for
# SECONDS (default 60) on a copy of its seed corpus, one after the other; prints each
# fuzzer's executions and whether it found a crash. An input that crashed a fuzzer is
# copied to tests/fuzz/regressions/<name>/, where the normal test suite
# (mythos_fuzz_regressions) runs it from then on. Exits 1 when any fuzzer found one.
#
#   tools/run_fuzzers.sh [SECONDS] [BUILD_DIR] [NAME ...]
#
# Needs clang-14 and libclang-rt-14-dev (tools/setup.sh installs them). docs/fuzzing.md.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(realpath -m "${2:-$root/build/fuzz}")" # absolute: the fuzzers run from their crash folders
shift $(($# > 2 ? 2 : $#))
names=("$@")
((${#names[@]})) || names=(safetensors config tokenizer tiktoken trace prompts ids variant)

echo "== configuring $build (clang, libFuzzer)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DMYTHOS_BUILD_GUI=OFF -DMYTHOS_BUILD_BENCH=OFF > /dev/null
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
echo "== building ${targets[*]}"
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target "${targets[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
found=0
printf '%-12s %14s %10s  %s\n' fuzzer executions "exec/s" result
for n in "${names[@]}"; do
  corpus="$work/$n"
  mkdir -p "$corpus" "$work/crash-$n"
  cp "$root/tests/fuzz/corpus/$n/"* "$corpus/"
  log="$work/$n.log"
  rc=0
  (cd "$work/crash-$n" && "$build/tests/fuzz/fuzz_$n" "$corpus" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -dict="$root/tests/fuzz/json.dict" -print_final_stats=1 \
    -artifact_prefix="$work/crash-$n/") > "$log" 2>&1 || rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  speed="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  result=clean
  if ((rc != 0)) || compgen -G "$work/crash-$n/*" > /dev/null; then
    found=1
    result="FOUND A CRASH (exit $rc): $(grep -m1 -E 'ERROR|==ABORTING|deadly signal|timeout' "$log" || true)"
    mkdir -p "$root/tests/fuzz/regressions/$n"
    for f in "$work/crash-$n"/*; do
      [[ -e "$f" ]] && cp "$f" "$root/tests/fuzz/regressions/$n/" && result+=" -> tests/fuzz/regressions/$n/$(basename "$f")"
    done
    tail -40 "$log"
  fi
  printf '%-12s %14s %10s  %s\n' "$n" "$execs" "$speed" "$result"
done
exit $found
