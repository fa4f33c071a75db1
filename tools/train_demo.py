#!/usr/bin/python3
"""Train the small demo models bundled with Mythos Explorer (an MLA and a GQA variant).

    train_demo.py --out DIR [--minutes 20] [--seed 0] [--variants mla,gqa] [--steps N]

Each variant is written to DIR/demo_<variant>/ as config.json, model.safetensors (fp32),
tokenizer.json and prompts.jsonl, via mythos_torch.save_model_folder.

The bundled demo_mla / demo_gqa come from this script with the command in their model
cards (MODEL_CARD.md), which also give what they learnt, measured by the C++ engine.

Why the training is shaped like this (each point was tried the other way first; the
commit history and the model cards say what happened):
  * a small model (dim 64, 4 experts, max_loop_iters 6, ~0.1 M parameters): with the
    20-minute budget on one core per variant, the number of steps matters more than width;
  * deep supervision: the coda also reads the state after every loop t (a training loss
    only; the model is unchanged), and loop t is asked for every answer of at most t hops.
    Every loop gets a gradient whatever ACT does, and each loop has to add a hop. Training
    on the model's own (ACT) output alone left the loops after the first with almost no
    gradient, and the one lookup the model learnt sat in the coda, where more loops cannot
    repeat it;
  * the coda's attention is held at zero for the first --coda-attn-off of the run, so the
    lookup forms in the recurrent block, and the block's pass-through terms (the state, the
    re-injected input, the block's own residual) are scaled by --inner-scale at the start,
    annealed to exactly the model by --anneal (RecurrentBlock.passthrough_scale). With the full
    pass-through the attention output is small against the token's own embedding, and no
    lookup formed in 1,500 steps; scaled down, it forms in a few hundred. The states the
    deep supervision decodes are scaled the same way (--deep-scale) for the same reason;
  * chains in resolution order (tasks.ORDERED; --shuffled for the old task): each
    statement can be resolved at its own position from the one before it in its chain,
    one hop per loop. With every statement shuffled only the query position can chase
    the pointers, and the models of this budget never learnt a second hop that way;
  * statement supervision (--stmt-sup, a training-only linear probe that is never saved):
    the state after loop t at each statement's right-hand symbol is asked for the digit
    its variable resolves to, once t reaches that statement's hop count. About ten
    targets per line instead of the few answers, and each names the hop the loop adds;
  * loop-index jitter (--loop-jitter, from curriculum level 1): a batch's loops are told
    they are loops offset + i (the loop-index vector and the LoRA row, a training aid that
    is 0, the model, everywhere else), offset uniform in 0..jitter. Training chains are
    resolved by loop 4, so without it "loop 5 or later" always meant "resolved" and ACT
    learnt to stop at about loop 5 whatever the chain: chains beyond the training range
    were resolved in the state (the coda read them right from the last loop) but never
    reached the output. With it, halting follows the state and 7- and 8-hop chains run
    7 and 8 loops;
  * a curriculum: level k trains chains of 1..k+1 hops among at most 3 + 2k statements,
    one level up once the longest chains of a level are answered (or evenly over
    --curriculum of the run at the latest); one loop at level 0, then the loop count is
    sampled per batch up to the longest chain + --loop-slack; several queries per
    training line (--queries), each with its own hop count;
  * the model's ACT output is trained from --act-start on (once the scales have reached
    the model's), for the answers the batch's loop count can reach;
  * halting supervision from --halt-start: the halting probability after loop t is
    trained towards 1 where the coda already answers right from that loop's state and
    towards 0 where it does not, so ACT puts its weight on the first loop that answers
    and harder questions run more loops; a ponder cost (--ponder, the ACT-weighted
    expected halting step, from --ponder-start) on the positions whose halting that does
    not supervise (the chain prompts' symbols), so easy tokens stop early. Charged on the
    answers too (--ponder-answers), it pulled the longest chains' halting a loop or two
    short of what they need;
  * rho(A) is checked after every epoch (--epoch-steps) and, above 0.9, A is scaled down
    to rho = 0.9 (the app's "rescale" rule, A' = A * 0.9 / rho), logged either way;
  * the router bias is nudged towards balanced expert load (the reference's
    auxiliary-loss-free scheme: the bias only changes selection, never the gradient);
  * a fan-in initialisation (--init, --embed-std) instead of the reference's N(0, 0.02):
    with the small embedding the lookups were not learnt at all in the budget;
  * seeded and single-process (torch.manual_seed, random.Random, --threads, default 1).
    With the time budget as the binding limit the number of steps depends on machine
    speed; pass --steps with a generous --minutes for bit-reproducible runs. Debian's
    python3-torch uses the reference BLAS (libblas3); with libopenblas0-pthread as
    libblas.so.3 (OPENBLAS_NUM_THREADS=1) a step is about twice as fast.
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


def demo_config(variant: str, dim: int = 64, max_loop_iters: int = 6) -> mt.MythosConfig:
    """Small enough for a <= 2 MB fp32 file and thousands of CPU steps in 20 minutes; the
    MLA and GQA variants share every other dimension so their traces compare directly."""
    return mt.MythosConfig(
        vocab_size=len(tasks.VOCAB), dim=dim, n_heads=4, n_kv_heads=2, max_seq_len=96,
        max_loop_iters=max_loop_iters, prelude_layers=1, coda_layers=1, attn_type=variant,
        kv_lora_rank=32, q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
        n_experts=4, n_shared_experts=1, n_experts_per_tok=2, expert_dim=32,
        act_threshold=0.99, rope_theta=10000.0, lora_rank=8, max_output_tokens=64, dropout=0.0)


def make_batch(rng: random.Random, batch: int, max_len: int, max_hops: int = tasks.TRAIN_MAX_HOPS,
               queries: int = 1, max_statements: int = 0):
    """(ids, targets, valid, target_hops, stmt_value, stmt_hops) with targets = -100
    wherever no prediction is trained (prompt symbols, padding). Rows are right-padded,
    which a causal model never sees. ``target_hops`` is each chain answer's hop count (0
    for text and untrained positions): deep supervision asks loop t for the answers of at
    most t hops. ``stmt_value`` / ``stmt_hops``: at each statement's right-hand symbol,
    the digit its variable resolves to (-100 elsewhere) and the hops that takes."""
    exs = [tasks.sample_train(rng, max_hops=max_hops, queries=queries, max_statements=max_statements)
           for _ in range(batch)]
    rows = [tasks.encode(e.text)[:max_len + 1] for e in exs]
    T = max(len(r) for r in rows) - 1
    ids = torch.zeros(batch, T, dtype=torch.long)
    tgt = torch.full((batch, T), -100, dtype=torch.long)
    valid = torch.zeros(batch, T, dtype=torch.bool)
    thop = torch.zeros(batch, T, dtype=torch.long)
    sval = torch.full((batch, T), -100, dtype=torch.long)
    shop = torch.zeros(batch, T, dtype=torch.long)
    for b, (e, r) in enumerate(zip(exs, rows)):
        n = len(r) - 1
        ids[b, :n] = torch.tensor(r[:-1])
        valid[b, :n] = True
        for pos, digit, hops in e.statements or []:
            if pos < n:
                sval[b, pos], shop[b, pos] = int(digit), hops
        hops = e.target_hops or ([e.hops] if e.task == "chain" else [])
        for j, c in enumerate(e.targets):  # position c - 1 predicts character c
            if 1 <= c <= n:
                tgt[b, c - 1] = r[c]
                if j < len(hops):
                    thop[b, c - 1] = hops[j]
    return ids, tgt, valid, thop, sval, shop


def init_fan_in(model: mt.OpenMythos, embed_std: float) -> None:
    """A training-speed initialisation (the model's semantics do not depend on it): every
    Linear N(0, 1/fan_in), the projections back into the residual stream (attention wo,
    expert down) halved, the halting head left at the reference's N(0, 0.02), the
    (tied) embedding N(0, embed_std^2). The embedding scale is what matters: with the
    reference's N(0, 0.02), or even 0.25, this model did not learn a one-hop lookup
    ("a=1;b=2;c=3;?b" -> 2) in 3000 steps, while with std 1 it learnt it in about 500
    (the initial loss is high, about 28, since the head is tied, and falls within 50 steps)."""
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and m is not model.head and "act.halt" not in name:
            std = m.in_features ** -0.5
            if name.endswith(".wo") or name.endswith(".down"):
                std *= 0.5
            torch.nn.init.normal_(m.weight, std=std)
    torch.nn.init.normal_(model.embed.weight, std=embed_std)


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


def row_ce(logits, tgt):
    """Cross-entropy averaged per row, then over rows: a chain's answer (one digit and
    the newline) weighs as much as a whole line of text instead of 1/20 of it."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100,
                         reduction="none").view(tgt.shape)
    n = (tgt != -100).sum(1)
    rows = n > 0
    return (ce.sum(1)[rows] / n[rows]).mean()


def coda_logits(model, h):
    """Logits of the coda applied to a recurrent state h (B, T, dim) from position 0."""
    t = h.shape[1]
    freqs = model._rope(0, t)
    mask = mt.causal_mask(t, t, h.device, h.dtype)
    for layer in model.coda:
        h = layer(h, freqs, mask)
    return model.head(model.norm(h))


@torch.no_grad()
def quick_eval(model, examples, loops_list):
    """Chain prompts only (one answer digit): {loops: {hops: (accuracy, mean halting loop
    of the query position, fraction of prompt tokens halted)}} from one right-padded
    batch per loop count (causal, so padding changes nothing for the real positions)."""
    was = model.training
    model.eval()
    rows = [tasks.encode(e.prompt) for e in examples]
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    last = torch.tensor([len(r) - 1 for r in rows])
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    gold = torch.tensor([tasks.STOI[e.answer] for e in examples])
    hops = torch.tensor([e.hops for e in examples])
    out = {}
    for L in loops_list:
        logits, aux = model.forward_with_aux(ids, n_loops=L)
        idx = torch.arange(len(rows))
        ok = (logits[idx, last].argmax(-1) == gold).float()
        hq = aux["halt_loop"][idx, last].float()
        hq = torch.where(hq > 0, hq, torch.full_like(hq, float("nan")))
        res = {}
        for h in sorted(set(hops.tolist())):
            m = hops == h
            res[h] = (float(ok[m].mean()), float(hq[m].nanmean()))
        out[L] = res
    model.train(was)
    return out


def format_eval(res) -> str:
    lines = []
    for L, by_h in res.items():
        lines.append(f"    loops={L:2d} acc/halt(query) by hops: " +
                     " ".join(f"{h}:{a:.2f}/{q:.1f}" for h, (a, q) in by_h.items()) +
                     f"  mean acc {sum(a for a, _ in by_h.values()) / len(by_h):.3f}")
    return "\n".join(lines)


def train_variant(variant: str, args, budget_s: float, log) -> dict:
    cfg = demo_config(variant, args.dim, args.max_loops)
    seed = args.seed * 100 + (0 if variant == "mla" else 1)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = mt.OpenMythos(cfg)
    # Start A well inside the stable range (rho ~ 0.6) rather than the reference's
    # uniform exp(-1); the per-epoch check keeps it below RHO_MAX from then on.
    # Start the halting head at a small p (--halt-p0): positions then run every loop at
    # first. With the reference's init p ~ 0.5 everything halts after two loops, the
    # uncached loop exits early, and later loops never get a gradient.
    with torch.no_grad():
        if args.init == "fan_in":
            init_fan_in(model, args.embed_std)
        model.recurrent.injection.log_A.copy_(torch.randn(cfg.dim) * 0.3)
        model.recurrent.act.halt.bias.fill_(math.log(args.halt_p0 / (1 - args.halt_p0)))
    n_params = sum(p.numel() for p in model.parameters())
    size = sum(v.numel() * 4 for v in mt.model_state_for_saving(model).values())
    if size > MAX_BYTES:
        raise SystemExit(f"{variant}: {size} bytes exceeds the 2 MB budget")
    log(f"[{variant}] {n_params:,} parameters, {size / 1e6:.2f} MB fp32, budget {budget_s / 60:.1f} min,"
        f" {args.steps} steps max")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "scale" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "scale" not in n)]
    # The statement probe (--stmt-sup): a training aid outside the model, never saved.
    probe = torch.nn.Linear(cfg.dim, 10)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other + list(probe.parameters()), "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    examples = [e for e in tasks.eval_set(seed, per_level=args.eval_per_level, max_digits=0)]
    t0 = time.time()
    step, epoch = 0, 0
    history = []
    ema = None
    first_loss = None
    level, acc_ema = 0, 0.0
    n_levels = tasks.TRAIN_MAX_HOPS + 4  # hops grow to TRAIN_MAX_HOPS, statements to MAX_STATEMENTS
    while True:
        elapsed = time.time() - t0
        progress = max(step / args.steps, elapsed / budget_s)
        if progress >= 1.0:
            break
        # Curriculum: level k trains chains of 1..k+1 hops among at most 3 + 2k statements.
        # One level up once the longest chains of this level are answered (EMA above
        # --level-acc), at the latest evenly over the first --curriculum of the run.
        forced = int(progress / max(args.curriculum, 1e-9) * n_levels)
        if level < n_levels - 1 and (acc_ema > args.level_acc or forced > level):
            level += 1
            acc_ema = 0.0
            log(f"[{variant}] step {step}: curriculum level {level}")
        max_hops = min(tasks.TRAIN_MAX_HOPS, 1 + level)
        max_st = min(tasks.MAX_STATEMENTS, args.start_statements + 2 * level)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        # One loop while the lookup forms (level 0), then up to the longest chain + slack.
        hi = min(cfg.max_loop_iters, max_hops + (args.loop_slack if level > 0 else 0))
        n_loops = rng.randint(min(max(args.min_loops, 1), hi), hi)
        ids, tgt, valid, thop, sval, shop = make_batch(rng, args.batch, cfg.max_seq_len - 1, max_hops, args.queries, max_st)
        states = []
        hook = model.recurrent.injection.register_forward_hook(lambda m, i, o: states.append(o))
        inner = math.exp(math.log(args.inner_scale) * max(0.0, 1.0 - progress / max(args.anneal, 1e-9)))
        model.recurrent.passthrough_scale = inner
        # Loop-index jitter (--loop-jitter): from level 1 on, a batch's loops may be told
        # they are later loops than they are, so "loop 5" also sees unresolved chains and
        # halting has to read the state, not the loop number.
        offset = rng.randint(0, args.loop_jitter) if args.loop_jitter > 0 and level > 0 else 0
        model.recurrent.loop_offset = offset
        try:
            logits, aux = model.forward_with_aux(ids, n_loops=n_loops)
        finally:
            hook.remove()
            model.recurrent.passthrough_scale = 1.0
            model.recurrent.loop_offset = 0
        L = len(states)
        B, T = ids.shape
        # (1) The model's own output (the reference's ACT mixture), for answers it has
        # loops enough for; phased in once the loops do the lookups (--act-start).
        act_w = min(1.0, max(0.0, (progress - args.act_start) / 0.1))
        ce_act = row_ce(logits, torch.where(thop <= n_loops, tgt, torch.full_like(tgt, -100)))
        # (2) Deep supervision (a training loss; the model is unchanged): the coda reads
        # the state after every loop t and must give the answers of at most t hops. Every
        # loop gets a gradient whatever ACT does, and each loop must add a hop. The state is
        # scaled by --deep-scale, annealed to 1 by --anneal of the run: with the full
        # state the token's own embedding dominates the coda's residual stream and no
        # lookup formed in 1,500 steps; at 0.1 it forms in about 200.
        scale = math.exp(math.log(args.deep_scale) * max(0.0, 1.0 - progress / max(args.anneal, 1e-9)))
        h_all = torch.stack(states)  # (L, B, T, dim): every loop's state
        deep = coda_logits(model, scale * h_all.view(L * B, T, -1)).view(L, B, T, -1)
        loops_t = torch.arange(1, L + 1)[:, None, None]
        tgt_deep = torch.where(thop[None] <= loops_t, tgt[None].expand(L, B, T), torch.full((L, B, T), -100))
        ce_deep = row_ce(deep.permute(1, 0, 2, 3).reshape(B, L * T, -1), tgt_deep.permute(1, 0, 2).reshape(B, L * T))
        loss = act_w * ce_act + args.deep_sup * ce_deep
        # (2b) Statement supervision (a training-only probe, not saved): the state after
        # loop t at each statement's right-hand symbol should hold the digit its variable
        # resolves to, once t reaches the statement's hop count: one hop per loop, at
        # every statement, instead of the few answers per line.
        if args.stmt_sup > 0:
            logits_s = probe(h_all * torch.rsqrt(h_all.pow(2).mean(-1, keepdim=True) + 1e-6))
            tgt_s = torch.where(shop[None] <= loops_t, sval[None].expand(L, B, T), torch.full((L, B, T), -100))
            if bool((tgt_s != -100).any()):
                loss = loss + args.stmt_sup * F.cross_entropy(logits_s.reshape(-1, 10), tgt_s.reshape(-1),
                                                              ignore_index=-100)
        # (3) Halting supervision: p after loop t should be 1 where the coda already gives
        # the right answer from h_t, 0 where it does not, so ACT's weight lands on the
        # first loop that answers and hard answers run longer.
        halt_w = args.halt_sup * min(1.0, max(0.0, (progress - args.halt_start) / 0.1))
        if halt_w > 0:
            with torch.no_grad():
                right = (deep.argmax(-1) == tgt[None]).float()
                trained = (tgt[None] != -100).expand(L, B, T)
            loss = loss + halt_w * F.binary_cross_entropy(aux["p"].clamp(1e-6, 1 - 1e-6)[trained], right[trained])
        # (4) A ponder cost (the ACT-weighted expected halting step) on every position whose
        # halting (3) does not supervise: the chain prompts' symbols, which then stop early.
        # On the answers it would also pull the hard ones below the loops they need (tried:
        # 7- and 8-hop chains halted a loop or two short, and lost most of their accuracy).
        ponder_w = args.ponder * min(1.0, max(0.0, (progress - args.ponder_start) / args.ponder_ramp))
        pondered = valid if args.ponder_answers else valid & (tgt == -100)
        ponder = (aux["expected_steps"] * pondered).sum() / pondered.sum().clamp(min=1)
        loss = loss + ponder_w * ponder
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if progress < args.coda_attn_off:
            # The coda's attention stays off at first, so the lookup has to form in the
            # recurrent block (where more loops can repeat it), not in the coda.
            for layer in model.coda:
                layer.attn.wo.weight.grad = None
                with torch.no_grad():
                    layer.attn.wo.weight.zero_()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            # Aux-loss-free balancing: raise the bias of under-used experts.
            sel = aux["topk_ids"][:, valid]  # (L, N, k)
            load = torch.bincount(sel.reshape(-1), minlength=cfg.n_experts).float()
            bias = model.recurrent.block.ffn.router_bias
            bias += args.bias_rate * torch.sign(load.mean() - load)
            hardest = (tgt_deep[-1] != -100) & (thop == min(max_hops, L))
            if hardest.any():
                acc = float((deep[-1].argmax(-1) == tgt)[hardest].float().mean())
                acc_ema = 0.9 * acc_ema + 0.1 * acc
        step += 1
        ce_v = float(ce_deep)
        first_loss = first_loss if first_loss is not None else ce_v
        ema = ce_v if ema is None else 0.95 * ema + 0.05 * ce_v
        if step % args.log_every == 0:
            with torch.no_grad():
                per_loop = []
                for t in range(L):
                    m = (tgt_deep[t] != -100) & (thop > 0)
                    per_loop.append(float((deep[t].argmax(-1) == tgt)[m].float().mean()) if m.any() else float("nan"))
            halt = aux["halt_loop"][valid].float()
            halted = float((halt > 0).float().mean())
            mean_halt = float(halt[halt > 0].mean()) if halted > 0 else float("nan")
            log(f"[{variant}] step {step:5d}  ce deep {ce_v:.3f} (ema {ema:.3f}) act {float(ce_act):.3f} x {act_w:.2f}"
                f"  answers right by loop " + " ".join(f"{a:.2f}" for a in per_loop) +
                f"  level {level} (ema {acc_ema:.2f})  scale {scale:.2f}/{inner:.2f}  halted {halted:.2f} (mean loop {mean_halt:.1f})"
                f"  lr {lr:.2e}  {time.time() - t0:6.1f}s")
        if step % args.epoch_steps == 0:
            epoch += 1
            rho, after = rescale_rho(model)
            if after is not None:
                log(f"[{variant}] epoch {epoch} (step {step}): rho(A) = {rho:.4f} > {RHO_MAX}, "
                    f"rescaled log_A -> rho {after:.4f}")
            else:
                log(f"[{variant}] epoch {epoch} (step {step}): rho(A) = {rho:.4f}")
            history.append({"step": step, "ce_ema": ema, "rho_A": rho, "rescaled": after is not None})
        if args.eval_every and step % args.eval_every == 0:
            log(format_eval(quick_eval(model, examples, [1, 2, cfg.max_loop_iters, 2 * cfg.max_loop_iters])))
    # A last check: the saved model must satisfy the bound too.
    rho, after = rescale_rho(model)
    if after is not None:
        log(f"[{variant}] final: rho(A) = {rho:.4f} > {RHO_MAX}, rescaled log_A -> rho {after:.4f}")
    train_s = time.time() - t0
    log(f"[{variant}] {step} steps in {train_s:.0f}s; ce {first_loss:.3f} -> {ema:.3f} (ema); eval:")
    log(format_eval(quick_eval(model, examples, [1, 2, 4, cfg.max_loop_iters, 2 * cfg.max_loop_iters])))

    folder = os.path.join(args.out, f"demo_{variant}")
    meta = {"source": "tools/train_demo.py", "seed": str(args.seed), "steps": str(step),
            "train_seconds": f"{train_s:.0f}", "train_ce_ema": f"{ema:.4f}",
            "train_max_hops": str(tasks.TRAIN_MAX_HOPS)}
    model.eval()
    mt.save_model_folder(model, folder, dtype="F32", metadata=meta)
    tasks.write_tokenizer(os.path.join(folder, "tokenizer.json"))
    prompts = tasks.eval_set(args.seed + 12345, per_level=args.prompts_per_level, max_digits=0)
    tasks.write_prompts(os.path.join(folder, "prompts.jsonl"), prompts)
    log(f"[{variant}] wrote {folder} ({os.path.getsize(os.path.join(folder, 'model.safetensors')) / 1e6:.2f} MB)")
    return {"variant": variant, "steps": step, "seconds": round(train_s), "first_ce": first_loss,
            "final_ce_ema": ema, "history": history}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Train the bundled demo models (MLA and GQA).")
    ap.add_argument("--out", required=True, help="output directory (one folder per variant)")
    ap.add_argument("--minutes", type=float, default=20.0, help="total time budget for all variants")
    ap.add_argument("--steps", type=int, default=20000, help="step limit per variant")
    ap.add_argument("--variants", default="mla,gqa")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dim", type=int, default=64, help="model width")
    ap.add_argument("--max-loops", type=int, default=6, help="max_loop_iters of the model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--deep-sup", type=float, default=1.0,
                    help="weight of the deep supervision (the coda on every loop's state)")
    ap.add_argument("--stmt-sup", type=float, default=1.0,
                    help="weight of the statement probe (each statement's resolved digit from loop t's state)")
    ap.add_argument("--loop-jitter", type=int, default=4,
                    help="most loop-index offset a training batch is given (0: none)")
    ap.add_argument("--shuffled", action="store_true",
                    help="chain statements in random order instead of resolution order (tasks.ORDERED)")
    ap.add_argument("--deep-scale", type=float, default=0.1,
                    help="scale of the states the deep supervision decodes at the start (annealed to 1)")
    ap.add_argument("--inner-scale", type=float, default=0.1,
                    help="scale of the recurrent block's pass-through terms at the start (annealed to 1)")
    ap.add_argument("--anneal", type=float, default=0.6,
                    help="fraction of the run by which --deep-scale has reached 1")
    ap.add_argument("--act-start", type=float, default=0.55,
                    help="fraction of the run from which the loss on the model's own (ACT) output is phased in")
    ap.add_argument("--halt-sup", type=float, default=0.5, help="weight of the halting supervision")
    ap.add_argument("--halt-start", type=float, default=0.5,
                    help="fraction of the run from which the halting supervision is phased in")
    ap.add_argument("--coda-attn-off", type=float, default=0.45,
                    help="fraction of the run during which the coda's attention output is held at zero")
    ap.add_argument("--ponder", type=float, default=0.005, help="weight of the expected halting step")
    ap.add_argument("--ponder-answers", action="store_true",
                    help="charge the ponder cost on the supervised answers too")
    ap.add_argument("--ponder-start", type=float, default=0.5,
                    help="fraction of the run before the ponder cost is switched on")
    ap.add_argument("--ponder-ramp", type=float, default=0.2,
                    help="fraction of the run over which the ponder weight rises to --ponder")
    ap.add_argument("--loop-slack", type=int, default=2,
                    help="most loops a batch runs: longest chain of the curriculum + this")
    ap.add_argument("--min-loops", type=int, default=1,
                    help="fewest loops a training batch runs (uniform up to the curriculum's most)")
    ap.add_argument("--queries", type=int, default=6,
                    help="queries per training chain (the first about the main chain)")
    ap.add_argument("--start-statements", type=int, default=3,
                    help="curriculum: most statements per chain at level 0 (+2 per level)")
    ap.add_argument("--level-acc", type=float, default=0.8,
                    help="curriculum: next level once the longest chains are answered this well (EMA)")
    ap.add_argument("--curriculum", type=float, default=0.7,
                    help="fraction of the run by which the curriculum reaches its last level at the latest")
    ap.add_argument("--init", choices=("fan_in", "reference"), default="fan_in",
                    help="weight initialisation (fan_in: N(0, 1/fan_in), see init_fan_in)")
    ap.add_argument("--embed-std", type=float, default=1.0, help="embedding std with --init fan_in")
    ap.add_argument("--halt-p0", type=float, default=0.1, help="initial halting probability")
    ap.add_argument("--bias-rate", type=float, default=1e-3, help="router bias balancing step")
    ap.add_argument("--epoch-steps", type=int, default=200, help="steps between rho(A) checks (an epoch)")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=0, help="steps between quick evaluations (0: end only)")
    ap.add_argument("--eval-per-level", type=int, default=8)
    ap.add_argument("--prompts-per-level", type=int, default=16, help="prompts.jsonl entries per hop count")
    args = ap.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in ("mla", "gqa") for v in variants):
        ap.error("--variants must list mla and/or gqa")
    torch.set_num_threads(args.threads)
    if args.shuffled:
        tasks.ORDERED = False
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
    log("summary: " + json.dumps([{k: r[k] for k in ("variant", "steps", "seconds", "first_ce", "final_ce_ema")}
                                   for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
