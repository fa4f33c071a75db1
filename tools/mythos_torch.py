"""A self-contained PyTorch implementation of the OpenMythos looped transformer.

Why this exists: the C++ engine is checked against numbers produced by the public
PyTorch reference, but the Python tooling (checkpoint export, tracing, training the
bundled demo models) must not depend on a copy of that code. This module is an
independent implementation written from the semantics in the golden README
("Reference semantics"); its ``state_dict`` names and shapes are exactly the
reference's, so a reference checkpoint loads here with ``strict=True`` and a model
trained here can be opened by the reference and by the app.

Contents:
  * ``MythosConfig``: every field and default of the reference's dataclass.
  * ``OpenMythos``: ``forward(ids, n_loops=None, kv_cache=None, start_pos=0)`` returns
    logits; ``forward_with_aux`` also returns the per-loop ACT and routing records,
    differentiable, for training (ponder cost, expert load balancing).
  * safetensors reading/writing without the ``safetensors`` package, and
    ``load_model_folder`` / ``save_model_folder`` for the app's model folder layout
    (``config.json`` + ``model.safetensors``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclass
class MythosConfig:
    """Hyper-parameters; field names, order and defaults follow the reference so that
    ``dataclasses.asdict`` produces the same ``config.json`` the reference writes."""

    vocab_size: int = 32000
    dim: int = 2048
    n_heads: int = 16
    n_kv_heads: int = 4
    max_seq_len: int = 4096
    max_loop_iters: int = 16
    prelude_layers: int = 2
    coda_layers: int = 2
    attn_type: str = "mla"
    kv_lora_rank: int = 512
    q_lora_rank: int = 1536
    qk_rope_head_dim: int = 64
    qk_nope_head_dim: int = 128
    v_head_dim: int = 128
    n_experts: int = 64
    n_shared_experts: int = 2
    n_experts_per_tok: int = 4
    expert_dim: int = 512
    act_threshold: float = 0.99
    rope_theta: float = 500000.0
    lora_rank: int = 16
    max_output_tokens: int = 4096
    dropout: float = 0.0

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "MythosConfig":
        """Builds a config like the app does: unknown keys are ignored (newer writers may
        add fields), missing keys take the defaults, wrongly typed values are errors
        (a string where a number belongs would otherwise fail far from its cause)."""
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a JSON object")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            kwargs[f.name] = _coerce_field(f, d[f.name], source)
        cfg = cls(**kwargs)
        problems = cfg.problems()
        if problems:
            raise ValueError(f"{source}: " + "; ".join(problems))
        return cfg

    def to_json_text(self) -> str:
        """The reference's layout: fields in declaration order, 2-space indent."""
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def problems(self) -> List[str]:
        """Everything that would make the model unbuildable, one sentence each."""
        p = []
        positive = ["vocab_size", "dim", "n_heads", "max_seq_len", "max_loop_iters",
                    "n_experts", "n_experts_per_tok", "expert_dim", "lora_rank"]
        for name in positive:
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1")
        if self.attn_type not in ("gqa", "mla"):
            p.append(f"attn_type must be 'gqa' or 'mla', not {self.attn_type!r}")
        if self.n_heads >= 1 and self.dim % self.n_heads:
            p.append("dim must be divisible by n_heads")
        if self.attn_type == "gqa":
            if self.n_kv_heads < 1 or self.n_heads % max(self.n_kv_heads, 1):
                p.append("n_heads must be a multiple of n_kv_heads")
            if self.n_heads >= 1 and (self.dim // self.n_heads) % 2:
                p.append("dim / n_heads must be even for RoPE")
        else:
            if self.qk_rope_head_dim < 2 or self.qk_rope_head_dim % 2:
                p.append("qk_rope_head_dim must be even and >= 2")
            for name in ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "v_head_dim"):
                if getattr(self, name) < 1:
                    p.append(f"{name} must be >= 1")
        if self.n_experts_per_tok > self.n_experts:
            p.append("n_experts_per_tok must not exceed n_experts")
        if self.prelude_layers < 0 or self.coda_layers < 0 or self.n_shared_experts < 0:
            p.append("layer and shared expert counts must be >= 0")
        return p


def _coerce_field(f: dataclasses.Field, value, source: str):
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}[f.type]
    if kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or
                                           (isinstance(value, float) and value.is_integer())):
            raise ValueError(f"{source}: field '{f.name}' must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: field '{f.name}' must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{source}: field '{f.name}' must be a string, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """x / rms(x) * w with eps 1e-6 inside the square root, as in the reference."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_table(head_dim: int, max_len: int, theta: float) -> torch.Tensor:
    """Complex (max_len, head_dim/2) phasors. Complex, like the reference's buffers, so
    that a reference state_dict (which contains them) loads with strict=True."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotates ADJACENT feature pairs (x[2i], x[2i+1]) of x (B, T, H, d) by the phasors
    freqs (T, d/2). Real arithmetic instead of view_as_complex keeps it usable for any
    dtype and differentiable on every backend; the products are the same."""
    xr = x.float().reshape(*x.shape[:-1], -1, 2)
    cos = freqs.real[None, :, None, :]
    sin = freqs.imag[None, :, None, :]
    x0, x1 = xr[..., 0], xr[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


def causal_mask(t: int, s: int, device, dtype) -> Optional[torch.Tensor]:
    """Additive mask for t new queries over s keys (the last t of which are the new
    ones). None for a single query, which may see every cached key, like the reference.
    The reference only builds (t, t) masks; the offset makes a second multi-token call
    on a filled cache correct too (a superset of the reference's behaviour)."""
    if t <= 1:
        return None
    m = torch.full((t, s), float("-inf"), device=device, dtype=dtype)
    return torch.triu(m, diagonal=1 + s - t)[None, None]


def _attend(q, k, v, mask, scale, dropout: float, training: bool):
    """Explicit softmax attention, fp32-exact like the reference's non-flash path.
    q (B, H, T, d), k (B, H, S, d), v (B, H, S, dv) -> (B, T, H*dv)."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores + mask
    probs = F.dropout(F.softmax(scores, dim=-1), p=dropout, training=training)
    out = torch.matmul(probs, v)
    b, h, t, dv = out.shape
    return out.transpose(1, 2).reshape(b, t, h * dv)


class GQAttention(nn.Module):
    """Grouped-query attention: query head h reads KV head h // (n_heads / n_kv_heads).
    The cache holds k (after RoPE) and v per layer, as in the reference, so a trace of
    either implementation reports the same cache layout."""

    def __init__(self, cfg: MythosConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.n_kv_heads = cfg.n_kv_heads
        self.head_dim = cfg.dim // cfg.n_heads
        self.groups = cfg.n_heads // cfg.n_kv_heads
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * self.head_dim, cfg.dim, bias=False)
        self.dropout_p = cfg.dropout

    def forward(self, x, freqs, mask=None, kv_cache=None, cache_key="default"):
        b, t, _ = x.shape
        q = apply_rope(self.wq(x).view(b, t, self.n_heads, self.head_dim), freqs)
        k = apply_rope(self.wk(x).view(b, t, self.n_kv_heads, self.head_dim), freqs)
        v = self.wv(x).view(b, t, self.n_kv_heads, self.head_dim)
        if kv_cache is not None:
            if cache_key in kv_cache:
                k = torch.cat([kv_cache[cache_key]["k"], k], dim=1)
                v = torch.cat([kv_cache[cache_key]["v"], v], dim=1)
            kv_cache[cache_key] = {"k": k.detach(), "v": v.detach()}
        if mask is not None and mask.shape[-1] != k.shape[1]:
            mask = causal_mask(t, k.shape[1], x.device, mask.dtype)
        k = k.repeat_interleave(self.groups, dim=2).transpose(1, 2)
        v = v.repeat_interleave(self.groups, dim=2).transpose(1, 2)
        out = _attend(q.transpose(1, 2), k, v, mask, self.head_dim ** -0.5,
                      self.dropout_p, self.training)
        return self.wo(out)


class MLAttention(nn.Module):
    """Multi-latent attention. The cache stores the raw latent c_kv (before kv_norm) and
    the RoPE'd shared key copied to every head: the reference's layout, kept so cache
    byte counts and trace ledgers agree with it."""

    def __init__(self, cfg: MythosConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.kv_lora_rank = cfg.kv_lora_rank
        self.rope_dim = cfg.qk_rope_head_dim
        self.nope_dim = cfg.qk_nope_head_dim
        self.v_dim = cfg.v_head_dim
        self.q_down = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)
        self.q_norm = RMSNorm(cfg.q_lora_rank)
        self.q_up_nope = nn.Linear(cfg.q_lora_rank, cfg.n_heads * cfg.qk_nope_head_dim, bias=False)
        self.q_up_rope = nn.Linear(cfg.q_lora_rank, cfg.n_heads * cfg.qk_rope_head_dim, bias=False)
        self.kv_down = nn.Linear(cfg.dim, cfg.kv_lora_rank + cfg.qk_rope_head_dim, bias=False)
        self.kv_norm = RMSNorm(cfg.kv_lora_rank)
        self.kv_up = nn.Linear(cfg.kv_lora_rank,
                               cfg.n_heads * (cfg.qk_nope_head_dim + cfg.v_head_dim), bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.v_head_dim, cfg.dim, bias=False)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.dropout_p = cfg.dropout

    def forward(self, x, freqs, mask=None, kv_cache=None, cache_key="default"):
        b, t, _ = x.shape
        h = self.n_heads
        c_q = self.q_norm(self.q_down(x))
        q_nope = self.q_up_nope(c_q).view(b, t, h, self.nope_dim)
        q_rope = apply_rope(self.q_up_rope(c_q).view(b, t, h, self.rope_dim), freqs)
        q = torch.cat([q_nope, q_rope], dim=-1)

        kv_raw = self.kv_down(x)
        c_kv = kv_raw[..., : self.kv_lora_rank]
        k_rope = kv_raw[..., self.kv_lora_rank:].unsqueeze(2).expand(b, t, h, self.rope_dim)
        k_rope = apply_rope(k_rope.contiguous(), freqs)
        if kv_cache is not None:
            if cache_key in kv_cache:
                c_kv = torch.cat([kv_cache[cache_key]["c_kv"], c_kv], dim=1)
                k_rope = torch.cat([kv_cache[cache_key]["k_rope"], k_rope], dim=1)
            kv_cache[cache_key] = {"c_kv": c_kv.detach(), "k_rope": k_rope.detach()}
        s = c_kv.shape[1]
        if mask is not None and mask.shape[-1] != s:
            mask = causal_mask(t, s, x.device, mask.dtype)
        kv = self.kv_up(self.kv_norm(c_kv)).view(b, s, h, self.nope_dim + self.v_dim)
        k = torch.cat([kv[..., : self.nope_dim], k_rope], dim=-1)
        v = kv[..., self.nope_dim:]
        out = _attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask,
                      (self.nope_dim + self.rope_dim) ** -0.5, self.dropout_p, self.training)
        return self.wo(out)


class Expert(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x)). Dense FFN and MoE expert alike."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class MoEFFN(nn.Module):
    """Routed + shared experts. ``router_bias`` (a buffer, updated outside the gradient for
    load balancing) shifts only WHICH experts are chosen; the gates come from the unbiased
    softmax renormalised over the chosen ones, so the bias never enters the gradient.

    After every call ``last_routing`` holds (logits, topk_ids, gates) of that call so the
    recurrent block can report routing without a second router evaluation."""

    def __init__(self, cfg: MythosConfig):
        super().__init__()
        self.n_experts = cfg.n_experts
        self.topk = cfg.n_experts_per_tok
        self.router = nn.Linear(cfg.dim, cfg.n_experts, bias=False)
        self.register_buffer("router_bias", torch.zeros(cfg.n_experts))
        self.routed_experts = nn.ModuleList(
            [Expert(cfg.dim, cfg.expert_dim) for _ in range(cfg.n_experts)])
        self.shared_experts = nn.ModuleList(
            [Expert(cfg.dim, cfg.expert_dim * cfg.n_experts_per_tok)
             for _ in range(cfg.n_shared_experts)])
        self.last_routing = None

    def forward(self, x):
        b, t, d = x.shape
        flat = x.reshape(b * t, d)
        logits = self.router(flat)
        scores = F.softmax(logits, dim=-1)
        _, ids = (logits + self.router_bias).topk(self.topk, dim=-1)
        gates = scores.gather(-1, ids)
        gates = gates / gates.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(flat)
        # Sparse dispatch: each expert runs only on the tokens that chose it (an expert
        # appears at most once among a token's top-k, so one slot per token).
        for e, expert in enumerate(self.routed_experts):
            tok, slot = (ids == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            y = expert(flat[tok]) * gates[tok, slot].unsqueeze(-1)
            out = out.index_add(0, tok, y)
        for shared in self.shared_experts:
            out = out + shared(flat)
        self.last_routing = (logits.view(b, t, -1), ids.view(b, t, -1), gates.view(b, t, -1))
        return out.view(b, t, d)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(attn_norm(x)), then + ffn(ffn_norm(x))."""

    def __init__(self, cfg: MythosConfig, use_moe: bool = False):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim)
        self.ffn_norm = RMSNorm(cfg.dim)
        self.attn = MLAttention(cfg) if cfg.attn_type == "mla" else GQAttention(cfg)
        self.ffn = MoEFFN(cfg) if use_moe else Expert(cfg.dim, cfg.dim * 4 // 3)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x, freqs, mask=None, kv_cache=None, cache_key="default"):
        x = x + self.resid_drop(self.attn(self.attn_norm(x), freqs, mask, kv_cache, cache_key))
        return x + self.resid_drop(self.ffn(self.ffn_norm(x)))


class LTIInjection(nn.Module):
    """h <- A h + B e + y with A = exp(-exp(clamp(log_dt + log_A, -20, 20))) in (0, 1):
    the diagonal state matrix is stable by construction whatever the optimiser does."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_A = nn.Parameter(torch.zeros(dim))
        self.log_dt = nn.Parameter(torch.zeros(1))
        self.B = nn.Parameter(torch.full((dim,), 0.1))

    def get_A(self) -> torch.Tensor:
        return torch.exp(-torch.exp((self.log_dt + self.log_A).clamp(-20, 20)))

    def forward(self, h, e, transformer_out):
        return self.get_A() * h + self.B * e + transformer_out


class ACTHalting(nn.Module):
    """Per-position halting probability sigmoid(w.h + b), shape (B, T)."""

    def __init__(self, dim: int):
        super().__init__()
        self.halt = nn.Linear(dim, 1)

    def forward(self, h):
        return torch.sigmoid(self.halt(h)).squeeze(-1)


class LoRAAdapter(nn.Module):
    """Depth LoRA: delta = (down(y) * scale[t]) @ B. Loops beyond the trained range reuse
    the last scale row (index clamped), which is what makes depth extrapolation legal."""

    def __init__(self, dim: int, rank: int, max_loops: int):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.B = nn.Parameter(torch.randn(rank, dim) * 0.02)
        self.scale = nn.Embedding(max_loops, rank)

    def forward(self, x, loop_t: int):
        t = min(loop_t, self.scale.num_embeddings - 1)
        return (self.down(x) * self.scale.weight[t]) @ self.B


def loop_index_vector(t: int, dim: int, loop_dim: int, device=None, dtype=torch.float32,
                      theta: float = 10000.0) -> torch.Tensor:
    """(dim,) vector, zero except the first loop_dim channels: [sin(t f_j) | cos(t f_j)]
    with f_j = theta^(-2j/loop_dim). Tells the shared block which iteration it is on;
    note it is non-zero at t = 0 (the cosines)."""
    f = 1.0 / (theta ** (torch.arange(0, loop_dim, 2, device=device, dtype=dtype) / loop_dim))
    ang = t * f
    emb = torch.zeros(dim, device=device, dtype=dtype)
    emb[:loop_dim] = torch.cat([ang.sin(), ang.cos()])[:loop_dim]
    return emb


class RecurrentBlock(nn.Module):
    """The looped block with ACT. Positions that halted keep being updated (they still
    feed attention for the others); only their contribution to the output stops. Without
    a KV cache the loop exits once every position halted; with one, every loop runs so
    that every ``recurrent_loop_<t>`` cache entry stays filled for later decode steps."""

    def __init__(self, cfg: MythosConfig):
        super().__init__()
        self.cfg = cfg
        self.block = TransformerBlock(cfg, use_moe=True)
        self.injection = LTIInjection(cfg.dim)
        self.act = ACTHalting(cfg.dim)
        self.lora = LoRAAdapter(cfg.dim, cfg.lora_rank, cfg.max_loop_iters)
        self.norm = RMSNorm(cfg.dim)
        self.loop_dim = cfg.dim // 8
        # Training aid only (tools/train_demo.py --inner-scale), not part of the model: below
        # 1 the pass-through terms are scaled, norm(h + lie + s e), the block's own residual
        # by s and h <- s (A h + B e) + block output. At 1 (always, outside such training)
        # the forward is exactly the reference's.
        self.passthrough_scale = 1.0
        # Training aid only (tools/train_demo.py --loop-jitter): loop i is told it is loop
        # i + loop_offset (the loop-index vector and the LoRA row), so that what a loop
        # does cannot hang on its number. 0 (always, outside such training) is the reference.
        self.loop_offset = 0

    def forward(self, h, e, freqs, mask=None, n_loops=None, kv_cache=None, aux=None):
        """``aux`` (a dict) receives per-loop lists when given; the tensors keep their
        autograd history so a ponder cost or balance loss can be trained through them."""
        n_loops = n_loops or self.cfg.max_loop_iters
        b, t, d = h.shape
        thr = self.cfg.act_threshold
        halted = torch.zeros(b, t, dtype=torch.bool, device=h.device)
        cum = torch.zeros(b, t, device=h.device)
        h_out = torch.zeros_like(h)
        s = self.passthrough_scale
        for i in range(n_loops):
            lie = loop_index_vector(i + self.loop_offset, d, self.loop_dim, h.device, h.dtype)
            es = e if s == 1.0 else s * e
            combined = self.norm(h + lie + es)
            y = self.block(combined, freqs, mask, kv_cache, f"recurrent_loop_{i}")
            if s != 1.0:
                y = y - (1.0 - s) * combined
                h = s * h
            y = y + self.lora(y, i + self.loop_offset)
            h = self.injection(h, es, y)
            p = self.act(h)
            running = (~halted).to(p.dtype)
            weight = torch.where(cum + p >= thr, (1.0 - cum).clamp(min=0), p) * running
            # ACT bookkeeping stays fp32 (like the reference); the state keeps the
            # model's dtype so bf16 models do not get promoted halfway through.
            h_out = h_out + weight.to(h.dtype).unsqueeze(-1) * h
            cum = cum + p * running
            halted = halted | (cum >= thr)
            if aux is not None:
                logits, ids, gates = self.block.ffn.last_routing
                aux["p"].append(p)
                aux["cum_p"].append(cum)
                aux["weight"].append(weight)
                aux["h_norm"].append(h.detach().float().norm(dim=-1))
                aux["router_logits"].append(logits)
                aux["topk_ids"].append(ids)
                aux["topk_weights"].append(gates)
            self.block.ffn.last_routing = None  # do not keep the graph alive
            if kv_cache is None and bool(halted.all()):
                break
        return h_out


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


class OpenMythos(nn.Module):
    """Prelude -> recurrent block (looped, ACT) -> coda -> RMSNorm -> tied head."""

    def __init__(self, cfg: MythosConfig):
        super().__init__()
        problems = cfg.problems()
        if problems:
            raise ValueError("invalid MythosConfig: " + "; ".join(problems))
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.register_buffer("freqs_cis", rope_table(cfg.dim // cfg.n_heads, cfg.max_seq_len,
                                                     cfg.rope_theta))
        self.register_buffer("freqs_cis_mla", rope_table(cfg.qk_rope_head_dim, cfg.max_seq_len,
                                                         cfg.rope_theta))
        self.prelude = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.prelude_layers)])
        self.recurrent = RecurrentBlock(cfg)
        self.coda = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.coda_layers)])
        self.norm = RMSNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        self.reset_parameters()

    def _apply(self, fn):
        """``model.to(dtype)`` casts complex buffers to that real dtype, silently turning
        the RoPE phasors into their cosines (the reference has that trap). Rebuild them
        as complex on the new device instead, so bf16/fp16 models keep working."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Casting complex values to real")
            super()._apply(fn)
        for name in ROPE_BUFFERS:
            buf = self._buffers[name]
            if not buf.is_complex():
                d = self.cfg.dim // self.cfg.n_heads if name == "freqs_cis" else self.cfg.qk_rope_head_dim
                self._buffers[name] = rope_table(d, self.cfg.max_seq_len,
                                                 self.cfg.rope_theta).to(buf.device)
        return self

    def reset_parameters(self):
        """The reference's initialisation: every Linear and the embedding N(0, 0.02)
        (the halting bias keeps nn.Linear's default), LoRA B N(0, 0.02), log_A = log_dt
        = 0, injection B = 0.1, norms 1, router_bias 0."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def _rope(self, start_pos: int, t: int) -> torch.Tensor:
        table = self.freqs_cis_mla if self.cfg.attn_type == "mla" else self.freqs_cis
        if start_pos < 0 or start_pos + t > table.shape[0]:
            raise ValueError(f"positions {start_pos}..{start_pos + t - 1} exceed max_seq_len "
                             f"{self.cfg.max_seq_len}")
        return table[start_pos: start_pos + t]

    def _run(self, ids, n_loops, kv_cache, start_pos, aux):
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, T), got {tuple(ids.shape)}")
        t = ids.shape[1]
        x = self.embed(ids)
        freqs = self._rope(start_pos, t)
        past = 0
        if kv_cache:
            first = next(iter(kv_cache.values()))
            past = next(iter(first.values())).shape[1]
        mask = causal_mask(t, past + t, ids.device, x.dtype)
        for i, layer in enumerate(self.prelude):
            x = layer(x, freqs, mask, kv_cache, f"prelude_{i}")
        e = x
        x = self.recurrent(x, e, freqs, mask, n_loops, kv_cache, aux)
        for i, layer in enumerate(self.coda):
            x = layer(x, freqs, mask, kv_cache, f"coda_{i}")
        return self.head(self.norm(x))

    def forward(self, ids: torch.Tensor, n_loops: Optional[int] = None,
                kv_cache: Optional[dict] = None, start_pos: int = 0) -> torch.Tensor:
        """Logits (B, T, vocab). ``n_loops`` None or 0 means max_loop_iters; larger values
        extrapolate in depth. ``kv_cache`` is a dict filled in place (pass {} to start)."""
        return self._run(ids, n_loops, kv_cache, start_pos, None)

    def forward_with_aux(self, ids: torch.Tensor, n_loops: Optional[int] = None,
                         kv_cache: Optional[dict] = None, start_pos: int = 0
                         ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Logits plus the per-loop records, stacked over the L executed loops:

        ``p``, ``cum_p``, ``weight`` (L, B, T); ``weight_sum`` (B, T); ``halt_loop``
        (B, T) 1-based, 0 = never; ``h_norm`` (L, B, T); ``router_logits`` (L, B, T, E);
        ``topk_ids`` / ``topk_weights`` (L, B, T, k); ``expected_steps`` (B, T), the
        ACT-weighted mean halting step with the unspent mass charged at step L + 1, a
        ponder cost whose gradient pushes p up on positions that could stop earlier;
        ``loops_executed``. Float entries keep their autograd graph."""
        keys = ("p", "cum_p", "weight", "h_norm", "router_logits", "topk_ids", "topk_weights")
        lists = {k: [] for k in keys}
        logits = self._run(ids, n_loops, kv_cache, start_pos, lists)
        aux = {k: torch.stack(v) for k, v in lists.items()}
        L = aux["p"].shape[0]
        aux["loops_executed"] = L
        aux["weight_sum"] = aux["weight"].sum(0)
        steps = torch.arange(1, L + 1, device=logits.device, dtype=aux["weight"].dtype)
        aux["expected_steps"] = ((aux["weight"] * steps[:, None, None]).sum(0)
                                 + (L + 1) * (1.0 - aux["weight_sum"]).clamp(min=0))
        reached = aux["cum_p"].detach() >= self.cfg.act_threshold
        first = torch.where(reached.any(0), reached.float().argmax(0) + 1,
                            torch.zeros_like(reached[0], dtype=torch.long))
        aux["halt_loop"] = first.long()
        return logits, aux

    @torch.no_grad()
    def generate_greedy(self, ids: torch.Tensor, new_tokens: int, n_loops: Optional[int] = None
                        ) -> torch.Tensor:
        """Greedy decode with the reference's generate() call pattern (prompt at
        start_pos 0, then one token at a time on a shared cache). Returns the generated
        tokens (B, new_tokens)."""
        cache: dict = {}
        out = []
        cur, pos = ids, 0
        for step in range(new_tokens):
            logits = self.forward(cur, n_loops=n_loops, kv_cache=cache, start_pos=pos)
            nxt = logits[:, -1, :].argmax(-1, keepdim=True)
            out.append(nxt)
            pos = ids.shape[1] + step
            cur = nxt
        return torch.cat(out, dim=1)

    def injection_A(self) -> torch.Tensor:
        return self.recurrent.injection.get_A()


# ---------------------------------------------------------------------------
# Expected state_dict layout (without building a model)
# ---------------------------------------------------------------------------

ROPE_BUFFERS = ("freqs_cis", "freqs_cis_mla")


def expected_shapes(cfg: MythosConfig) -> Dict[str, Tuple[int, ...]]:
    """Every stored tensor of the reference's state_dict for ``cfg`` (including
    head.weight, excluding the RoPE buffers), computed from the config alone so that
    checking a huge checkpoint does not need a second copy of the model in memory."""
    d = cfg.dim
    shapes: Dict[str, Tuple[int, ...]] = {"embed.weight": (cfg.vocab_size, d)}

    def attn(prefix):
        if cfg.attn_type == "mla":
            h = cfg.n_heads
            shapes.update({
                prefix + "q_down.weight": (cfg.q_lora_rank, d),
                prefix + "q_norm.weight": (cfg.q_lora_rank,),
                prefix + "q_up_nope.weight": (h * cfg.qk_nope_head_dim, cfg.q_lora_rank),
                prefix + "q_up_rope.weight": (h * cfg.qk_rope_head_dim, cfg.q_lora_rank),
                prefix + "kv_down.weight": (cfg.kv_lora_rank + cfg.qk_rope_head_dim, d),
                prefix + "kv_norm.weight": (cfg.kv_lora_rank,),
                prefix + "kv_up.weight": (h * (cfg.qk_nope_head_dim + cfg.v_head_dim),
                                          cfg.kv_lora_rank),
                prefix + "wo.weight": (d, h * cfg.v_head_dim),
            })
        else:
            hd = d // cfg.n_heads
            shapes.update({
                prefix + "wq.weight": (cfg.n_heads * hd, d),
                prefix + "wk.weight": (cfg.n_kv_heads * hd, d),
                prefix + "wv.weight": (cfg.n_kv_heads * hd, d),
                prefix + "wo.weight": (d, cfg.n_heads * hd),
            })

    def expert(prefix, hidden):
        shapes.update({prefix + "gate.weight": (hidden, d), prefix + "up.weight": (hidden, d),
                       prefix + "down.weight": (d, hidden)})

    def block(prefix, moe):
        shapes[prefix + "attn_norm.weight"] = (d,)
        shapes[prefix + "ffn_norm.weight"] = (d,)
        attn(prefix + "attn.")
        if not moe:
            expert(prefix + "ffn.", d * 4 // 3)
            return
        shapes[prefix + "ffn.router.weight"] = (cfg.n_experts, d)
        shapes[prefix + "ffn.router_bias"] = (cfg.n_experts,)
        for i in range(cfg.n_experts):
            expert(f"{prefix}ffn.routed_experts.{i}.", cfg.expert_dim)
        for i in range(cfg.n_shared_experts):
            expert(f"{prefix}ffn.shared_experts.{i}.", cfg.expert_dim * cfg.n_experts_per_tok)

    for i in range(cfg.prelude_layers):
        block(f"prelude.{i}.", False)
    block("recurrent.block.", True)
    shapes.update({
        "recurrent.injection.log_A": (d,),
        "recurrent.injection.log_dt": (1,),
        "recurrent.injection.B": (d,),
        "recurrent.act.halt.weight": (1, d),
        "recurrent.act.halt.bias": (1,),
        "recurrent.lora.B": (cfg.lora_rank, d),
        "recurrent.lora.down.weight": (cfg.lora_rank, d),
        "recurrent.lora.scale.weight": (cfg.max_loop_iters, cfg.lora_rank),
        "recurrent.norm.weight": (d,),
    })
    for i in range(cfg.coda_layers):
        block(f"coda.{i}.", False)
    shapes["norm.weight"] = (d,)
    shapes["head.weight"] = (cfg.vocab_size, d)
    return shapes


# ---------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path: str, to_float32: bool = True
                     ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(tensors, metadata). Floating tensors become fp32 when ``to_float32`` (the
    app computes in fp32 whatever the file stores). Every header entry is checked
    against the file size so a truncated download fails here, naming the tensor."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors reading assumes a little-endian host")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file size {len(data)}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: malformed safetensors header ({e})") from None
    base = 8 + n
    meta = header.pop("__metadata__", None) or {}
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        dtype = _ST_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {info.get('dtype')}")
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(o) for o in info["data_offsets"])
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if end - begin != numel * itemsize or begin < 0 or base + end > len(data):
            raise ValueError(f"{path}: tensor '{name}' has inconsistent data_offsets "
                             f"[{begin}, {end}] for shape {shape} {info['dtype']}")
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(data[base + begin: base + end]), dtype=dtype)
            t = t.reshape(shape)
        if to_float32 and t.is_floating_point():
            t = t.float()
        out[name] = t
    return out, dict(meta)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same bits as int16
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.numpy().tobytes()


def write_atomic(path: str, payload) -> None:
    """Writes a file so that readers see either the old or the complete new content:
    a temporary file in the same folder, fsync, then os.replace. ``payload`` is bytes
    or an iterable of byte chunks (so big checkpoints need not be joined in memory)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        # mkstemp creates 0600; model folders are shared and bundled, so give the file
        # the mode a plain open() would (or keep the mode of the file it replaces).
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            for chunk in ([payload] if isinstance(payload, (bytes, bytearray)) else payload):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor],
                      metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes the standard layout (header padded with spaces so data starts at a multiple
    of 8 bytes), atomically. Tensors are stored in their own dtype, in the given order."""
    header = {}
    offset = 0
    sizes = []
    for name, t in tensors.items():
        if t.dtype not in _ST_NAMES:
            raise ValueError(f"tensor '{name}' has dtype {t.dtype}, which safetensors cannot store")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        sizes.append(nbytes)
        offset += nbytes
    if metadata:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def chunks():
        yield struct.pack("<Q", len(text)) + text
        for t in tensors.values():
            yield _tensor_bytes(t)

    write_atomic(path, chunks())


# ---------------------------------------------------------------------------
# Model folders
# ---------------------------------------------------------------------------


def check_state_dict(cfg: MythosConfig, sd: Dict[str, torch.Tensor], source: str = "checkpoint"
                     ) -> None:
    """Raises ValueError listing every missing, unexpected and mis-shaped key at once
    (one error per run would make fixing a converted checkpoint a slow loop). The RoPE
    buffers are ignored; head.weight is optional but must equal embed.weight."""
    expected = expected_shapes(cfg)
    present = {k: v for k, v in sd.items() if k not in ROPE_BUFFERS}
    missing = [k for k in expected if k not in present and k != "head.weight"]
    unexpected = [k for k in present if k not in expected]
    wrong = [f"{k}: expected {list(expected[k])}, found {list(v.shape)}"
             for k, v in present.items() if k in expected and tuple(v.shape) != expected[k]]
    errors = []
    if missing:
        errors.append(f"missing keys ({len(missing)}): " + ", ".join(missing))
    if unexpected:
        errors.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
    if wrong:
        errors.append("shape mismatches: " + "; ".join(wrong))
    if not errors and "head.weight" in present:
        if not torch.equal(present["head.weight"].float(), present["embed.weight"].float()):
            errors.append("head.weight differs from embed.weight; OpenMythos ties them, "
                          "so this checkpoint is not an OpenMythos model")
    if errors:
        raise ValueError(f"{source}: state_dict does not match the config "
                         f"(attn_type={cfg.attn_type}, dim={cfg.dim}): " + " | ".join(errors))


def load_config(path: str) -> MythosConfig:
    with open(path, "r", encoding="utf-8") as f:
        try:
            d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    return MythosConfig.from_dict(d, path)


def load_model_folder(folder: str, device="cpu", dtype: torch.dtype = torch.float32
                      ) -> OpenMythos:
    """Opens the app's model folder (config.json + model.safetensors, F32/F16/BF16),
    checks every key and shape, and returns the model in eval mode."""
    cfg = load_config(os.path.join(folder, "config.json"))
    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{folder}: no model.safetensors")
    sd, _ = read_safetensors(path)
    check_state_dict(cfg, sd, path)
    model = OpenMythos(cfg)
    sd = {k: v for k, v in sd.items() if k != "head.weight"}
    sd["head.weight"] = sd["embed.weight"]
    for name in ROPE_BUFFERS:
        sd[name] = getattr(model, name)
    model.load_state_dict(sd, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def model_state_for_saving(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The stored tensors: the state_dict minus the tied head and the complex RoPE
    buffers (safetensors has no complex dtype and they follow from the config)."""
    return {k: v for k, v in model.state_dict().items()
            if k != "head.weight" and k not in ROPE_BUFFERS}


def save_model_folder(model: nn.Module, folder: str, dtype: str = "F32",
                      metadata: Optional[Dict[str, str]] = None,
                      cfg: Optional[MythosConfig] = None) -> None:
    """Writes config.json and model.safetensors (each atomically) in the app's layout.
    ``dtype`` "F32" or "BF16"; router_bias stays in the chosen dtype like the rest."""
    dt = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}.get(dtype.upper())
    if dt is None:
        raise ValueError(f"dtype must be F32, BF16 or F16, not {dtype!r}")
    cfg = cfg or model.cfg
    tensors = {k: v.detach().to("cpu", dt) for k, v in model_state_for_saving(model).items()}
    check_state_dict(cfg, tensors, folder)
    meta = {"format": "pt", "source": "mythos_torch", "tied": "embed.weight=head.weight",
            "dtype": dtype.upper()}
    meta.update(metadata or {})
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, meta)
    write_atomic(os.path.join(folder, "config.json"), cfg.to_json_text().encode("utf-8"))
