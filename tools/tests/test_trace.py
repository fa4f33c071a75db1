"""trace_pytorch: the hook-based trace of tiny_mla must reproduce the golden numbers and
follow docs/trace-schema.md (every field, the shapes the app's reader checks)."""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import mt, torch  # noqa: E402

import trace_pytorch as tp  # noqa: E402


def shape_of(x):
    """Shape of a nested list, checking that it is rectangular."""
    if not isinstance(x, list):
        return ()
    inner = {shape_of(v) for v in x}
    if len(inner) > 1:
        raise AssertionError("ragged array")
    return (len(x),) + (inner.pop() if inner else ())


def check_schema(tc, tr):
    """The app reader's checks (core/src/trace.cpp), restated."""
    tc.assertEqual(tr["schema"], "mythos-trace/1")
    L, B, T = tr["loops_executed"], tr["batch"], tr["seq_len"]
    k, E, D, V = tr["routing"]["top_k"], tr["routing"]["n_experts"], tr["config"]["dim"], tr["vocab"]
    for key in ("model", "weights_hash", "config", "options", "start_pos", "n_loops", "rho_A",
                "timings_ms", "injection"):
        tc.assertIn(key, tr)
    expect = {
        ("ids",): (B, T), ("act", "p"): (L, B, T), ("act", "cum_p"): (L, B, T),
        ("act", "weight"): (L, B, T), ("act", "halt_loop"): (B, T), ("act", "weight_sum"): (B, T),
        ("h_norm",): (L, B, T), ("h_delta",): (L, B, T), ("routing", "topk_ids"): (L, B, T, k),
        ("routing", "weights"): (L, B, T, k), ("routing", "router_logits"): (L, B, T, E),
        ("routing", "router_bias"): (E,), ("injection", "A"): (D,), ("injection", "B"): (D,),
        ("logits",): (B, T, V),
    }
    for path, shape in expect.items():
        v = tr
        for p in path:
            v = v[p]
        if L == 0 and shape[0] == 0:
            continue
        tc.assertEqual(shape_of(v), shape, ".".join(path))
    ids = torch.tensor(tr["routing"]["topk_ids"])
    tc.assertTrue(bool(((ids >= 0) & (ids < E)).all()))
    tc.assertIsInstance(tr["injection"]["rho_A"], float)
    tc.assertEqual(tr["act"]["threshold"], tr["config"]["act_threshold"])
    json.dumps(tr, allow_nan=False)  # no NaN/inf may reach the file


class TraceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        folder = common.tiny_case("tiny_mla")
        if folder is None:
            raise unittest.SkipTest("tiny_mla not found")
        cls.folder = folder
        cls.g = common.Golden(folder)

    def test_matches_golden(self):
        g = self.g
        for run in g.json["forward_runs"]:
            with self.subTest(run["name"]):
                cache = {} if run["kv_cache"] else None
                tr = tp.trace_model(g.model, g.json["inputs"][run["input"]], run["n_loops"], cache,
                                    hash_weights=False)
                check_schema(self, tr)
                t = {k: g.tensors[v] for k, v in run["tensors"].items()}
                self.assertEqual(tr["loops_executed"], run["loops_executed"])
                self.assertEqual(tr["n_loops"], run["n_loops"])
                self.assertEqual(tr["act"]["halt_loop"], run["halt_loop"])
                self.assertEqual(tr["routing"]["topk_ids"], run["router_topk_ids"])
                for field, key in (("p", "act_p"), ("cum_p", "act_cum_p"), ("weight", "act_weight")):
                    err = float((torch.tensor(tr["act"][field]) - t[key]).abs().max())
                    self.assertLessEqual(err, 1e-5, field)
                err = float((torch.tensor(tr["routing"]["weights"]) - t["router_weights"]).abs().max())
                self.assertLessEqual(err, 1e-5)
                self.assertTrue(common.close(torch.tensor(tr["h_norm"]), t["h_norm"]))
                self.assertTrue(common.close(torch.tensor(tr["routing"]["router_logits"]),
                                             t["router_logits"]))
                self.assertTrue(common.close(torch.tensor(tr["logits"]), t["logits"]))
                w = torch.tensor(tr["act"]["weight"]).sum(0)
                self.assertTrue(torch.allclose(torch.tensor(tr["act"]["weight_sum"]), w))
                if run["kv_cache"]:
                    self.assertEqual(tr["kv"]["total_bytes"], run["kv_cache_total_bytes"])
                    got = [(e["key"], {n: v["shape"] for n, v in e["tensors"].items()})
                           for e in tr["kv"]["entries"]]
                    ref = [(e["key"], {n: v["shape"] for n, v in e["tensors"].items()})
                           for e in run["kv_cache_after"]]
                    self.assertEqual(got, ref)
                else:
                    self.assertNotIn("kv", tr)

    def test_h_delta_and_injection(self):
        g = self.g
        dbg = "b1_L4_nocache"
        tr = tp.trace_model(g.model, g.json["inputs"]["b1"], 4, None, hash_weights=False)
        h = g.tensors[f"dbg.{dbg}.h"]
        prev = torch.cat([g.tensors[f"dbg.{dbg}.prelude_out"][None], h[:-1]])
        ref = (h - prev).norm(dim=-1)
        self.assertTrue(common.close(torch.tensor(tr["h_delta"]), ref))
        self.assertTrue(common.close(torch.tensor(tr["injection"]["A"]), g.tensors["injection.A"], 1e-6, 1e-7))
        self.assertAlmostEqual(tr["rho_A"], g.json["rho_A"], places=6)

    def test_weights_hash_matches_app(self):
        """The value mythos-cli reports for tests/data/tiny_mla (FNV-1a over fp32 weights)."""
        self.assertEqual(tp.weights_hash(self.g.model), "0ee24fff9e5af685")

    def test_cli(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "t.json")
            with contextlib.redirect_stdout(io.StringIO()):
                rc = tp.main(["--model", self.folder, "--ids", "1,2,3;4,5,6", "--loops", "6",
                              "--kv-cache", "--out", out])
            self.assertEqual(rc, 0)
            with open(out) as f:
                tr = json.load(f)
            check_schema(self, tr)
            self.assertEqual((tr["batch"], tr["seq_len"], tr["loops_executed"]), (2, 3, 6))
            self.assertEqual([e["key"] for e in tr["kv"]["entries"]],
                             ["prelude_0"] + [f"recurrent_loop_{t}" for t in range(6)] + ["coda_0"])
            with contextlib.redirect_stderr(io.StringIO()) as err:
                rc = tp.main(["--model", self.folder, "--ids", "1,2;3", "--out", out])
            self.assertEqual(rc, 1)
            self.assertIn("--ids", err.getvalue())

    @unittest.skipUnless(os.environ.get("OPENMYTHOS_SRC"),
                         "set OPENMYTHOS_SRC to a checkout of kyegomez/OpenMythos to trace the reference")
    def test_reference_model_object(self):
        """The tracer's purpose: the public reference model, traced through the same hooks,
        gives the same trace as this implementation."""
        sys.path.insert(0, os.environ["OPENMYTHOS_SRC"])
        from open_mythos.main import MythosConfig, OpenMythos  # noqa: E402
        ref = OpenMythos(MythosConfig(**self.g.json["config"])).eval()
        sd = dict(self.g.model.state_dict())
        ref.load_state_dict(sd, strict=True)
        ids = self.g.json["inputs"]["b2"]
        a = tp.trace_model(ref, ids, 8, {}, hash_weights=True)
        b = tp.trace_model(self.g.model, ids, 8, {}, hash_weights=True)
        for key in ("timings_ms", "model"):
            a.pop(key), b.pop(key)
        self.assertEqual(a, b)


if __name__ == "__main__":
    unittest.main()
