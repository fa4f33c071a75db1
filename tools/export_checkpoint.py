#!/usr/bin/python3
"""Convert a PyTorch OpenMythos checkpoint (.pt) into the folder Mythos Explorer opens.

    export_checkpoint.py --state-dict model.pt --config cfg.json --out DIR [--dtype f32|bf16]
    export_checkpoint.py --state-dict model.pt --config-fields dim=256,n_heads=8,... --out DIR

Why a converter instead of reading .pt in the app: .pt files are pickles (arbitrary code
on load, Python-only), while the app reads safetensors, which is plain data. The
converter accepts the usual wrappings ({"model": sd}, {"state_dict": sd}, a whole
nn.Module, DataParallel "module." / torch.compile "_orig_mod." prefixes), checks every
key and shape against the config before writing anything (so a wrong config is reported
as such, not as a broken model later), drops what the folder must not hold (the tied
head.weight, the complex RoPE buffers) and writes each file atomically.

The config can also come from the checkpoint itself when it stores one under "config"
or "cfg" (a dict or a MythosConfig-like object); --config/--config-fields win.
"""

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import mythos_torch as mt  # noqa: E402

PREFIXES = ("module.", "_orig_mod.")


class ExportError(Exception):
    """A problem with the user's inputs, reported as one readable line."""


def parse_config_fields(text: str) -> dict:
    """"dim=256,attn_type=gqa" -> dict with each value typed like the dataclass field,
    so a typo such as dim=2S6 fails here and not deep inside the model."""
    fields = {f.name: f for f in dataclasses.fields(mt.MythosConfig)}
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ExportError(f"--config-fields: '{item}' is not key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in fields:
            raise ExportError(f"--config-fields: unknown field '{key}' "
                              f"(known: {', '.join(fields)})")
        kind = mt.MythosConfig.__dataclass_fields__[key].type
        try:
            if kind in (int, "int"):
                out[key] = int(value)
            elif kind in (float, "float"):
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError:
            raise ExportError(f"--config-fields: {key}={value} is not a valid {kind}") from None
    return out


def unwrap_state_dict(obj, source: str):
    """Returns (state_dict, embedded config dict or None) from whatever torch.load gave."""
    cfg = None
    if isinstance(obj, dict):
        for key in ("config", "cfg"):
            c = obj.get(key)
            if c is not None:
                cfg = dataclasses.asdict(c) if dataclasses.is_dataclass(c) else (
                    c if isinstance(c, dict) else getattr(c, "__dict__", None))
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
            obj = obj[key]
            break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ExportError(f"{source}: no state_dict found (expected a dict of tensors, "
                          "possibly under 'model' or 'state_dict')")
    sd = {}
    for k, v in obj.items():
        name = k
        stripped = True
        while stripped:
            stripped = False
            for p in PREFIXES:
                if name.startswith(p):
                    name, stripped = name[len(p):], True
        if name in sd:
            raise ExportError(f"{source}: key '{name}' appears twice after removing prefixes")
        sd[name] = v
    return sd, cfg


def prepare_tensors(sd: dict, cfg: mt.MythosConfig, dtype: torch.dtype, source: str) -> dict:
    """Checks the state_dict against the config and returns the tensors to store, in the
    reference's state_dict order, converted to ``dtype``."""
    sd = {k: v for k, v in sd.items() if k not in mt.ROPE_BUFFERS}
    if "embed.weight" not in sd and "head.weight" in sd:
        sd["embed.weight"] = sd["head.weight"]  # tied: either name holds the weight
    for k, v in sd.items():
        if v.is_complex() or not (v.is_floating_point()):
            raise ExportError(f"{source}: tensor '{k}' has dtype {v.dtype}; expected floating point")
    try:
        mt.check_state_dict(cfg, sd, source)
    except ValueError as e:
        raise ExportError(str(e)) from None
    order = [k for k in mt.expected_shapes(cfg) if k != "head.weight"]
    return {k: sd[k].detach().to("cpu", dtype).contiguous() for k in order}


def export(state_dict_path: str, out_dir: str, config: dict = None, dtype: str = "f32") -> mt.MythosConfig:
    dt = {"f32": torch.float32, "bf16": torch.bfloat16}.get(dtype.lower())
    if dt is None:
        raise ExportError(f"--dtype must be f32 or bf16, not {dtype}")
    if not os.path.isfile(state_dict_path):
        raise ExportError(f"{state_dict_path}: no such file")
    try:
        obj = torch.load(state_dict_path, map_location="cpu")
    except Exception as e:  # a pickle can fail in many ways; name the file
        raise ExportError(f"{state_dict_path}: cannot be read by torch.load ({e})") from None
    sd, embedded = unwrap_state_dict(obj, state_dict_path)
    merged = dict(embedded or {})
    merged.update(config or {})
    if not merged:
        raise ExportError("no config: give --config cfg.json or --config-fields k=v,...")
    try:
        cfg = mt.MythosConfig.from_dict(merged, "config")
    except ValueError as e:
        raise ExportError(str(e)) from None
    tensors = prepare_tensors(sd, cfg, dt, state_dict_path)
    meta = {"format": "pt", "source": "export_checkpoint.py", "tied": "embed.weight=head.weight",
            "dtype": "BF16" if dt == torch.bfloat16 else "F32",
            "origin": os.path.basename(state_dict_path)}
    os.makedirs(out_dir, exist_ok=True)
    mt.write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, meta)
    mt.write_atomic(os.path.join(out_dir, "config.json"), cfg.to_json_text().encode("utf-8"))
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dict", required=True, help="PyTorch checkpoint (.pt)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--config", help="config JSON (dataclasses.asdict(MythosConfig))")
    g.add_argument("--config-fields", help="config as k=v,... (other fields keep the defaults)")
    ap.add_argument("--out", required=True, help="output model folder")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    args = ap.parse_args(argv)
    try:
        config = None
        if args.config:
            try:
                with open(args.config, encoding="utf-8") as f:
                    config = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                raise ExportError(f"{args.config}: {e}") from None
            if not isinstance(config, dict):
                raise ExportError(f"{args.config}: expected a JSON object")
        elif args.config_fields is not None:
            config = parse_config_fields(args.config_fields)
        cfg = export(args.state_dict, args.out, config, args.dtype)
    except ExportError as e:
        print(f"export_checkpoint: error: {e}", file=sys.stderr)
        return 1
    n = sum(1 for _ in mt.expected_shapes(cfg)) - 1
    print(f"wrote {args.out}: {n} tensors ({args.dtype}), attn={cfg.attn_type}, dim={cfg.dim}, "
          f"vocab={cfg.vocab_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
