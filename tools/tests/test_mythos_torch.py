"""mythos_torch against the golden reference numbers, and the safetensors round trip.

Why exact integer comparisons are fair: the golden README states margins (router top-k
gap >= 2e-4, halting threshold gap >= 1e-4, argmax gap >= 2e-3) far above fp32 noise, so
a correct implementation takes the same discrete decisions."""

import dataclasses
import json
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import mt, torch  # noqa: E402

_CACHE = {}
WORST = {"logits": (-1.0, "")}


def golden(folder):
    if folder not in _CACHE:
        _CACHE[folder] = common.Golden(folder)
    return _CACHE[folder]


def record_logit_error(got, ref, where):
    err = common.max_rel_err(got, ref)
    if err > WORST["logits"][0]:
        WORST["logits"] = (err, where)
    return err


class GoldenForwardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cases = common.golden_cases()
        if not cls.cases:
            raise unittest.SkipTest("no golden cases found (set MYTHOS_GOLDEN_DIR)")

    @classmethod
    def tearDownClass(cls):
        err, where = WORST["logits"]
        sys.stderr.write(f"\n[mythos_torch] largest logit error vs golden: "
                         f"max|got-ref|/max|ref| = {err:.3e} ({where})\n")

    def test_config_fields_match_reference(self):
        """config.json is dataclasses.asdict of the reference's MythosConfig: same keys in
        the same order means our dataclass mirrors every field."""
        for name, folder in self.cases:
            with open(os.path.join(folder, "config.json")) as f:
                ref = json.load(f)
            cfg = mt.MythosConfig.from_dict(ref)
            self.assertEqual(list(dataclasses.asdict(cfg)), list(ref), name)
            self.assertEqual(dataclasses.asdict(cfg), ref, name)

    def test_state_dict_layout(self):
        for name, folder in self.cases:
            g = golden(folder)
            sd = g.model.state_dict()
            stored, _ = mt.read_safetensors(os.path.join(folder, "model.safetensors"))
            expected = mt.expected_shapes(g.model.cfg)
            self.assertEqual(set(sd) - set(mt.ROPE_BUFFERS), set(expected), name)
            self.assertEqual(set(stored), set(expected), name)
            for k, shape in expected.items():
                self.assertEqual(tuple(sd[k].shape), shape, f"{name}: {k}")
            self.assertIn("recurrent.block.ffn.router_bias", dict(g.model.named_buffers()))
            self.assertIs(g.model.head.weight, g.model.embed.weight)
            self.assertEqual(g.model.freqs_cis.dtype, torch.complex64)
            ref = g.tensors
            self.assertTrue(torch.equal(torch.view_as_real(g.model.freqs_cis), ref["rope.freqs_cis"]))
            self.assertTrue(torch.equal(torch.view_as_real(g.model.freqs_cis_mla),
                                        ref["rope.freqs_cis_mla"]))
            self.assertTrue(common.close(g.model.injection_A(), ref["injection.A"], 1e-6, 1e-7))
            L = ref["loop_index_embedding"].shape[0]
            lie = torch.stack([mt.loop_index_vector(t, g.model.cfg.dim, g.model.cfg.dim // 8)
                               for t in range(L)])
            self.assertTrue(common.close(lie, ref["loop_index_embedding"], 1e-6, 1e-6), name)

    def test_forward_runs(self):
        for name, folder in self.cases:
            g = golden(folder)
            for run in g.json["forward_runs"]:
                where = f"{name}/{run['name']}"
                with self.subTest(where):
                    cache = {} if run["kv_cache"] else None
                    with torch.no_grad():
                        logits, aux = g.model.forward_with_aux(
                            g.ids(run["input"]), n_loops=run["n_loops"], kv_cache=cache,
                            start_pos=run["start_pos"])
                    t = {k: g.tensors[v] for k, v in run["tensors"].items()}
                    err = record_logit_error(logits, t["logits"], where)
                    self.assertTrue(common.close(logits, t["logits"]), f"{where}: logit error {err:.2e}")
                    self.assertEqual(aux["loops_executed"], run["loops_executed"], where)
                    self.assertEqual(aux["halt_loop"].tolist(), run["halt_loop"], where)
                    self.assertEqual(aux["topk_ids"].tolist(), run["router_topk_ids"], where)
                    for key, ref_key in (("p", "act_p"), ("cum_p", "act_cum_p"),
                                         ("weight", "act_weight"), ("topk_weights", "router_weights")):
                        err = float((aux[key] - t[ref_key]).abs().max())
                        self.assertLessEqual(err, 1e-5, f"{where}: {ref_key} off by {err:.2e}")
                    self.assertTrue(common.close(aux["h_norm"], t["h_norm"]), where)
                    self.assertTrue(common.close(aux["router_logits"], t["router_logits"]), where)
                    if run["kv_cache"]:
                        layout = [(e["key"], {n: v["shape"] for n, v in e["tensors"].items()})
                                  for e in run["kv_cache_after"]]
                        got = [(k, {n: list(v.shape) for n, v in d.items()}) for k, d in cache.items()]
                        self.assertEqual(got, layout, where)
                        nbytes = sum(v.numel() * v.element_size() for d in cache.values()
                                     for v in d.values())
                        self.assertEqual(nbytes, run["kv_cache_total_bytes"], where)

    def test_kv_cache_contents(self):
        for name, folder in self.cases:
            g = golden(folder)
            dump = g.json["kv_cache_dump"]
            run = next(r for r in g.json["forward_runs"] if r["name"] == dump["run"])
            cache = {}
            with torch.no_grad():
                g.model(g.ids(run["input"]), n_loops=run["n_loops"], kv_cache=cache)
            for key, tensor_name in dump["tensors"].items():
                entry, field = key.rsplit(".", 1)
                self.assertTrue(common.close(cache[entry][field], g.tensors[tensor_name]),
                                f"{name}: {key}")

    def test_decode_runs(self):
        """Greedy decode with the reference generate() call pattern on one shared cache."""
        for name, folder in self.cases:
            g = golden(folder)
            for run in g.json["decode_runs"]:
                where = f"{name}/decode/{run['name']}"
                with self.subTest(where):
                    ids = g.ids(run["input"])
                    P, N, n_loops = run["prompt_len"], run["new_tokens"], run["n_loops"]
                    cache, cur, generated = {}, ids, []
                    step_logits, halts, topk, act_p, gates = [], [], [], [], []
                    for step in range(N):
                        start = 0 if step == 0 else P + step - 1
                        self.assertEqual(start, run["start_pos_per_step"][step])
                        with torch.no_grad():
                            logits, aux = g.model.forward_with_aux(cur, n_loops, cache, start)
                        last = logits[:, -1, :]
                        step_logits.append(last)
                        if step > 0:
                            halts.append(aux["halt_loop"][:, 0].tolist())
                            topk.append(aux["topk_ids"][:, :, 0].tolist())
                            act_p.append(aux["p"][:, :, 0])
                            gates.append(aux["topk_weights"][:, :, 0])
                        nbytes = sum(v.numel() * v.element_size() for d in cache.values()
                                     for v in d.values())
                        self.assertEqual(nbytes, run["kv_cache_total_bytes_per_step"][step], where)
                        cur = last.argmax(-1, keepdim=True)
                        generated.append(cur)
                    self.assertEqual(torch.cat(generated, 1).tolist(), run["generated"], where)
                    ref = g.tensors[run["tensors"]["step_logits"]]
                    got = torch.stack(step_logits)
                    err = record_logit_error(got, ref, where)
                    self.assertTrue(common.close(got, ref), f"{where}: step logit error {err:.2e}")
                    self.assertEqual(halts, run["decode_halt_loop"], where)
                    self.assertEqual(topk, run["decode_router_topk_ids"], where)
                    for got, key in ((act_p, "act_p"), (gates, "router_weights")):
                        err = float((torch.stack(got) - g.tensors[run["tensors"][key]]).abs().max())
                        self.assertLessEqual(err, 1e-5, f"{where}: {key} off by {err:.2e}")
                    # The convenience API must take the same decisions.
                    self.assertEqual(g.model.generate_greedy(ids, N, n_loops).tolist(),
                                     run["generated"], where)


class RoundTripTest(unittest.TestCase):
    def setUp(self):
        folder = common.tiny_case("tiny_mla")
        if folder is None:
            self.skipTest("tiny_mla not found")
        self.model = mt.load_model_folder(folder)
        self.ids = torch.tensor([[1, 5, 9, 33, 2, 63, 7]])
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def stored(self):
        return {k: v for k, v in self.model.state_dict().items()
                if k not in mt.ROPE_BUFFERS and k != "head.weight"}

    def test_f32_is_exact(self):
        out = os.path.join(self.tmp.name, "m")
        mt.save_model_folder(self.model, out, dtype="F32")
        self.assertEqual(sorted(os.listdir(out)), ["config.json", "model.safetensors"])
        tensors, meta = mt.read_safetensors(os.path.join(out, "model.safetensors"), to_float32=False)
        self.assertNotIn("head.weight", tensors)
        self.assertFalse(any(k in tensors for k in mt.ROPE_BUFFERS))
        self.assertEqual(meta["dtype"], "F32")
        self.assertEqual(meta["tied"], "embed.weight=head.weight")
        with open(os.path.join(out, "model.safetensors"), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        self.assertEqual((8 + n) % 8, 0, "data must start at a multiple of 8 bytes")
        for k, v in self.stored().items():
            self.assertEqual(tensors[k].dtype, torch.float32, k)
            self.assertTrue(torch.equal(tensors[k], v), k)
        back = mt.load_model_folder(out)
        with open(os.path.join(out, "config.json")) as f:
            self.assertEqual(json.load(f), dataclasses.asdict(self.model.cfg))
        with torch.no_grad():
            self.assertTrue(torch.equal(back(self.ids, 4), self.model(self.ids, 4)))

    def test_bf16_within_precision(self):
        out = os.path.join(self.tmp.name, "b")
        mt.save_model_folder(self.model, out, dtype="BF16")
        raw, _ = mt.read_safetensors(os.path.join(out, "model.safetensors"), to_float32=False)
        self.assertTrue(all(v.dtype == torch.bfloat16 for v in raw.values()))
        self.assertLess(os.path.getsize(os.path.join(out, "model.safetensors")),
                        0.6 * sum(v.numel() * 4 for v in raw.values()))
        back = mt.load_model_folder(out)
        got = {k: v for k, v in back.state_dict().items() if k in raw}
        for k, v in self.stored().items():
            # bf16 keeps 8 significant bits: relative rounding error <= 2^-9.
            self.assertTrue(((got[k] - v).abs() <= v.abs() * 2.0 ** -8 + 1e-30).all(), k)

    def test_f16_file_loads(self):
        path = os.path.join(self.tmp.name, "h")
        os.makedirs(path)
        sd = {k: v.half() for k, v in self.stored().items()}
        mt.write_safetensors(os.path.join(path, "model.safetensors"), sd, {"format": "pt"})
        with open(os.path.join(path, "config.json"), "w") as f:
            f.write(self.model.cfg.to_json_text())
        back = mt.load_model_folder(path)
        self.assertTrue(torch.equal(back.embed.weight, sd["embed.weight"].float()))

    def test_bad_checkpoints_are_named(self):
        sd = self.stored()
        sd.pop("recurrent.lora.B")
        sd["extra.weight"] = torch.zeros(2)
        sd["norm.weight"] = torch.zeros(3)
        with self.assertRaises(ValueError) as ctx:
            mt.check_state_dict(self.model.cfg, sd)
        msg = str(ctx.exception)
        for needle in ("recurrent.lora.B", "extra.weight", "norm.weight: expected [128], found [3]"):
            self.assertIn(needle, msg)

    def test_bf16_model_keeps_complex_rope(self):
        m = mt.OpenMythos(self.model.cfg).to(torch.bfloat16)
        self.assertTrue(m.freqs_cis_mla.is_complex())
        with torch.no_grad():
            self.assertEqual(tuple(m(self.ids, 2).shape), (1, 7, 64))


if __name__ == "__main__":
    unittest.main()
