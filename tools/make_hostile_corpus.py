#!/usr/bin/env python3
"""Writes tests/data/hostile/: files a careless user or an attacker could hand the tool
(model folders, config.json, tokenizer.json, traces, prompt sets, ids, config variants),
each small, and cases.json saying how each is opened and what must happen.

    /usr/bin/python3 tools/make_hostile_corpus.py [OUT_DIR] [--cli build/release/app/mythos-cli]

Every case is derived from one micro model (random weights, seed 0) and from a trace the
CLI writes of it, so the corpus is deterministic. tests/hostile/run_hostile.py runs it.
"""
import argparse
import copy
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import mythos_torch as mt  # noqa: E402

MICRO = dict(vocab_size=48, dim=16, n_heads=2, n_kv_heads=1, max_seq_len=32, max_loop_iters=3,
             prelude_layers=1, coda_layers=1, attn_type="mla", kv_lora_rank=8, q_lora_rank=8,
             qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=4, n_experts=4, n_shared_experts=1,
             n_experts_per_tok=2, expert_dim=8, act_threshold=0.99, rope_theta=500000.0, lora_rank=2,
             max_output_tokens=64, dropout=0.0)
CHARS = ["<pad>", "\n", " "] + list("0123456789abcdefghijklmnopqrstuvwxyz=;?+.,!'")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return raw, json.loads(raw[8:8 + n]), 8 + n


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("out", nargs="?", default=os.path.join(root, "tests", "data", "hostile"))
    ap.add_argument("--cli", default=os.path.join(root, "build", "release", "app", "mythos-cli"))
    a = ap.parse_args()
    out = a.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    cases = []

    def case(name, kind, expect, files=None, note=""):
        cases.append({"name": name, "kind": kind, "expect": expect, "note": note, **(files or {})})

    # --- the micro model and its variants ----------------------------------------------
    torch.manual_seed(0)
    cfg = mt.MythosConfig(**MICRO)
    model = mt.OpenMythos(cfg)
    good = os.path.join(out, "model_ok")
    mt.save_model_folder(model, good)
    tok = {"type": "char", "version": 1, "vocab": CHARS, "unk": 0}
    write(os.path.join(good, "tokenizer.json"), json.dumps(tok))
    case("model_ok", "model", "ok", note="the valid micro model every other case breaks")
    raw, header, data0 = read_st(os.path.join(good, "model.safetensors"))

    def model_variant(name, expect, note, st=None, config=None, tokenizer=None, drop=()):
        d = os.path.join(out, name)
        shutil.copytree(good, d)
        if st is not None:
            write(os.path.join(d, "model.safetensors"), st)
        if config is not None:
            write(os.path.join(d, "config.json"), config)
        if tokenizer is not None:
            write(os.path.join(d, "tokenizer.json"), tokenizer)
        for f in drop:
            os.remove(os.path.join(d, f))
        case(name, "model", expect, note=note)

    def with_tensor(name, fn):
        b = bytearray(raw)
        lo, hi = header[name]["data_offsets"]
        vals = list(struct.unpack("<%df" % ((hi - lo) // 4), bytes(b[data0 + lo:data0 + hi])))
        fn(vals)
        b[data0 + lo:data0 + hi] = struct.pack("<%df" % len(vals), *vals)
        return bytes(b)

    def with_header(h):
        text = json.dumps(h).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + raw[data0:]

    nan, inf = float("nan"), float("inf")
    model_variant("model_nan_weight", "warning", "a NaN in a prelude matrix: opens, with a warning",
                  st=with_tensor("prelude.0.attn.wo.weight" if "prelude.0.attn.wo.weight" in header
                                 else sorted(k for k in header if k.startswith("prelude"))[0],
                                 lambda v: v.__setitem__(3, nan)))
    model_variant("model_inf_log_A", "warning", "log_A = +inf: rho(A) is not finite, not 0",
                  st=with_tensor("recurrent.injection.log_A", lambda v: v.__setitem__(0, inf)))
    model_variant("model_truncated", "error", "model.safetensors cut in half", st=raw[:len(raw) // 2])
    model_variant("model_empty_st", "error", "model.safetensors of 0 bytes", st=b"")
    model_variant("model_header_len_lies", "error", "header length 2^60",
                  st=struct.pack("<Q", 1 << 60) + raw[8:])
    model_variant("model_header_not_json", "error", "header bytes are not JSON",
                  st=struct.pack("<Q", 16) + b"{not json at all" + raw[24:])
    h = copy.deepcopy(header)
    k = "recurrent.injection.B"
    h[k]["data_offsets"] = [h[k]["data_offsets"][0], h[k]["data_offsets"][0] + (1 << 40)]
    model_variant("model_offsets_past_end", "error", "a tensor's offsets run past the file", st=with_header(h))
    h = copy.deepcopy(header)
    h[k]["shape"] = [h[k]["shape"][0] * 2]
    model_variant("model_shape_lies", "error", "a shape that does not match its byte range", st=with_header(h))
    h = copy.deepcopy(header)
    del h["recurrent.injection.log_A"]
    model_variant("model_missing_tensor", "error", "a tensor the config needs is absent", st=with_header(h))
    h = copy.deepcopy(header)
    h[k]["dtype"] = "C64"
    model_variant("model_unknown_dtype", "error", "a dtype the reader does not know", st=with_header(h))
    model_variant("model_no_config", "error", "no config.json", drop=("config.json",))
    cfgj = json.loads(open(os.path.join(good, "config.json")).read())

    def cfg_text(**kw):
        c = dict(cfgj)
        c.update(kw)
        return json.dumps(c)
    model_variant("config_1e999", "error", "act_threshold 1e999 (out of double range)",
                  config=cfg_text().replace('"act_threshold": 0.99', '"act_threshold": 1e999'))
    model_variant("config_max_loops_1e9", "error", "max_loop_iters 1e9", config=cfg_text(max_loop_iters=10**9))
    model_variant("config_huge_seq", "error", "max_seq_len 2^62", config=cfg_text(max_seq_len=1 << 62))
    model_variant("config_not_json", "error", "config.json is not JSON", config="dim = 16\n")
    model_variant("config_array", "error", "config.json is an array", config="[16, 2]")
    model_variant("config_wrong_types", "error", "dim is a string", config=cfg_text(dim="wide"))
    model_variant("config_empty", "error", "config.json of 0 bytes", config="")
    model_variant("config_shape_mismatch", "error", "config says dim 32, weights are 16 wide",
                  config=cfg_text(dim=32, n_heads=2))
    model_variant("config_invalid_utf8", "error", "a byte that is not UTF-8", config=b'{"attn_type": "\xff"}')
    model_variant("tokenizer_empty", "error", "tokenizer.json of 0 bytes", tokenizer="")
    model_variant("tokenizer_invalid_utf8", "error", "tokenizer.json with a byte that is not UTF-8",
                  tokenizer=b'{"type": "char", "vocab": ["a", "\xfe"]}')
    model_variant("tokenizer_array", "error", "tokenizer.json is an array", tokenizer="[]")
    model_variant("tokenizer_duplicates", "error", "a piece listed twice",
                  tokenizer=json.dumps({"type": "char", "vocab": ["a", "a"]}))
    model_variant("tokenizer_too_large", "error", "more pieces than vocab_size",
                  tokenizer=json.dumps({"type": "char", "vocab": [chr(0x4e00 + i) for i in range(60)]}))
    model_variant("tokenizer_bad_unk", "error", "unk outside the vocabulary",
                  tokenizer=json.dumps({"type": "char", "vocab": ["a", "b"], "unk": 7}))
    case("model_missing", "model", "error", {"path": "does-not-exist"}, "a --model folder that does not exist")
    case("model_symlink_loop", "model", "error", {"symlink_loop": True},
         "a --model path that is a symlink loop (made by the runner)")

    # --- traces ------------------------------------------------------------------------
    tpath = os.path.join(out, "_base_trace.json")
    subprocess.run([a.cli, "trace", "--model", good, "--ids", "5,6,7,8,9;9,8,7,6,5", "--loops", "3",
                    "--kv-cache", "--out", tpath], check=True, stdout=subprocess.DEVNULL)
    base = json.load(open(tpath))
    os.remove(tpath)

    def trace(name, expect, note, edit=None, text=None):
        if text is None:
            t = copy.deepcopy(base)
            edit(t)
            text = json.dumps(t)
        write(os.path.join(out, name + ".json"), text)
        case(name, "trace", expect, note=note)

    trace("trace_ok", "ok", "the valid trace every other case breaks", lambda t: None)

    def zero_loops(t):
        t["n_loops"] = t["loops_executed"] = 0
        for key in ("p", "cum_p", "weight"):
            t["act"][key] = []
        t["act"]["halt_loop"] = [[0] * 5, [0] * 5]
        t["h_norm"] = t["h_delta"] = []
        t["routing"]["topk_ids"] = t["routing"]["weights"] = t["routing"]["router_logits"] = []
        del t["kv"]
    trace("trace_zero_loops", "ok", "no loops at all: every view copes", zero_loops)
    trace("trace_no_router_logits", "ok", "router_logits and router_bias are optional",
          lambda t: (t["routing"].pop("router_logits"), t["routing"].pop("router_bias")))

    def nulls(t):
        t["act"]["p"][0][0][0] = None
        t["h_norm"][1][0][2] = None
        t["h_delta"][0][1][1] = None
        t["injection"]["A"][0] = None
        t["injection"]["rho_A"] = t["rho_A"] = None
        t["routing"]["weights"][0][0][0][0] = None
    trace("trace_null_floats", "ok", "nulls (NaN) in the per-loop records and in A", nulls)
    trace("trace_huge_values", "ok", "1e38 and -1e38 where norms and probabilities go",
          lambda t: (t["h_norm"][0][0].__setitem__(0, 1e38), t["act"]["p"][1][0].__setitem__(1, -1e38)))
    trace("trace_huge_n_loops", "error", "n_loops 1048576 in a 16 KB file",
          lambda t: t.__setitem__("n_loops", 1 << 20))
    trace("trace_huge_start_pos", "error", "start_pos past int32",
          lambda t: t.__setitem__("start_pos", 1 << 40))
    trace("trace_batch_lies", "error", "batch 1048576 but two rows", lambda t: t.__setitem__("batch", 1 << 20))
    trace("trace_ragged", "error", "rows of different lengths", lambda t: t["act"]["p"][0][1].pop())
    trace("trace_expert_out_of_range", "error", "expert id 99 of 4",
          lambda t: t["routing"]["topk_ids"][0][0][0].__setitem__(0, 99))
    trace("trace_halt_loop_out_of_range", "error", "halting loop 7 of 3",
          lambda t: t["act"]["halt_loop"][0].__setitem__(0, 7))
    trace("trace_token_out_of_range", "error", "token id 4000 of 48", lambda t: t["ids"][0].__setitem__(0, 4000))
    trace("trace_config_mismatch", "error", "n_experts 4 in routing, 6 in the config",
          lambda t: t["config"].__setitem__("n_experts", 6))
    trace("trace_string_in_logits", "error", "a string among the logits",
          lambda t: t["logits"][0][0].__setitem__(0, "0.5"))
    trace("trace_wrong_schema", "error", "schema mythos-trace/9", lambda t: t.__setitem__("schema", "mythos-trace/9"))
    trace("trace_kv_lies", "error", "a KV entry claiming 2^62 positions",
          lambda t: t["kv"]["entries"][0].__setitem__("positions", 1 << 62))
    full = json.dumps(base)
    trace("trace_truncated", "error", "the file cut in half", text=full[:len(full) // 2])
    trace("trace_empty", "error", "0 bytes", text="")
    trace("trace_not_json", "error", "plain text", text="this is not a trace\n")
    trace("trace_invalid_utf8", "error", "a byte that is not UTF-8 in a string",
          text=full.replace('"model": "', '"model": "\udcff', 1).encode("utf-8", "surrogateescape"))
    trace("trace_deep_nesting", "error", "100,000 nested arrays", text="[" * 100000 + "]" * 100000)
    trace("trace_number_overflow", "error", "1e999 among the norms",
          text=full.replace('"h_norm": [[[', '"h_norm": [[[1e999, ', 1))

    # --- prompt sets, ids, variants ----------------------------------------------------
    # Traces with the inside-the-loop parts (docs/trace-schema.md): lens, attention, trajectory.
    ipath = os.path.join(out, "_inside_trace.json")
    subprocess.run([a.cli, "trace", "--model", good, "--ids", "5,6,7,8,9", "--loops", "3", "--lens",
                    "--attention", "--trajectory", "--out", ipath], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    inside = json.load(open(ipath))
    os.remove(ipath)

    def inside_trace(name, expect, note, edit):
        t = copy.deepcopy(inside)
        edit(t)
        write(os.path.join(out, name + ".json"), json.dumps(t))
        case(name, "trace", expect, note=note)

    inside_trace("trace_inside_ok", "ok", "lens, attention and trajectory parts: every view draws them",
                 lambda t: None)

    def inside_nulls(t):
        t["lens"]["state"]["p"][0][0][0] = None
        t["lens"]["act"]["entropy"][1][0][2] = None
        t["attention"]["sites"][1]["probs"][0][2][1] = None
        t["trajectory"]["coords"][0][0][1] = [None, None]
        t["trajectory"]["cos_final"][2][0][4] = None
    inside_trace("trace_inside_nulls", "ok", "nulls (NaN) in the lens, attention and trajectory", inside_nulls)
    inside_trace("trace_inside_future_version", "ok", "a lens part of version 99 is skipped, the rest read",
                 lambda t: t["lens"].__setitem__("version", 99))
    inside_trace("trace_lens_convergence_out_of_range", "error", "a convergence loop of 9 in a 3-loop lens",
                 lambda t: t["lens"]["act"]["convergence"][0].__setitem__(0, 9))
    inside_trace("trace_lens_token_out_of_range", "error", "a lens top-1 token 4000 of 48",
                 lambda t: t["lens"]["state"]["top1"][0][0].__setitem__(0, 4000))
    inside_trace("trace_lens_loops_lie", "error", "lens.loops 65536 with 3 loops of rows",
                 lambda t: t["lens"].__setitem__("loops", 65536))
    inside_trace("trace_attention_ragged", "error", "an attention row one key short",
                 lambda t: t["attention"]["sites"][0]["probs"][0][4].pop())
    inside_trace("trace_attention_window_lies", "error", "an attention window past the sequence",
                 lambda t: t["attention"].__setitem__("to", 1 << 20))
    inside_trace("trace_attention_many_sites", "error", "70,000 attention sites of a 3-loop run",
                 lambda t: t["attention"].__setitem__("sites", [{"name": "x", "stage": "coda", "layer": 0,
                                                                  "loop": 0, "probs": []}] * 70000))
    inside_trace("trace_trajectory_shape", "error", "trajectory coordinates of 3 components",
                 lambda t: t["trajectory"]["coords"][0][0][0].append(0.5))

    def prompts(name, expect, note, text):
        write(os.path.join(out, name + ".jsonl"), text)
        case(name, "prompts", expect, note=note)
    prompts("prompts_ok", "ok", "two valid prompts",
            '{"prompt": "a=1;?a", "answer": "1", "hops": 1}\n{"prompt": "b=2;?b", "answer": "2", "hops": 1}\n')
    prompts("prompts_not_json", "error", "a line that is not JSON", '{"prompt": "a=1;?a", "answer": "1"}\nnope\n')
    prompts("prompts_missing_answer", "error", "no answer", '{"prompt": "a=1;?a", "hops": 1}\n')
    prompts("prompts_wrong_types", "error", "hops is a string", '{"prompt": "a", "answer": "1", "hops": "x"}\n')
    prompts("prompts_empty", "error", "no prompt at all", "")
    prompts("prompts_too_long", "error", "a prompt longer than max_seq_len",
            json.dumps({"prompt": "a=1;" * 40 + "?a", "answer": "1", "hops": 1}) + "\n")
    prompts("prompts_invalid_utf8", "error", "a byte that is not UTF-8",
            '{"prompt": "a=1;?a", "answer": "\udcff", "hops": 1}\n'.encode("utf-8", "surrogateescape"))
    for name, ids, note in [("ids_ragged", "1,2;3", "rows of different lengths"),
                            ("ids_huge", "99999999999999999999", "an id past int64"),
                            ("ids_out_of_vocab", "1,4000", "an id past vocab_size"),
                            ("ids_garbage", "1,,x", "not a list of integers"),
                            ("ids_empty", ";", "no ids")]:
        write(os.path.join(out, name + ".txt"), ids)
        case(name, "ids", "error", note=note)
    for name, text, note in [("variant_not_json", "{act_threshold: 0.9}", "not JSON"),
                             ("variant_array", "[1, 2]", "not an object"),
                             ("variant_unknown_key", '{"warp_speed": 9}', "not a config field or option"),
                             ("variant_shape_change", '{"dim": 32}', "a field that changes weight shapes"),
                             ("variant_bad_value", '{"act_threshold": 7}', "a value the config refuses"),
                             ("variant_bad_option", '{"kv_layout": "sideways"}', "an unknown KV layout")]:
        write(os.path.join(out, name + ".json"), text)
        case(name, "variant", "error", note=note)

    write(os.path.join(out, "cases.json"), json.dumps({"model": "model_ok", "cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
