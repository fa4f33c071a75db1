#!/usr/bin/python3
"""Record a trace (schema ``mythos-trace/1``, docs/trace-schema.md) from a PyTorch model.

    trace_pytorch.py --model DIR --ids "1,2,3;4,5,6" --loops 8 [--kv-cache] --out trace.json
        [--lens] [--attention [--attention-row B]] [--trajectory] [--intervene FILE.json]
        [--full-logits]

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

Inside the loop (docs/inside-the-loop.md; the optional trace parts ``lens``,
``attention``, ``trajectory`` and ``intervention`` of docs/trace-schema.md) uses the same
module names plus ``model.recurrent.norm`` (called once per loop: counts the loops),
``model.recurrent.block`` (its RoPE table and mask arguments, to re-run the coda on any
state), ``model.coda`` / ``model.norm`` / ``model.head``, the ``attn`` / ``attn.wo`` of every
block and the MoE's experts. ``deep_run`` runs every loop 1..K once with an empty KV cache
(the reference skips its early exit then; on one full-prompt pass the cache changes no
number, the test checks it); ``lens_of``, ``attention_of``, ``trajectory_of`` and
``run_intervened`` build on it. Interventions are applied by hooks that return modified
inputs or outputs (``_Hooks``), so they work on the reference model object as well.
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
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _config_dict(cfg) -> dict:
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return {k: v for k, v in vars(cfg).items() if not k.startswith("_")}


def trace_model(model, ids, n_loops=None, kv_cache=None, start_pos=0, *, include_logits=True,
                model_name="pytorch", pieces=None, hash_weights=True, intervention=None) -> dict:
    """Runs ``model(ids, n_loops=n_loops, kv_cache=kv_cache, start_pos=start_pos)`` once
    with hooks and returns the trace as a dict ready for json.dump. ``ids``: (B, T) nested
    lists or a tensor. ``kv_cache``: None, or a dict (usually {}) that the model fills;
    the trace then carries the ``kv`` ledger of its contents after the call. Works with
    any device; everything recorded is copied to the CPU as fp32. ``intervention``: an
    intervention object (docs/inside-the-loop.md) applied through hooks for this run; the
    trace then records the modified run (an ablated expert's gate as 0) and carries the
    object as ``intervention``."""
    cfg = model.cfg
    rec = model.recurrent
    ffn = rec.block.ffn
    ids_t, iv, patch_state = _prepare(model, ids, intervention, start_pos)
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
        # same call and shape as inside the block: same bits
        _, logits, sel, g = _routing(mod, inputs[0], k, hooks_iv.ablated_experts(hooks_iv.loop))
        r_logits.append(logits.detach().float().cpu().view(B, T, -1))
        r_ids.append(sel.cpu().view(B, T, k))
        r_gates.append(g.detach().float().cpu().view(B, T, k))

    # The intervention's hooks first: the recording hooks below see what they changed.
    hooks_iv = _Hooks(model, iv, start_pos=start_pos, patch_state=patch_state).__enter__()
    run_cache = kv_cache
    if iv and iv["exit"] is not None and kv_cache is None:
        run_cache = {}  # an exit runs every requested loop: no early exit
    hooks = [rec.injection.register_forward_hook(on_injection),
             rec.act.register_forward_hook(on_act),
             ffn.register_forward_hook(on_ffn)]
    was_training = model.training
    model.eval()
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = model(ids_t, n_loops=n_loops, kv_cache=run_cache, start_pos=start_pos)
        if logits.is_cuda:
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - t0) * 1000.0
    finally:
        for hk in hooks:
            hk.remove()
        hooks_iv.__exit__(None, None, None)
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
    if intervention is not None:
        trace["intervention"] = {k: v for k, v in intervention.items() if k != "_normalised"}
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


# ---------------------------------------------------------------------------
# Inside the loop: interventions, logit lens, attention, trajectories
# (docs/inside-the-loop.md; the JSON parts in docs/trace-schema.md)
# ---------------------------------------------------------------------------

INTERVENTION_SCHEMA = "mythos-intervention/1"
MAX_LOOPS = 65536  # kMaxLoops of the app: the most a request may ask for
_STAGES = ("prelude", "recurrent", "coda")


def _field_int(obj, key, where, lo=None, hi=None, default=None):
    """obj[key] as an int in [lo, hi) (hi None: no upper bound), or default when absent."""
    if key not in obj:
        return default
    v = obj[key]
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
        raise ValueError(f"intervention: field '{where}{key}' must be an integer, got {v!r}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v >= hi):
        span = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
        raise ValueError(f"intervention: field '{where}{key}' = {v} is outside {span}")
    return v


def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise ValueError(f"intervention: field '{where.rstrip('.') or 'intervention'}' must be "
                         f"an object, got {obj!r}")
    for k in obj:
        if k not in allowed:
            raise ValueError(f"intervention: unknown field '{where}{k}'")


def _char_tokenizer(folder):
    """text -> ids with the folder's character tokenizer.json (the bundled models' kind),
    or None when it has none. Unknown characters become the "unk" id, or are an error."""
    path = os.path.join(folder, "tokenizer.json") if folder else ""
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(tok, dict) or tok.get("type") != "char" or not isinstance(tok.get("vocab"), list):
        return None
    index = {}
    for i, piece in enumerate(tok["vocab"]):
        index.setdefault(piece, i)
    unk = tok.get("unk")

    def encode(text):
        out = []
        for ch in text:
            if ch in index:
                out.append(index[ch])
            elif isinstance(unk, int):
                out.append(unk)
            else:
                raise ValueError(f"intervention: field 'patch.prompt': the tokenizer has no "
                                 f"token for the character {ch!r}")
        return out

    return encode


def parse_intervention(obj, cfg, tokenize=None) -> dict:
    """Checks an intervention object (docs/inside-the-loop.md, "Interventions") against the
    config and returns it normalised: every field present, loops as ints (0 = every loop),
    ``exit`` as {"loop": k} or {"at": "convergence"} or None, ``patch`` with its source
    ``ids`` (a ``"prompt"`` is tokenized with ``tokenize``, text -> ids; without one it is
    an error) and ``source_token``. Unknown fields, wrong types and indices outside the
    config raise ValueError naming the field. Indices that depend on the input (the patch
    positions) are checked when the run starts (``run_intervened``)."""
    _check_keys(obj, ("schema", "name", "ablate_experts", "ablate_heads", "exit",
                      "injection_off_after", "lora_scale_zero", "loop_shift", "patch"), "")
    iv = {"_normalised": True, "name": "", "ablate_experts": [], "ablate_heads": [], "exit": None,
          "injection_off_after": None, "lora_scale_zero": False, "loop_shift": 0, "patch": None}
    if "schema" in obj and obj["schema"] != INTERVENTION_SCHEMA:
        raise ValueError(f"intervention: field 'schema' must be {INTERVENTION_SCHEMA!r}, "
                         f"got {obj['schema']!r}")
    if "name" in obj:
        if not isinstance(obj["name"], str):
            raise ValueError(f"intervention: field 'name' must be a string, got {obj['name']!r}")
        iv["name"] = obj["name"]
    for key in ("ablate_experts", "ablate_heads"):
        if key in obj and not isinstance(obj[key], list):
            raise ValueError(f"intervention: field '{key}' must be an array, got {obj[key]!r}")
    for i, a in enumerate(obj.get("ablate_experts", [])):
        w = f"ablate_experts[{i}]."
        _check_keys(a, ("expert", "loop"), w)
        if "expert" not in a:
            raise ValueError(f"intervention: field '{w}expert' is missing")
        iv["ablate_experts"].append({"expert": _field_int(a, "expert", w, 0, int(cfg.n_experts)),
                                     "loop": _field_int(a, "loop", w, 0, MAX_LOOPS + 1, 0)})
    layers = {"prelude": int(cfg.prelude_layers), "recurrent": 1, "coda": int(cfg.coda_layers)}
    for i, a in enumerate(obj.get("ablate_heads", [])):
        w = f"ablate_heads[{i}]."
        _check_keys(a, ("stage", "layer", "head", "loop"), w)
        if "head" not in a:
            raise ValueError(f"intervention: field '{w}head' is missing")
        stage = a.get("stage", "recurrent")
        if stage not in _STAGES:
            raise ValueError(f"intervention: field '{w}stage' must be one of "
                             f"{', '.join(_STAGES)}, got {stage!r}")
        if layers[stage] == 0:
            raise ValueError(f"intervention: field '{w}stage': the model has no {stage} layers")
        entry = {"stage": stage, "layer": _field_int(a, "layer", w, 0, layers[stage], 0),
                 "head": _field_int(a, "head", w, 0, int(cfg.n_heads)),
                 "loop": _field_int(a, "loop", w, 0, MAX_LOOPS + 1, 0)}
        if stage != "recurrent" and entry["loop"] != 0:
            raise ValueError(f"intervention: field '{w}loop' applies to the recurrent stage only")
        iv["ablate_heads"].append(entry)
    if "exit" in obj:
        ex = obj["exit"]
        _check_keys(ex, ("loop", "at"), "exit.")
        if ("loop" in ex) == ("at" in ex):
            raise ValueError("intervention: field 'exit' needs exactly one of 'loop' and 'at'")
        if "at" in ex:
            if ex["at"] != "convergence":
                raise ValueError(f"intervention: field 'exit.at' must be \"convergence\", "
                                 f"got {ex['at']!r}")
            iv["exit"] = {"at": "convergence"}
        else:
            iv["exit"] = {"loop": _field_int(ex, "loop", "exit.", 1, MAX_LOOPS + 1)}
    iv["injection_off_after"] = _field_int(obj, "injection_off_after", "", 0, MAX_LOOPS + 1)
    if "lora_scale_zero" in obj:
        if not isinstance(obj["lora_scale_zero"], bool):
            raise ValueError(f"intervention: field 'lora_scale_zero' must be true or false, "
                             f"got {obj['lora_scale_zero']!r}")
        iv["lora_scale_zero"] = obj["lora_scale_zero"]
    # Loop 0 always runs, so a negative shift could never run: refused here.
    iv["loop_shift"] = _field_int(obj, "loop_shift", "", 0, MAX_LOOPS + 1, 0)
    if "patch" in obj:
        p = obj["patch"]
        _check_keys(p, ("token", "loop", "ids", "prompt", "source_token"), "patch.")
        for need in ("token", "loop"):
            if need not in p:
                raise ValueError(f"intervention: field 'patch.{need}' is missing")
        if ("ids" in p) == ("prompt" in p):
            raise ValueError("intervention: field 'patch' needs exactly one of 'ids' and 'prompt'")
        token = _field_int(p, "token", "patch.", 0, int(cfg.max_seq_len))
        loop = _field_int(p, "loop", "patch.", 1, MAX_LOOPS + 1)
        if "prompt" in p:
            if not isinstance(p["prompt"], str):
                raise ValueError(f"intervention: field 'patch.prompt' must be a string, "
                                 f"got {p['prompt']!r}")
            if tokenize is None:
                raise ValueError("intervention: field 'patch.prompt' needs a character "
                                 "tokenizer.json in the model folder; use 'ids'")
            src = list(tokenize(p["prompt"]))
        else:
            src = p["ids"]
            if not isinstance(src, list):
                raise ValueError(f"intervention: field 'patch.ids' must be an array of token "
                                 f"ids, got {src!r}")
            src = [_field_int({"ids": v}, "ids", "patch.", 0, int(cfg.vocab_size)) for v in src]
        if not src or len(src) > int(cfg.max_seq_len):
            raise ValueError(f"intervention: field 'patch.ids' must hold 1..{cfg.max_seq_len} "
                             f"tokens, got {len(src)}")
        stok = _field_int(p, "source_token", "patch.", 0, len(src), token)
        if stok >= len(src):
            raise ValueError(f"intervention: field 'patch.source_token' = {stok} is outside "
                             f"[0, {len(src)}) (the source prompt's length)")
        iv["patch"] = {"token": token, "loop": loop, "ids": src, "source_token": stok}
    return iv


def _as_intervention(model, intervention):
    if intervention is None:
        return None
    if intervention.get("_normalised"):
        return intervention
    return parse_intervention(intervention, model.cfg)


def _routing(mod, x, k, ablated=()):
    """The MoE's routing of x (B, T, D) as the block computes it: unbiased logits, the
    selection by biased logits, and the gates renormalised over the selected experts that
    are not in ``ablated`` (0 for the ablated ones; all 0 when every selected is)."""
    flat = x.reshape(-1, x.shape[-1])
    logits = mod.router(flat)
    scores = torch.softmax(logits, dim=-1)
    _, sel = (logits + mod.router_bias).topk(k, dim=-1)
    g = scores.gather(-1, sel)
    if ablated:
        keep = ~torch.isin(sel, torch.tensor(sorted(ablated), device=sel.device))
        g = g * keep.to(g.dtype)
        s = g.sum(-1, keepdim=True)
        g = torch.where(s > 0, g / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(g))
    else:
        g = g / g.sum(-1, keepdim=True)
    return flat, logits, sel, g


def _moe_with_gates(mod, flat, sel, g):
    """The MoE output for a given selection and gates, with the module's own experts (in
    expert order, then the shared experts, as the block sums them)."""
    out = torch.zeros_like(flat)
    for e, expert in enumerate(mod.routed_experts):
        tok, slot = (sel == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        gate = g[tok, slot]
        live = gate != 0
        tok, gate = tok[live], gate[live]
        if tok.numel() == 0:
            continue
        out = out.index_add(0, tok, expert(flat[tok]) * gate.unsqueeze(-1))
    for shared in mod.shared_experts:
        out = out + shared(flat)
    return out


class _Hooks:
    """Forward hooks that apply an intervention to the model and record what the lens,
    attention and trajectory need. Loop numbers are counted with a forward pre-hook on
    ``model.recurrent.norm`` (called once per loop, before the block): ``loop`` is the
    1-based loop being computed. ``states`` collects h_t as it leaves
    ``model.recurrent.injection`` (after a patch), ``freqs`` / ``mask`` the arguments the
    recurrent block receives, so the coda can be re-run on any state (the state lens).
    Attention probabilities are taken from the one softmax an attention module computes
    per call (``torch.nn.functional.softmax``, ``torch.softmax`` or ``Tensor.softmax``,
    wrapped only while inside an attention module): the model's own numbers, no re-derivation.
    Use as a context manager; every hook and wrapper is removed on exit."""

    def __init__(self, model, iv=None, *, start_pos=0, patch_state=None, attention_row=None):
        self.model = model
        self.iv = iv
        self.start_pos = start_pos
        self.patch_state = patch_state
        self.attention_row = attention_row
        self.sites = []
        self.loop = 0
        self.states = []
        self.e = self.h_prev = self.freqs = self.mask = None
        self._handles = []
        self._inside = None     # (stage, layer, loop) of the attention module running
        self._captured = False
        self._capture_on = attention_row is not None
        self._saved = None
        self.exit_loops = None  # (B, T) exit loop per position when exit applied

    # -- helpers --------------------------------------------------------------------
    def ablated_experts(self, loop):
        if not self.iv:
            return set()
        return {a["expert"] for a in self.iv["ablate_experts"] if a["loop"] in (0, loop)}

    def coda_logits(self, x):
        """head(norm(coda(x))) with the arguments the model's blocks received."""
        was = self._capture_on
        self._capture_on = False
        try:
            for layer in self.model.coda:
                x = layer(x, self.freqs, self.mask)
            return self.model.head(self.model.norm(x))
        finally:
            self._capture_on = was

    # -- hooks ------------------------------------------------------------------------
    def _on_recurrent_pre(self, _mod, args):
        self.loop = 0
        self.states = []
        self.h_prev, self.e = args[0], args[1]

    def _on_block_pre(self, _mod, args):
        self.freqs, self.mask = args[1], args[2] if len(args) > 2 else None

    def _on_norm_pre(self, _mod, args):
        self.loop += 1
        shift = self.iv["loop_shift"] if self.iv else 0
        if shift:
            if self.loop - 1 + shift < 0:
                raise ValueError(f"intervention: field 'loop_shift' = {shift} makes loop "
                                 f"{self.loop}'s loop-index embedding index negative")
            # The block's input is norm((h + LIE(j)) + e): recomputed with LIE(j + shift).
            import mythos_torch as mt
            h = self.h_prev
            rec = self.model.recurrent
            lie = mt.loop_index_vector(self.loop - 1 + shift, h.shape[-1],
                                       int(getattr(rec, "loop_dim", h.shape[-1] // 8)),
                                       h.device, h.dtype)
            return ((h + lie) + self.e,) + tuple(args[1:])
        return None

    def _on_ffn(self, mod, inputs, out):
        ablated = self.ablated_experts(self.loop)
        if not ablated:
            return None
        k = int(getattr(mod, "topk", self.model.cfg.n_experts_per_tok))
        flat, _, sel, g = _routing(mod, inputs[0], k, ablated)
        return _moe_with_gates(mod, flat, sel, g).view(out.shape)

    def _wo_pre(self, stage, heads_loops):
        def hook(mod, args):
            x = args[0]
            heads = [h for h, lp in heads_loops if stage != "recurrent" or lp in (0, self.loop)]
            if not heads:
                return None
            dv = mod.in_features // int(self.model.cfg.n_heads)
            x = x.clone()
            for h in heads:
                x[..., h * dv:(h + 1) * dv] = 0
            return (x,) + tuple(args[1:])
        return hook

    def _on_lora(self, _mod, _inputs, out):
        return torch.zeros_like(out)

    def _on_injection_pre(self, _mod, args):
        k = self.iv["injection_off_after"]
        if self.loop > k:
            h, e = args[0], args[1]
            return (h, torch.zeros_like(e)) + tuple(args[2:])
        return None

    def _on_injection(self, _mod, _inputs, out):
        p = self.iv["patch"] if self.iv else None
        if p is not None and self.loop == p["loop"]:
            pos = p["token"] - self.start_pos
            if 0 <= pos < out.shape[1]:
                out = out.clone()
                out[:, pos] = self.patch_state.to(out.dtype)
        self.states.append(out)
        self.h_prev = out
        return out

    def _on_recurrent(self, _mod, _inputs, out):
        ex = self.iv["exit"] if self.iv else None
        if ex is None or not self.states:
            return None
        S = torch.stack(self.states)  # (L, B, T, D)
        L = S.shape[0]
        if "loop" in ex:
            loops = torch.full(S.shape[1:3], min(ex["loop"], L), dtype=torch.long, device=S.device)
        else:
            top1 = torch.stack([self.coda_logits(s).argmax(-1) for s in self.states])
            loops = _convergence(top1)
        self.exit_loops = loops
        idx = (loops - 1)[None, :, :, None].expand(1, *S.shape[1:])
        return S.gather(0, idx)[0]

    def _attn_pre(self, stage, layer):
        def hook(_mod, _args):
            self._inside = (stage, layer, self.loop if stage == "recurrent" else 0)
            self._captured = False
        return hook

    def _attn_post(self, _mod, _inputs, _out):
        if self._capture_on and self._inside is not None and not self._captured:
            raise RuntimeError("no softmax seen inside an attention module (a fused attention "
                               "kernel?): attention probabilities cannot be recorded")
        self._inside = None

    def _softmax_wrapper(self, fn):
        hooks = self

        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            if hooks._capture_on and hooks._inside is not None and not hooks._captured:
                hooks._captured = True
                stage, layer, loop = hooks._inside
                name = f"recurrent_loop_{loop - 1}" if stage == "recurrent" else f"{stage}_{layer}"
                hooks.sites.append({"name": name, "stage": stage, "layer": layer, "loop": loop,
                                    "probs": out[hooks.attention_row].detach().float().cpu()})
            return out
        return wrapped

    # -- install / remove ---------------------------------------------------------------
    def __enter__(self):
        m, rec, iv = self.model, self.model.recurrent, self.iv
        reg = self._handles.append
        reg(rec.register_forward_pre_hook(self._on_recurrent_pre))
        reg(rec.block.register_forward_pre_hook(self._on_block_pre))
        reg(rec.norm.register_forward_pre_hook(self._on_norm_pre))
        if iv:
            if iv["ablate_experts"]:
                reg(rec.block.ffn.register_forward_hook(self._on_ffn))
            blocks = {"prelude": list(m.prelude), "recurrent": [rec.block], "coda": list(m.coda)}
            by_wo = {}
            for a in iv["ablate_heads"]:
                by_wo.setdefault((a["stage"], a["layer"]), []).append((a["head"], a["loop"]))
            for (stage, layer), hl in by_wo.items():
                reg(blocks[stage][layer].attn.wo.register_forward_pre_hook(self._wo_pre(stage, hl)))
            if iv["lora_scale_zero"]:
                reg(rec.lora.register_forward_hook(self._on_lora))
            if iv["injection_off_after"] is not None:
                reg(rec.injection.register_forward_pre_hook(self._on_injection_pre))
        reg(rec.injection.register_forward_hook(self._on_injection))
        if iv and iv["exit"] is not None:
            reg(rec.register_forward_hook(self._on_recurrent))
        if self.attention_row is not None:
            for stage, blocks in (("prelude", m.prelude), ("recurrent", [rec.block]), ("coda", m.coda)):
                for i, blk in enumerate(blocks):
                    reg(blk.attn.register_forward_pre_hook(self._attn_pre(stage, i)))
                    reg(blk.attn.register_forward_hook(self._attn_post))
            F = torch.nn.functional
            self._saved = (F.softmax, torch.softmax, torch.Tensor.softmax)
            F.softmax = self._softmax_wrapper(self._saved[0])
            torch.softmax = self._softmax_wrapper(self._saved[1])
            torch.Tensor.softmax = self._softmax_wrapper(self._saved[2])
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._saved is not None:
            F = torch.nn.functional
            F.softmax, torch.softmax, torch.Tensor.softmax = self._saved
            self._saved = None
        return False


def _convergence(top1):
    """(K, ...) top-1 ids -> the first 1-based loop from which the top-1 stays that of loop K."""
    K = top1.shape[0]
    differs = top1 != top1[-1]
    # index of the last loop that differs from loop K, -1 when none
    idx = torch.arange(K, device=top1.device).view(K, *([1] * (top1.dim() - 1)))
    last = torch.where(differs, idx, torch.full_like(idx, -1).expand_as(differs)).amax(0)
    return last + 2


def _patch_source_state(model, iv):
    """The unmodified model's state after loop ``patch.loop`` at ``source_token`` of the
    source prompt (run with an empty KV cache so that every loop up to it runs)."""
    p = iv["patch"]
    device = next(model.parameters()).device
    src = torch.as_tensor([p["ids"]], dtype=torch.long, device=device)
    seen = []
    hk = model.recurrent.injection.register_forward_hook(
        lambda _m, _i, out: seen.append(out[0, p["source_token"]].detach().clone())
        if len(seen) < p["loop"] else None)
    try:
        with torch.no_grad():
            model(src, n_loops=p["loop"], kv_cache={})
    finally:
        hk.remove()
    return seen[p["loop"] - 1]


def _prepare(model, ids, intervention, start_pos):
    device = next(model.parameters()).device
    ids_t = torch.as_tensor(ids, dtype=torch.long, device=device)
    if ids_t.dim() != 2:
        raise ValueError(f"ids must be (B, T), got shape {tuple(ids_t.shape)}")
    iv = _as_intervention(model, intervention)
    src = None
    if iv and iv["patch"] is not None:
        pos = iv["patch"]["token"] - start_pos
        if not 0 <= pos < ids_t.shape[1] and start_pos == 0:
            raise ValueError(f"intervention: field 'patch.token' = {iv['patch']['token']} is "
                             f"outside [0, {ids_t.shape[1]}) (the prompt's length)")
        src = _patch_source_state(model, iv)
    return ids_t, iv, src


def run_intervened(model, ids, n_loops=None, intervention=None, kv_cache=None, start_pos=0):
    """Logits (B, T, V) of ``model(ids, n_loops, kv_cache, start_pos)`` with the
    intervention applied through hooks (docs/inside-the-loop.md, "Interventions"): None or
    {} is the unmodified model. An ``exit`` runs every requested loop (the forward gets an
    empty KV cache when none is given: the reference skips its early exit then, and one
    full-prompt pass computes the same numbers with or without a cache)."""
    ids_t, iv, src = _prepare(model, ids, intervention, start_pos)
    if iv and iv["exit"] is not None and kv_cache is None:
        kv_cache = {}
    with torch.no_grad(), _Hooks(model, iv, start_pos=start_pos, patch_state=src):
        return model(ids_t, n_loops=n_loops, kv_cache=kv_cache, start_pos=start_pos)


def deep_run(model, ids, K, intervention=None, attention_row=None):
    """One run of every loop 1..K (an empty KV cache disables the reference's early exit;
    a single full-prompt pass with an empty cache computes exactly what the uncached pass
    computes, so the states of the loops both run are the same numbers). Returns a dict:
    ``logits`` (B, T, V), the model's (modified) output at K loops; ``states`` (K, B, T, D),
    h_1..h_K; ``state_logits`` (K, B, T, V), the state lens (each h_t through the coda, the
    final norm and the head, with the intervention's coda hooks in place); ``sites``, the
    attention sites of batch row ``attention_row`` (None: not recorded)."""
    ids_t, iv, src = _prepare(model, ids, intervention, 0)
    with torch.no_grad(), _Hooks(model, iv, patch_state=src, attention_row=attention_row) as hk:
        logits = model(ids_t, n_loops=K, kv_cache={})
        states = torch.stack(hk.states)
        if states.shape[0] != K:
            raise RuntimeError(f"expected {K} loops, the model ran {states.shape[0]}")
        state_logits = torch.stack([hk.coda_logits(s) for s in hk.states])
    return {"logits": logits, "states": states, "state_logits": state_logits, "sites": hk.sites}


def lens_stats(logits, final):
    """The lens numbers of (K, B, T, V) logits against the final output ``final`` (B, T, V):
    fp32 softmaxes over the full vocabulary, entropy and KL summed in float64."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    logp_f = torch.log_softmax(final.float(), dim=-1)
    p_f = logp_f.exp()

    def plogp(pp, lp):  # p log p with 0 log 0 = 0
        return torch.where(pp > 0, pp.double() * lp.double(), torch.zeros((), dtype=torch.float64))

    top1 = logits.argmax(-1)
    entropy = -plogp(p, logp).sum(-1)
    kl_final = (plogp(p_f, logp_f)[None] - torch.where(p_f[None] > 0, p_f.double()[None] * logp.double(),
                                                       torch.zeros((), dtype=torch.float64))).sum(-1)
    kl_prev = torch.full(top1.shape, float("nan"), dtype=torch.float64, device=top1.device)
    if logits.shape[0] > 1:
        kl_prev[1:] = (plogp(p[1:], logp[1:]) - torch.where(
            p[1:] > 0, p[1:].double() * logp[:-1].double(), torch.zeros((), dtype=torch.float64))).sum(-1)
    return {"top1": top1, "p": p.gather(-1, top1.unsqueeze(-1)).squeeze(-1), "entropy": entropy,
            "kl_final": kl_final, "kl_prev": kl_prev, "convergence": _convergence(top1)}


def act_lens_logits(model, ids, K, intervention=None):
    """(K, B, T, V): the (modified) model's output at t = 1..K loops, each a forward without
    a KV cache, exactly ``model(ids, n_loops=t)`` (with its early exit)."""
    return torch.stack([run_intervened(model, ids, t, intervention) for t in range(1, K + 1)])


def lens_of(model, ids, K, intervention=None, *, full_logits=False, deep=None):
    """The ``lens`` trace part (docs/trace-schema.md) of ``ids`` at K loops, as tensors:
    {"version", "loops", "act": {...}, "state": {...}} with top1 / p / entropy / kl_final /
    kl_prev (K, B, T), convergence (B, T) and logits (K, B, T, V). ``deep``: a
    ``deep_run`` result to reuse. ``full_logits`` is recorded for ``to_json``."""
    deep = deep or deep_run(model, ids, K, intervention)
    act = act_lens_logits(model, ids, K, intervention)
    final = act[-1]
    out = {"version": 1, "loops": int(K), "full_logits": bool(full_logits)}
    for name, lg in (("act", act), ("state", deep["state_logits"])):
        part = lens_stats(lg, final)
        part["logits"] = lg.float()
        out[name] = part
    return out


def attention_of(model, ids, K, batch_row=0, intervention=None, deep=None):
    """The ``attention`` trace part: every attention site of the run at K loops for one
    batch row, probs (H, T, T) as the model's own softmax produced them."""
    B = len(ids)
    if not 0 <= batch_row < B:
        raise ValueError(f"--attention-row: {batch_row} is outside [0, {B})")
    deep = deep if deep is not None and deep["sites"] else deep_run(model, ids, K, intervention,
                                                                     attention_row=batch_row)
    return {"version": 1, "batch_row": int(batch_row), "sites": deep["sites"]}


def trajectory_of(states):
    """The ``trajectory`` trace part from the states (K, B, T, D): PCA (in float64) of all
    states after subtracting their mean, each component's sign chosen so that its
    largest-magnitude entry is positive; coordinates (K, B, T, 2); the share of the total
    variance along each component; cos(h_t, h_K) (K, B, T)."""
    S = states.detach().double().cpu()
    K, B, T, D = S.shape
    X = S.reshape(-1, D)
    Xc = X - X.mean(0, keepdim=True)
    _, sv, Vh = torch.linalg.svd(Xc, full_matrices=False)
    comps = torch.zeros(2, D, dtype=torch.float64)
    n = min(2, Vh.shape[0])
    comps[:n] = Vh[:n]
    for i in range(n):
        j = int(comps[i].abs().argmax())
        if comps[i, j] < 0:
            comps[i] = -comps[i]
    var = (sv ** 2)
    total = float(var.sum())
    explained = [float(var[i]) / total if i < n and total > 0 else 0.0 for i in range(2)]
    coords = (Xc @ comps.T).reshape(K, B, T, 2)
    last = S[-1:]
    cos = (S * last).sum(-1) / (S.norm(dim=-1) * last.norm(dim=-1))
    return {"version": 1, "explained": explained, "coords": coords, "cos_final": cos}


def _lens_json(lens):
    K, B, T = lens["act"]["top1"].shape
    V = lens["act"]["logits"].shape[-1]
    write_logits = lens["full_logits"] or K * B * T * V <= (1 << 22)
    out = {"version": lens["version"], "loops": lens["loops"]}
    for name in ("act", "state"):
        part = lens[name]
        js = {k: part[k].tolist() for k in ("top1", "p", "entropy", "kl_final", "kl_prev",
                                              "convergence")}
        if write_logits:
            js["logits"] = part["logits"].tolist()
        out[name] = js
    return out


def inside_parts(model, ids, K, *, lens=False, attention_row=None, trajectory=False,
                 intervention=None, full_logits=False) -> dict:
    """The optional trace parts that were asked for, JSON-ready (non-finite floats as None)."""
    out = {}
    if not (lens or trajectory or attention_row is not None):
        return out
    deep = deep_run(model, ids, K, intervention, attention_row=attention_row)
    if lens:
        out["lens"] = _lens_json(lens_of(model, ids, K, intervention, full_logits=full_logits,
                                         deep=deep))
    if attention_row is not None:
        a = attention_of(model, ids, K, attention_row, intervention, deep=deep)
        out["attention"] = {"version": 1, "batch_row": a["batch_row"],
                            "sites": [{**s, "probs": s["probs"].tolist()} for s in a["sites"]]}
    if trajectory:
        tr = trajectory_of(deep["states"])
        out["trajectory"] = {"version": 1, "explained": tr["explained"],
                             "coords": tr["coords"].tolist(), "cos_final": tr["cos_final"].tolist()}
    return _finite(out)


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
    ap.add_argument("--lens", action="store_true", help="add the logit lens (act and state) at every loop")
    ap.add_argument("--attention", action="store_true", help="add the attention probabilities of every site")
    ap.add_argument("--attention-row", type=int, default=0, help="batch row of --attention (default 0)")
    ap.add_argument("--trajectory", action="store_true", help="add the PCA trajectory of the states")
    ap.add_argument("--intervene", metavar="FILE.json",
                    help="run with this intervention (docs/inside-the-loop.md)")
    ap.add_argument("--full-logits", action="store_true",
                    help="write lens.*.logits whatever their size")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import mythos_torch as mt

    try:
        rows = parse_ids(args.ids)
        model = mt.load_model_folder(args.model)
        bad = [i for r in rows for i in r if not 0 <= i < model.cfg.vocab_size]
        if bad:
            raise ValueError(f"--ids: token {bad[0]} is outside [0, {model.cfg.vocab_size})")
        raw = iv = None
        if args.intervene:
            with open(args.intervene, encoding="utf-8") as f:
                try:
                    raw = json.load(f)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{args.intervene}: not valid JSON ({e})") from None
            iv = parse_intervention(raw, model.cfg, _char_tokenizer(args.model))
        tr = trace_model(model, rows, args.loops or None, {} if args.kv_cache else None,
                         args.start_pos, include_logits=not args.no_logits,
                         model_name=args.model, pieces=_pieces(args.model, rows), intervention=iv)
        if raw is not None:
            tr["intervention"] = raw
        K = args.loops or int(model.cfg.max_loop_iters)
        if args.lens or args.attention or args.trajectory:
            if args.start_pos or args.kv_cache:
                raise ValueError("--lens, --attention and --trajectory describe one full-prompt "
                                 "pass: use them without --start-pos and --kv-cache")
            if args.attention and not 0 <= args.attention_row < len(rows):
                raise ValueError(f"--attention-row: {args.attention_row} is outside [0, {len(rows)})")
            tr.update(inside_parts(model, rows, K, lens=args.lens, trajectory=args.trajectory,
                                   attention_row=args.attention_row if args.attention else None,
                                   intervention=iv, full_logits=args.full_logits))
    except (ValueError, OSError) as e:
        print(f"trace_pytorch: error: {e}", file=sys.stderr)
        return 1
    tr = _finite(tr)
    mt.write_atomic(args.out, (json.dumps(tr, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8"))
    print(f"wrote {args.out}: batch {tr['batch']}, seq_len {tr['seq_len']}, "
          f"loops {tr['loops_executed']}/{tr['n_loops']}, rho(A) {tr['rho_A']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
