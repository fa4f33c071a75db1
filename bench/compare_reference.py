#!/usr/bin/python3
"""Times the PyTorch reference (kyegomez/OpenMythos, open_mythos/main.py) and the C++ engine
(mythos-cli bench --json) on the same checkpoints, in one run, and prints one table of both
and their ratio.

    /usr/bin/python3 bench/compare_reference.py --reference ~/src/OpenMythos \\
        --cli build/release/app/mythos-cli \\
        --models tests/data/tiny_mla,../shared/golden/readme_mla,../shared/golden/readme_gqa

The reference is loaded from --reference (a checkout holding open_mythos/main.py), else from
$OPENMYTHOS_SRC, else from an installed `open_mythos` package. Only main.py is loaded (the
package's __init__ also imports a HuggingFace tokenizer that timing does not need).
flash_attn must not be installed (the reference then takes its plain attention path); the
script refuses to run otherwise. Nothing of the reference is stored in this repository.

Both sides: batch 1, fp32, `--threads` threads, a seeded random prompt of `--prompt-len`
tokens; prefill = one forward at each loop count (median of `--repeats` after a warm-up);
decode = `--decode` single-token steps with a KV cache after the prompt, tokens/s of the
steps alone (median over repeats). Both are timed `--rounds` times, back to back and in
alternating order, and the table gives the median of the rounds and the lowest round's ratio.
"""

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))

import torch  # noqa: E402

import mythos_torch as mt  # noqa: E402  (safetensors reader)


def load_reference(src):
    src = src or os.environ.get("OPENMYTHOS_SRC")
    if src:
        path = os.path.join(src, "open_mythos", "main.py")
        if not os.path.isfile(path):
            sys.exit(f"compare_reference: {path} not found (--reference must be an OpenMythos checkout)")
        spec = importlib.util.spec_from_file_location("open_mythos_main", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        try:
            mod = importlib.import_module("open_mythos.main")
        except ImportError as e:
            sys.exit(f"compare_reference: cannot import open_mythos ({e}); pass --reference DIR")
    if getattr(mod, "_HAS_FLASH_ATTN", False):
        sys.exit("compare_reference: flash_attn is installed; the comparison needs the reference's plain attention")
    return mod


def reference_model(ref, folder):
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    fields = {k: v for k, v in raw.items() if k in ref.MythosConfig.__dataclass_fields__}
    model = ref.OpenMythos(ref.MythosConfig(**fields))
    tensors, _ = mt.read_safetensors(os.path.join(folder, "model.safetensors"))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith("freqs_cis") and k != "head.weight"]
    if missing or unexpected:
        sys.exit(f"compare_reference: {folder}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return model


def median_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_reference(model, args, loops, decode_loops):
    g = torch.Generator().manual_seed(0)
    V = model.cfg.vocab_size
    ids = torch.randint(0, V, (1, args.prompt_len), generator=g)
    out = {"prefill_ms": {}, "decode_tokens_per_s": {}}
    with torch.no_grad():
        for L in loops:
            out["prefill_ms"][L] = median_ms(lambda: model(ids, n_loops=L), args.repeats)
        for L in decode_loops:
            def decode():
                cache = {}
                logits = model(ids, n_loops=L, kv_cache=cache, start_pos=0)
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                t0 = time.perf_counter()
                for s in range(args.decode):
                    logits = model(nxt, n_loops=L, kv_cache=cache, start_pos=args.prompt_len + s)
                    nxt = logits[:, -1].argmax(-1, keepdim=True)
                return time.perf_counter() - t0
            decode()
            secs = statistics.median(decode() for _ in range(args.repeats))
            out["decode_tokens_per_s"][L] = args.decode / secs
    return out


def time_engine(folder, args, loops, decode_loops):
    cmd = [args.cli, "bench", "--model", folder, "--prompt-len", str(args.prompt_len),
           "--loops", ",".join(map(str, loops)), "--decode", str(args.decode),
           "--decode-loops", ",".join(map(str, decode_loops)), "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--json"]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    j = json.loads(res.stdout)
    return {"prefill_ms": {int(k): v for k, v in j["prefill_ms"].items()},
            "decode_tokens_per_s": {int(k): v for k, v in j["decode_tokens_per_s"].items()}}


def blas_libraries():
    """The BLAS libraries this process has loaded (after the reference ran): the reference's
    prefill speed depends on it several times over (bench/NOTES.md), so the table says which."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if len(line.split()) >= 6}
    except OSError:
        return []
    return sorted(p for p in paths if "blas" in os.path.basename(p).lower() or "mkl" in os.path.basename(p).lower())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", help="OpenMythos checkout (default: $OPENMYTHOS_SRC or the installed package)")
    ap.add_argument("--cli", default=os.path.join(os.path.dirname(HERE), "build", "release", "app", "mythos-cli"))
    ap.add_argument("--models", required=True, help="comma-separated model folders")
    ap.add_argument("--loops", default="1,4,8,16")
    ap.add_argument("--decode-loops", default="4,16")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3,
                    help="reference and engine timed back to back this many times (alternating which goes first)")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.cli):
        sys.exit(f"compare_reference: {args.cli} not found (build it, or pass --cli)")
    loops = [int(x) for x in args.loops.split(",")]
    decode_loops = [int(x) for x in args.decode_loops.split(",")]
    if args.rounds < 1:
        sys.exit("compare_reference: --rounds must be at least 1")
    if not set(decode_loops) <= set(loops):
        sys.exit("compare_reference: --decode-loops must be among --loops (decode is timed after a prefill "
                 "at the same loop count)")
    torch.set_num_threads(args.threads)
    ref = load_reference(args.reference)

    # Both sides move with this machine's load from one minute to the next, so they are timed
    # in rounds, each model's reference and engine back to back (the order alternating): a
    # ratio compares two measurements taken under the same conditions.
    folders = args.models.split(",")
    models = {f: reference_model(ref, f) for f in folders}
    per_round = {f: [] for f in folders}
    for rnd in range(args.rounds):
        for folder in folders:
            if rnd % 2 == 0:
                r = time_reference(models[folder], args, loops, decode_loops)
                e = time_engine(folder, args, loops, decode_loops)
            else:
                e = time_engine(folder, args, loops, decode_loops)
                r = time_reference(models[folder], args, loops, decode_loops)
            per_round[folder].append({"reference": r, "engine": e})

    def summary(folder, kind, L):
        """Median reference, median engine, median and lowest per-round speed-up."""
        ref_v = [x["reference"][kind][L] for x in per_round[folder]]
        eng_v = [x["engine"][kind][L] for x in per_round[folder]]
        ratios = [a / b if kind == "prefill_ms" else b / a for a, b in zip(ref_v, eng_v)]
        return statistics.median(ref_v), statistics.median(eng_v), statistics.median(ratios), min(ratios)

    rows, results = [], {}
    for folder in folders:
        name = os.path.basename(os.path.normpath(folder))
        results[name] = {"rounds": per_round[folder]}
        for L in loops:
            a, b, ratio, low = summary(folder, "prefill_ms", L)
            rows.append((name, f"prefill T={args.prompt_len}, {L} loops", f"{a:.2f} ms", f"{b:.2f} ms", ratio, low))
        for L in decode_loops:
            a, b, ratio, low = summary(folder, "decode_tokens_per_s", L)
            rows.append((name, f"decode, {L} loops", f"{a:.1f} tok/s", f"{b:.1f} tok/s", ratio, low))

    blas = blas_libraries()
    print(f"batch 1, fp32, {args.threads} threads, median of {args.repeats} after a warm-up, in {args.rounds} "
          f"rounds (times: median over rounds; speed-up: median and lowest of the rounds' ratios); "
          f"PyTorch {torch.__version__} with BLAS {', '.join(blas) or 'unknown'}\n")
    print("| model | measure | reference | engine | speed-up | lowest round |")
    print("|---|---|---:|---:|---:|---:|")
    for name, what, a, b, ratio, low in rows:
        print(f"| {name} | {what} | {a} | {b} | {ratio:.1f}x | {low:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "blas": blas, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
