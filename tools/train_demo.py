#!/usr/bin/python3
"""Train the small demo models bundled with Mythos Explorer (an MLA and a GQA variant).

    train_demo.py --out DIR [--minutes 20] [--seed 0] [--variants mla,gqa] [--steps N]

Each variant is written to DIR/demo_<variant>/ as config.json, model.safetensors (fp32),
tokenizer.json and prompts.jsonl, via mythos_torch.save_model_folder.

Why the training is shaped like this:
  * the loop count is sampled per batch (--min-loops..max_loop_iters) so the model works
    at several depths instead of only at the one it was trained with, a precondition for
    depth extrapolation at inference. The range starts well above 1 on purpose: the
    reference ACT gives a position that has not halted by the last loop only the weight
    it has spent so far, so batches run with 1-2 loops reward halting at loop 1-2 and the
    halting head collapses there (every position halted by loop ~2 within 100 steps of
    the first recipe, which sampled 1..max_loop_iters with --ponder 0.01);
  * a ponder cost (the ACT-weighted expected halting step) makes halting early cheaper,
    so easy tokens (plain text, prompt symbols) stop after few loops while answers that
    need several hops keep looping, which is what the explorer visualises;
  * rho(A) is checked after every epoch and, above 0.9, A is scaled down to rho = 0.9
    (the app's "rescale" rule, A' = A * 0.9 / rho): a state that forgets slowly is near
    the edge of stability and makes extrapolation to many loops blow up;
  * the router bias is nudged towards balanced expert load (the reference's
    auxiliary-loss-free scheme: the bias only changes selection, never the gradient);
  * seeded and single-process (torch.manual_seed, random.Random, set_num_threads(2)).
    With the time budget as the binding limit the number of steps depends on machine
    speed; pass --steps with a generous --minutes for bit-reproducible runs.
"""

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The cores are shared with other work: OpenMP threads that spin while waiting make a
# 2-thread run several times slower than 1 thread under load. Must precede import torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mythos_torch as mt  # noqa: E402
import tasks  # noqa: E402

RHO_MAX = 0.9
MAX_BYTES = 2 * 1024 * 1024


def demo_config(variant: str) -> mt.MythosConfig:
    """Small enough for a <= 2 MB fp32 file and CPU training in minutes; the MLA and GQA
    variants share every other dimension so their traces compare directly."""
    return mt.MythosConfig(
        vocab_size=len(tasks.VOCAB), dim=128, n_heads=4, n_kv_heads=2, max_seq_len=128,
        max_loop_iters=6, prelude_layers=1, coda_layers=1, attn_type=variant,
        kv_lora_rank=32, q_lora_rank=64, qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=16,
        n_experts=8, n_shared_experts=1, n_experts_per_tok=2, expert_dim=32,
        act_threshold=0.99, rope_theta=500000.0, lora_rank=8, max_output_tokens=64, dropout=0.0)


def make_batch(rng: random.Random, batch: int, max_len: int):
    """(ids, targets) with targets = -100 wherever no prediction is trained (prompt
    symbols, padding). Rows are right-padded, which a causal model never sees."""
    exs = [tasks.sample_train(rng) for _ in range(batch)]
    rows = [tasks.encode(e.text)[:max_len + 1] for e in exs]
    T = max(len(r) for r in rows) - 1
    ids = torch.zeros(batch, T, dtype=torch.long)
    tgt = torch.full((batch, T), -100, dtype=torch.long)
    valid = torch.zeros(batch, T, dtype=torch.bool)
    for b, (e, r) in enumerate(zip(exs, rows)):
        n = len(r) - 1
        ids[b, :n] = torch.tensor(r[:-1])
        valid[b, :n] = True
        start = max(e.target_from - 1, 0)  # the position whose NEXT char is the first target
        tgt[b, start:n] = torch.tensor(r[start + 1:])
    return ids, tgt, valid


def rescale_rho(model: mt.OpenMythos, target: float = RHO_MAX):
    """If rho(A) > target, rewrite log_A so that A' = A * target / rho (same rule as
    mythos-cli rescale). Returns (rho before, rho after or None)."""
    inj = model.recurrent.injection
    with torch.no_grad():
        A = inj.get_A().double()
        rho = float(A.max())
        if rho <= target:
            return rho, None
        c = target / rho
        s = torch.log(-(torch.log(A.clamp(min=1e-300)) + math.log(c)))
        inj.log_A.copy_((s.clamp(-20, 20) - inj.log_dt.double()).float())
        return rho, float(inj.get_A().max())


@torch.no_grad()
def answer(model, prompt: str, n_chars: int, n_loops: int) -> str:
    """Greedy answer of n_chars characters (the reference generate() call pattern)."""
    ids = torch.tensor([tasks.encode(prompt)])
    out = model.generate_greedy(ids, n_chars, n_loops)
    return tasks.decode(out[0].tolist())


@torch.no_grad()
def evaluate(model, examples, loops_list):
    """Exact-answer accuracy per (task, hops) at each loop count; halting statistics of
    the answer's first position at max_loop_iters."""
    model.eval()
    res = {}
    for n_loops in loops_list:
        for e in examples:
            ok = answer(model, e.prompt, len(e.answer), n_loops) == e.answer
            key = (n_loops, e.task, e.hops)
            c, n = res.get(key, (0, 0))
            res[key] = (c + ok, n + 1)
    model.train()
    return res


def format_eval(res, loops_list) -> str:
    lines = []
    for n_loops in loops_list:
        for task in ("chain", "add"):
            accs = [(h, c / n) for (L, t, h), (c, n) in sorted(res.items()) if L == n_loops and t == task]
            if accs:
                lines.append(f"    loops={n_loops:2d} {task:5s} acc by hops: " +
                             " ".join(f"{h}:{a:.2f}" for h, a in accs))
    return "\n".join(lines)


def train_variant(variant: str, args, budget_s: float, log) -> dict:
    cfg = demo_config(variant)
    seed = args.seed * 100 + (0 if variant == "mla" else 1)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = mt.OpenMythos(cfg)
    # Start A well inside the stable range (rho ~ 0.6) rather than the reference's
    # uniform exp(-1); the per-epoch check keeps it below RHO_MAX from then on.
    # Start the halting head at a small p (--halt-p0, default 0.1): positions then run
    # nearly every loop at first. With the reference's init p ~ 0.5 everything halts after two
    # loops, the uncached loop exits early, and later loops never get a gradient.
    with torch.no_grad():
        model.recurrent.injection.log_A.copy_(torch.randn(cfg.dim) * 0.3)
        p0 = args.halt_p0 if args.halt_p0 > 0 else 1.0 / (cfg.max_loop_iters - 1)
        model.recurrent.act.halt.bias.fill_(math.log(p0 / (1 - p0)))
    n_params = sum(p.numel() for p in model.parameters())
    size = sum(v.numel() * 4 for v in mt.model_state_for_saving(model).values())
    if size > MAX_BYTES:
        raise SystemExit(f"{variant}: {size} bytes exceeds the 2 MB budget")
    log(f"[{variant}] {n_params:,} parameters, {size / 1e6:.2f} MB fp32, budget {budget_s / 60:.1f} min")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "scale" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "scale" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    examples = tasks.eval_set(seed, per_level=args.eval_per_level)
    t0 = time.time()
    step, epoch = 0, 0
    history = []
    ema = None
    first_loss = None
    while True:
        elapsed = time.time() - t0
        progress = max(step / args.steps, elapsed / budget_s)
        if progress >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        ids, tgt, valid = make_batch(rng, args.batch, cfg.max_seq_len - 1)
        n_loops = rng.randint(min(max(args.min_loops, 1), cfg.max_loop_iters), cfg.max_loop_iters)
        logits, aux = model.forward_with_aux(ids, n_loops=n_loops)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        ponder = (aux["expected_steps"] * valid).sum() / valid.sum()
        loss = ce + args.ponder * ponder
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            # Aux-loss-free balancing: raise the bias of under-used experts.
            sel = aux["topk_ids"][:, valid]  # (L, N, k)
            load = torch.bincount(sel.reshape(-1), minlength=cfg.n_experts).float()
            bias = model.recurrent.block.ffn.router_bias
            bias += args.bias_rate * torch.sign(load.mean() - load)
        step += 1
        ce_v = float(ce)
        first_loss = first_loss if first_loss is not None else ce_v
        ema = ce_v if ema is None else 0.95 * ema + 0.05 * ce_v
        if step % args.log_every == 0:
            halt = aux["halt_loop"][valid].float()
            halted = float((halt > 0).float().mean())
            mean_halt = float(halt[halt > 0].mean()) if halted > 0 else float("nan")
            log(f"[{variant}] step {step:5d}  ce {ce_v:.3f} (ema {ema:.3f})  ponder {float(ponder):.2f}"
                f"  loops {n_loops}/{aux['loops_executed']}  halted {halted:.2f} (mean loop {mean_halt:.1f})  lr {lr:.2e}"
                f"  {time.time() - t0:6.1f}s")
        if step % args.epoch_steps == 0:
            epoch += 1
            rho, after = rescale_rho(model)
            if after is not None:
                log(f"[{variant}] epoch {epoch}: rho(A) = {rho:.4f} > {RHO_MAX}, rescaled log_A -> rho {after:.4f}")
            else:
                log(f"[{variant}] epoch {epoch}: rho(A) = {rho:.4f}")
            history.append({"step": step, "ce_ema": ema, "rho_A": rho})
    # A last check: the saved model must satisfy the bound too.
    rho, after = rescale_rho(model)
    if after is not None:
        log(f"[{variant}] final: rho(A) = {rho:.4f} > {RHO_MAX}, rescaled log_A -> rho {after:.4f}")
    loops_list = sorted({cfg.max_loop_iters, 2 * cfg.max_loop_iters})
    res = evaluate(model, examples, loops_list)
    log(f"[{variant}] {step} steps in {time.time() - t0:.0f}s; ce {first_loss:.3f} -> {ema:.3f} (ema); eval:")
    log(format_eval(res, loops_list))

    folder = os.path.join(args.out, f"demo_{variant}")
    meta = {"source": "tools/train_demo.py", "seed": str(args.seed), "steps": str(step),
            "train_ce_ema": f"{ema:.4f}", "train_max_hops": str(tasks.TRAIN_MAX_HOPS),
            "train_max_digits": str(tasks.TRAIN_MAX_DIGITS)}
    model.eval()
    mt.save_model_folder(model, folder, dtype="F32", metadata=meta)
    tasks.write_tokenizer(os.path.join(folder, "tokenizer.json"))
    prompts = tasks.eval_set(args.seed + 12345, per_level=4)  # disjoint from the eval above
    tasks.write_prompts(os.path.join(folder, "prompts.jsonl"), prompts)
    log(f"[{variant}] wrote {folder} ({os.path.getsize(os.path.join(folder, 'model.safetensors')) / 1e6:.2f} MB)")
    return {"variant": variant, "steps": step, "first_ce": first_loss, "final_ce_ema": ema,
            "history": history}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Train the bundled demo models (MLA and GQA).")
    ap.add_argument("--out", required=True, help="output directory (one folder per variant)")
    ap.add_argument("--minutes", type=float, default=20.0, help="total time budget for all variants")
    ap.add_argument("--steps", type=int, default=20000, help="step limit per variant")
    ap.add_argument("--variants", default="mla,gqa")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ponder", type=float, default=0.002, help="weight of the expected halting step")
    ap.add_argument("--min-loops", type=int, default=4,
                    help="fewest loops a training batch runs (uniform up to max_loop_iters)")
    ap.add_argument("--halt-p0", type=float, default=0.1,
                    help="initial halting probability (0 = 1/(max_loop_iters-1))")
    ap.add_argument("--bias-rate", type=float, default=1e-3, help="router bias balancing step")
    ap.add_argument("--epoch-steps", type=int, default=200, help="steps between rho(A) checks")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-per-level", type=int, default=8)
    args = ap.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in ("mla", "gqa") for v in variants):
        ap.error("--variants must list mla and/or gqa")
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    start = time.time()
    total = args.minutes * 60.0
    results = []
    for i, v in enumerate(variants):
        remaining = total - (time.time() - start)
        # Evaluation and saving take a little time after the budget: reserve some.
        budget = max(remaining / (len(variants) - i) - 10.0, 5.0)
        results.append(train_variant(v, args, budget, log))
    log("summary: " + json.dumps([{k: r[k] for k in ("variant", "steps", "first_ce", "final_ce_ema")}
                                   for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
