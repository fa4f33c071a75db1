#!/usr/bin/python3
"""Record a trace (schema ``mythos-trace/1``, docs/trace-schema.md) from a PyTorch model.

    trace_pytorch.py --model DIR --ids "1,2,3;4,5,6" --loops 8 [--kv-cache] --out trace.json

Why hooks instead of calling into our own implementation: the point of a PyTorch trace
is to compare the app with *another* implementation, typically the public reference
model object, possibly on a GPU. So ``trace_model`` only relies on the reference's
module names and call pattern:

  * ``model.recurrent.injection`` is called once per loop as ``injection(h, e, y)`` and
    returns the new state h_t: gives h_t and h_{t-1} (h_{-1} = prelude output) for
    ``h_norm`` / ``h_delta``, and ``get_A()`` / ``B`` for the injection fields;
  * ``model.recurrent.act`` is called once per loop on h_t and returns p_t (B, T): gives
    the halting probabilities and the number of executed loops;
  * ``model.recurrent.block.ffn`` (the MoE) is called once per loop; its ``router`` and
    ``router_bias`` reproduce the selection and gates exactly as the block computes them;
  * ``model.cfg`` is the MythosConfig.

ACT weights, cumulative probabilities and halting loops are then derived from p with the
reference's rule (in fp32), so the trace also documents what the model computed
internally. Nothing in the model is modified; hooks are removed afterwards.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

SCHEMA = "mythos-trace/1"


def _fnv1a(data: bytes, h: int) -> int:
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def weights_hash(model) -> str:
    """The app's weights hash (core/src/weights.cpp hashWeights): FNV-1a 64 over the
    stored tensors in name order (head.weight and RoPE buffers excluded), each name's
    bytes then its fp32 values; tensors above 2^20 elements are sampled with a stride.
    Equal hashes mean the app and this trace saw the same weights."""
    h = 0xCBF29CE484222325
    sd = model.state_dict()
    for name in sorted(k for k in sd if k not in ("head.weight", "freqs_cis", "freqs_cis_mla")):
        t = sd[name].detach().to("cpu", torch.float32).reshape(-1)
        n = t.numel()
        if n > (1 << 20):
            t = t[:: n // (1 << 18)]
        h = _fnv1a(name.encode("utf-8"), h)
        h = _fnv1a(t.contiguous().numpy().tobytes(), h)
    return f"{h:016x}"


def _finite(x):
    """Nested lists with non-finite floats replaced by None (JSON has no inf/nan)."""
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _config_dict(cfg) -> dict:
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return {k: v for k, v in vars(cfg).items() if not k.startswith("_")}


def trace_model(model, ids, n_loops=None, kv_cache=None, start_pos=0, *, include_logits=True,
                model_name="pytorch", pieces=None, hash_weights=True) -> dict:
    """Runs ``model(ids, n_loops=n_loops, kv_cache=kv_cache, start_pos=start_pos)`` once
    with hooks and returns the trace as a dict ready for json.dump. ``ids``: (B, T) nested
    lists or a tensor. ``kv_cache``: None, or a dict (usually {}) that the model fills;
    the trace then carries the ``kv`` ledger of its contents after the call. Works with
    any device; everything recorded is copied to the CPU as fp32."""
    cfg = model.cfg
    rec = model.recurrent
    ffn = rec.block.ffn
    device = next(model.parameters()).device
    ids_t = torch.as_tensor(ids, dtype=torch.long, device=device)
    if ids_t.dim() != 2:
        raise ValueError(f"ids must be (B, T), got shape {tuple(ids_t.shape)}")
    B, T = ids_t.shape
    k = int(cfg.n_experts_per_tok)

    p_list, h_norm, h_delta = [], [], []
    r_logits, r_ids, r_gates = [], [], []

    def on_injection(_mod, inputs, out):
        h_prev = inputs[0]
        h_norm.append(out.detach().float().norm(dim=-1).cpu())
        h_delta.append((out.detach().float() - h_prev.detach().float()).norm(dim=-1).cpu())

    def on_act(_mod, _inputs, out):
        p_list.append(out.detach().float().cpu())

    def on_ffn(mod, inputs, _out):
        x = inputs[0]
        flat = x.reshape(-1, x.shape[-1])
        logits = mod.router(flat)  # same call and shape as inside the block: same bits
        scores = torch.softmax(logits, dim=-1)
        _, sel = (logits + mod.router_bias).topk(k, dim=-1)
        g = scores.gather(-1, sel)
        g = g / g.sum(-1, keepdim=True)
        r_logits.append(logits.detach().float().cpu().view(B, T, -1))
        r_ids.append(sel.cpu().view(B, T, k))
        r_gates.append(g.detach().float().cpu().view(B, T, k))

    hooks = [rec.injection.register_forward_hook(on_injection),
             rec.act.register_forward_hook(on_act),
             ffn.register_forward_hook(on_ffn)]
    was_training = model.training
    model.eval()
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = model(ids_t, n_loops=n_loops, kv_cache=kv_cache, start_pos=start_pos)
        if logits.is_cuda:
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - t0) * 1000.0
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)

    L = len(p_list)
    if not (len(h_norm) == len(r_ids) == L):
        raise RuntimeError(f"inconsistent hook counts (act {L}, injection {len(h_norm)}, "
                           f"moe {len(r_ids)}): is this an OpenMythos-compatible model?")

    # The reference's ACT rule, replayed on the recorded probabilities.
    thr = float(cfg.act_threshold)
    cum = torch.zeros(B, T)
    halted = torch.zeros(B, T, dtype=torch.bool)
    cums, weights = [], []
    for p in p_list:
        running = (~halted).float()
        w = torch.where(cum + p >= thr, (1.0 - cum).clamp(min=0), p) * running
        cum = cum + p * running
        halted = halted | (cum >= thr)
        cums.append(cum)
        weights.append(w)
    stack = (lambda xs, *shape: torch.stack(xs) if xs else torch.zeros(0, *shape))
    P = stack(p_list, B, T)
    C = stack(cums, B, T)
    W = stack(weights, B, T)
    reached = C >= thr
    halt_loop = torch.where(reached.any(0), reached.float().argmax(0) + 1,
                            torch.zeros(B, T)).long() if L else torch.zeros(B, T, dtype=torch.long)

    inj = rec.injection
    A = inj.get_A().detach().float().cpu()
    rho = float(A.abs().max())
    n_loops_req = int(n_loops or cfg.max_loop_iters)
    trace = {
        "schema": SCHEMA,
        "model": model_name,
        "weights_hash": weights_hash(model) if hash_weights else "",
        "config": _config_dict(cfg),
        # What this run did, in the app's option names: the reference's behaviour.
        "options": {"act_final_remainder": False, "kv_layout": "reference", "weight_type": "f32"},
        "batch": int(B),
        "seq_len": int(T),
        "start_pos": int(start_pos),
        "n_loops": n_loops_req,
        "loops_executed": L,
        "ids": ids_t.cpu().tolist(),
        "act": {
            "threshold": thr,
            "p": P.tolist(),
            "cum_p": C.tolist(),
            "weight": W.tolist(),
            "halt_loop": halt_loop.tolist(),
            "weight_sum": W.sum(0).tolist(),
        },
        "h_norm": stack(h_norm, B, T).tolist(),
        "h_delta": stack(h_delta, B, T).tolist(),
        "routing": {
            "top_k": k,
            "n_experts": int(cfg.n_experts),
            "topk_ids": stack(r_ids, B, T, k).tolist(),
            "weights": stack(r_gates, B, T, k).tolist(),
            "router_logits": stack(r_logits, B, T, int(cfg.n_experts)).tolist(),
            "router_bias": ffn.router_bias.detach().float().cpu().tolist(),
        },
        "injection": {"A": A.tolist(), "B": inj.B.detach().float().cpu().tolist(), "rho_A": rho},
        "rho_A": rho,
        "vocab": int(cfg.vocab_size),
        "timings_ms": {"forward": elapsed},
    }
    if pieces is not None:
        trace["pieces"] = pieces
    if include_logits:
        trace["logits"] = logits.detach().float().cpu().tolist()
    if kv_cache is not None:
        trace["kv"] = kv_ledger(kv_cache, B)
    return _finite(trace)


def kv_ledger(cache: dict, batch: int) -> dict:
    """The cache as the app's ledger. The PyTorch cache *is* the reference layout, so the
    engine and reference byte counts are the same numbers."""
    entries, total = [], 0
    for key, tensors in cache.items():
        shapes = {n: {"shape": list(t.shape), "bytes": t.numel() * t.element_size()}
                  for n, t in tensors.items()}
        nbytes = sum(s["bytes"] for s in shapes.values())
        first = next(iter(tensors.values()))
        entries.append({"key": key, "positions": int(first.shape[1]), "bytes": nbytes,
                        "engine_bytes": nbytes, "tensors": shapes})
        total += nbytes
    return {"layout": "reference", "engine_layout": "reference", "batch": int(batch),
            "total_bytes": total, "engine_total_bytes": total, "entries": entries}


def parse_ids(text: str):
    """"1,2,3;4,5,6" -> [[1,2,3],[4,5,6]]; rows must have equal length (one batch)."""
    rows = [[int(v) for v in r.replace(" ", "").split(",") if v] for r in text.split(";") if r.strip()]
    if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
        raise ValueError(f"--ids: expected rows of equal length like '1,2,3;4,5,6', got {text!r}")
    return rows


def _pieces(folder: str, rows):
    """Token texts from the folder's character tokenizer.json, when it has one."""
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
        vocab = tok["vocab"] if tok.get("type") == "char" else None
    except (OSError, ValueError, KeyError):
        return None
    if not vocab:
        return None
    return [[vocab[i] if 0 <= i < len(vocab) else "" for i in r] for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write a mythos-trace/1 JSON from a PyTorch run.")
    ap.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    ap.add_argument("--ids", required=True, help='token ids, rows separated by ";" e.g. "1,2,3;4,5,6"')
    ap.add_argument("--loops", type=int, default=0, help="n_loops (0 = max_loop_iters)")
    ap.add_argument("--start-pos", type=int, default=0)
    ap.add_argument("--kv-cache", action="store_true", help="run with an empty KV cache (no early exit)")
    ap.add_argument("--no-logits", action="store_true", help="leave the optional logits out")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import mythos_torch as mt

    try:
        rows = parse_ids(args.ids)
        model = mt.load_model_folder(args.model)
        bad = [i for r in rows for i in r if not 0 <= i < model.cfg.vocab_size]
        if bad:
            raise ValueError(f"--ids: token {bad[0]} is outside [0, {model.cfg.vocab_size})")
        tr = trace_model(model, rows, args.loops or None, {} if args.kv_cache else None,
                         args.start_pos, include_logits=not args.no_logits,
                         model_name=args.model, pieces=_pieces(args.model, rows))
    except (ValueError, OSError) as e:
        print(f"trace_pytorch: error: {e}", file=sys.stderr)
        return 1
    mt.write_atomic(args.out, (json.dumps(tr, separators=(",", ":")) + "\n").encode("utf-8"))
    print(f"wrote {args.out}: batch {tr['batch']}, seq_len {tr['seq_len']}, "
          f"loops {tr['loops_executed']}/{tr['n_loops']}, rho(A) {tr['rho_A']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
