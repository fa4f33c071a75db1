#!/usr/bin/python3
"""Checkpoints laid out like those of the reference trainer (kyegomez/OpenMythos,
training/3b_fine_web_edu.py, save_checkpoint), for the exporter's tests.

What that function writes, restated: torch.save of a dict
``{"step", "model": model.state_dict(), "optimizer": optimizer.state_dict(), "cfg",
"vocab_size"}`` to ``step_{step:07d}.pt.tmp`` in the checkpoint folder, then
os.replace to ``step_{step:07d}.pt``; ``cfg`` is the MythosConfig dataclass instance of
module ``open_mythos.main``. Here the model is mythos_torch's OpenMythos (same state_dict
names), the optimizer AdamW after real steps, and the cfg an instance of a dataclass
made here whose ``__module__`` is ``open_mythos.main`` and whose fields are the
reference's; the module exists only while pickling, so the reader cannot import it.
``prefix`` adds what DataParallel/FSDP ("module.") or torch.compile ("_orig_mod.") put
in front of the names.

As a program (the GUI test uses it to make a checkpoint of a model folder):
    reference_checkpoint.py --model FOLDER --dir OUT_DIR --step N [--prefix module.]
prints the checkpoint's path.
"""

import argparse
import contextlib
import dataclasses
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402

import mythos_torch as mt  # noqa: E402

FOREIGN_MODULE = "open_mythos.main"


def _make_foreign_class():
    fields = [(f.name, f.type, dataclasses.field(default=f.default))
              for f in dataclasses.fields(mt.MythosConfig)]
    cls = dataclasses.make_dataclass("MythosConfig", fields)
    cls.__module__ = FOREIGN_MODULE
    cls.__qualname__ = "MythosConfig"
    return cls


ForeignMythosConfig = _make_foreign_class()


@contextlib.contextmanager
def foreign_module():
    """open_mythos and open_mythos.main exist in sys.modules only inside this block."""
    pkg = types.ModuleType("open_mythos")
    pkg.__path__ = []
    main = types.ModuleType(FOREIGN_MODULE)
    main.MythosConfig = ForeignMythosConfig
    pkg.main = main
    saved = {k: sys.modules.get(k) for k in ("open_mythos", FOREIGN_MODULE)}
    sys.modules["open_mythos"], sys.modules[FOREIGN_MODULE] = pkg, main
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def train_steps(model, steps=1, seed=0):
    """AdamW steps on random ids, so the optimizer state holds exp_avg/exp_avg_sq."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, model.cfg.vocab_size, (2, 6), generator=g)
        logits = model(ids, 2)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return opt


def save_like_reference(model, optimizer, ckpt_dir, step, prefix="", extra_optimizer=None,
                        cfg=None):
    """Writes ckpt_dir/step_{step:07d}.pt the reference's way and returns its path.
    ``extra_optimizer`` {name: tensor} is added to the optimizer state (to make it big)."""
    cfg = cfg or ForeignMythosConfig(**dataclasses.asdict(model.cfg))
    model_state = {prefix + k: v for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    if extra_optimizer:
        optim_state["state"][len(optim_state["state"]) + 1000] = dict(extra_optimizer)
    os.makedirs(ckpt_dir, exist_ok=True)
    final_path = os.path.join(ckpt_dir, f"step_{step:07d}.pt")
    tmp_path = final_path + ".tmp"
    with foreign_module():
        torch.save({"step": step, "model": model_state, "optimizer": optim_state, "cfg": cfg,
                    "vocab_size": cfg.vocab_size}, tmp_path)
    os.replace(tmp_path, final_path)
    return final_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model folder (config.json + safetensors)")
    ap.add_argument("--dir", required=True, help="checkpoint folder")
    ap.add_argument("--step", type=int, default=1000)
    ap.add_argument("--prefix", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = mt.load_model_folder(args.model)
    # An optimizer state from one step with zero gradients and no weight decay, which
    # leaves the weights as the folder has them.
    opt = torch.optim.AdamW(model.parameters(), weight_decay=0.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    print(save_like_reference(model, opt, args.dir, args.step, args.prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
