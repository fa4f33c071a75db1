"""The bundled demo models through both implementations: exported from a PyTorch
checkpoint they give the C++ engine's logits, and trace_pytorch's trace of them matches the
engine's trace (mythos-cli trace). Needs the mythos-cli binary (MYTHOS_CLI, set by CTest)."""

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import mt, torch  # noqa: E402

import export_checkpoint as ex  # noqa: E402
import trace_pytorch as tp  # noqa: E402

DEMOS = [os.path.join(common.REPO, "resources", "models", n) for n in ("demo_mla", "demo_gqa")]
CLI = os.environ.get("MYTHOS_CLI", "")


def encode(folder, text):
    with open(os.path.join(folder, "tokenizer.json")) as f:
        vocab = json.load(f)["vocab"]
    return [vocab.index(ch) for ch in text]


@unittest.skipUnless(CLI and os.path.isfile(CLI), "MYTHOS_CLI does not name the mythos-cli binary")
class DemoModelTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def engine_trace(self, folder, ids, loops, *extra):
        out = os.path.join(self.tmp.name, "engine.json")
        subprocess.run([CLI, "trace", "--model", folder, "--ids", ",".join(map(str, ids)), "--loops", str(loops),
                        "--threads", "1", "--out", out, *extra], check=True, capture_output=True)
        with open(out) as f:
            return json.load(f)

    def test_exported_checkpoint_gives_the_engines_logits(self):
        for folder in DEMOS:
            with self.subTest(os.path.basename(folder)):
                model = mt.load_model_folder(folder)
                pt = os.path.join(self.tmp.name, "demo.pt")
                torch.save(model.state_dict(), pt)
                cfg = os.path.join(self.tmp.name, "demo.json")
                with open(cfg, "w") as f:
                    json.dump(dataclasses.asdict(model.cfg), f)
                out = os.path.join(self.tmp.name, "exported")
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    self.assertEqual(ex.main(["--state-dict", pt, "--config", cfg, "--out", out]), 0)
                ids = encode(folder, "b=a;a=3;c=b;c?3 47+85=132")
                for loops in (1, 6, 12):
                    with torch.no_grad():
                        ref = model(torch.tensor([ids]), loops)[0]
                    got = torch.tensor(self.engine_trace(out, ids, loops)["logits"])[0]
                    scale = float(ref.abs().max())
                    err = float((got - ref).abs().max())
                    self.assertLessEqual(err, 1e-4 * scale + 1e-5, f"{loops} loops: {err} of {scale}")

    def test_pytorch_trace_matches_the_engine(self):
        for folder in DEMOS:
            with self.subTest(os.path.basename(folder)):
                model = mt.load_model_folder(folder)
                ids = encode(folder, "d=7;x=d;y=x;y?7")
                for loops, cache in ((6, False), (10, True)):
                    tr = tp.trace_model(model, [ids], loops, {} if cache else None, hash_weights=True)
                    eng = self.engine_trace(folder, ids, loops, *(["--kv-cache"] if cache else []))
                    self.assertEqual(tr["weights_hash"], eng["weights_hash"])
                    self.assertEqual(tr["loops_executed"], eng["loops_executed"])
                    self.assertEqual(tr["act"]["halt_loop"], eng["act"]["halt_loop"])
                    self.assertEqual(tr["routing"]["topk_ids"], eng["routing"]["topk_ids"])
                    for field in ("p", "cum_p", "weight"):
                        err = float((torch.tensor(tr["act"][field]) - torch.tensor(eng["act"][field])).abs().max())
                        self.assertLessEqual(err, 1e-5, field)
                    self.assertTrue(common.close(torch.tensor(tr["h_norm"]), torch.tensor(eng["h_norm"])))
                    self.assertTrue(common.close(torch.tensor(tr["logits"]), torch.tensor(eng["logits"])))
                    if cache:
                        self.assertEqual(tr["kv"]["total_bytes"], eng["kv"]["total_bytes"])


if __name__ == "__main__":
    unittest.main()
