"""export_checkpoint.py: a golden model saved with torch.save in the ways people save
checkpoints must come back from the exported folder with the same logits."""

import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import mt, torch  # noqa: E402

import export_checkpoint as ex  # noqa: E402


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folders = {n: common.tiny_case(n) for n in ("tiny_gqa", "tiny_mla")}
        if not all(cls.folders.values()):
            raise unittest.SkipTest("tiny golden cases not found")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.ids = torch.tensor([[3, 20, 25, 11, 10, 47, 16], [14, 63, 46, 12, 32, 7, 51]])

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, *p):
        return os.path.join(self.tmp.name, *p)

    def run_cli(self, *args):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = ex.main(list(args))
        return rc, err.getvalue()

    def test_round_trip_wrapped_and_prefixed(self):
        for name, folder in self.folders.items():
            with self.subTest(name):
                model = mt.load_model_folder(folder)
                # Full state_dict (with head.weight and the complex RoPE buffers), as
                # DataParallel would save it, wrapped like a training checkpoint.
                sd = {"module." + k: v for k, v in model.state_dict().items()}
                pt = self.path(name + ".pt")
                torch.save({"model": sd, "step": 10}, pt)
                cfg = self.path(name + ".json")
                with open(cfg, "w") as f:
                    json.dump(dataclasses.asdict(model.cfg), f)
                out = self.path(name)
                rc, err = self.run_cli("--state-dict", pt, "--config", cfg, "--out", out)
                self.assertEqual(rc, 0, err)
                tensors, meta = mt.read_safetensors(os.path.join(out, "model.safetensors"))
                self.assertNotIn("head.weight", tensors)
                self.assertNotIn("freqs_cis", tensors)
                self.assertIn("recurrent.block.ffn.router_bias", tensors)
                back = mt.load_model_folder(out)
                with torch.no_grad():
                    for n_loops in (1, 4, 8):
                        self.assertTrue(torch.equal(back(self.ids, n_loops), model(self.ids, n_loops)))

    def test_bf16_and_config_fields(self):
        model = mt.load_model_folder(self.folders["tiny_gqa"])
        pt = self.path("plain.pt")
        torch.save({"state_dict": model.state_dict()}, pt)
        fields = ",".join(f"{k}={v}" for k, v in dataclasses.asdict(model.cfg).items())
        out = self.path("bf16")
        rc, err = self.run_cli("--state-dict", pt, "--config-fields", fields, "--out", out,
                               "--dtype", "bf16")
        self.assertEqual(rc, 0, err)
        raw, meta = mt.read_safetensors(os.path.join(out, "model.safetensors"), to_float32=False)
        self.assertEqual(meta["dtype"], "BF16")
        self.assertEqual(raw["embed.weight"].dtype, torch.bfloat16)
        back = mt.load_model_folder(out)
        with torch.no_grad():
            ref = model(self.ids[:1], 1)
            got = back(self.ids[:1], 1)
        # bf16 weights (8 significant bits): the logits move by about a percent.
        self.assertLess(common.max_rel_err(got, ref), 0.05)

    def test_errors_name_the_problem(self):
        model = mt.load_model_folder(self.folders["tiny_mla"])
        cfg = self.path("cfg.json")
        with open(cfg, "w") as f:
            json.dump(dataclasses.asdict(model.cfg), f)

        sd = dict(model.state_dict())
        sd["head.weight"] = sd["head.weight"].clone() + 1.0
        torch.save(sd, self.path("untied.pt"))
        rc, err = self.run_cli("--state-dict", self.path("untied.pt"), "--config", cfg,
                               "--out", self.path("o1"))
        self.assertEqual(rc, 1)
        self.assertIn("head.weight differs from embed.weight", err)

        sd = dict(model.state_dict())
        del sd["recurrent.act.halt.bias"]
        sd["recurrent.extra"] = torch.zeros(1)
        torch.save(sd, self.path("broken.pt"))
        rc, err = self.run_cli("--state-dict", self.path("broken.pt"), "--config", cfg,
                               "--out", self.path("o2"))
        self.assertEqual(rc, 1)
        self.assertIn("recurrent.act.halt.bias", err)
        self.assertIn("recurrent.extra", err)
        self.assertFalse(os.path.exists(self.path("o2", "model.safetensors")))

        # The right weights with the wrong config: every mismatch is listed.
        torch.save(model.state_dict(), self.path("ok.pt"))
        rc, err = self.run_cli("--state-dict", self.path("ok.pt"), "--config-fields",
                               "attn_type=mla,dim=128,n_heads=4,vocab_size=64,expert_dim=16,"
                               "max_seq_len=128,max_loop_iters=4,prelude_layers=1,coda_layers=1,"
                               "kv_lora_rank=32,q_lora_rank=64,qk_rope_head_dim=16,"
                               "qk_nope_head_dim=16,v_head_dim=16,n_experts=8,"
                               "n_shared_experts=1,n_experts_per_tok=2,lora_rank=8",
                               "--out", self.path("o3"))
        self.assertEqual(rc, 1)
        self.assertIn("recurrent.block.ffn.routed_experts.0.gate.weight: expected [16, 128], "
                      "found [32, 128]", err)

        rc, err = self.run_cli("--state-dict", self.path("ok.pt"), "--config-fields", "dimm=3",
                               "--out", self.path("o4"))
        self.assertEqual(rc, 1)
        self.assertIn("unknown field 'dimm'", err)


if __name__ == "__main__":
    unittest.main()
