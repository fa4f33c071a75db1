"""export_checkpoint.py: a golden model saved with torch.save in the ways people save
checkpoints, above all the way the reference trainer's save_checkpoint does (pickled cfg
of a class nobody here can import, AdamW state, prefixes), must come back from the
exported folder with the same logits, without importing open_mythos or transformers,
without running code from the pickle and without reading the optimizer's tensors."""

import builtins
import contextlib
import dataclasses
import importlib.abc
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import mt, torch  # noqa: E402

import export_checkpoint as ex  # noqa: E402
import reference_checkpoint as ref  # noqa: E402

TOOL = os.path.join(common.TOOLS, "export_checkpoint.py")
MARKER_ENV = "MYTHOS_EXPORT_TEST_MARKER"


class BlockImports(importlib.abc.MetaPathFinder):
    """Fails any import of the reference's packages while installed (and records it)."""

    BLOCKED = ("open_mythos", "transformers")

    def __init__(self):
        self.attempts = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            self.attempts.append(name)
            raise ImportError(f"test: importing {name} is not allowed")
        return None

    def __enter__(self):
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc):
        sys.meta_path.remove(self)


class Evil:
    """Unpickling this runs a shell command in an unrestricted unpickler."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class EvalEvil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (builtins.eval, (f"open({self.path!r}, 'w').write('ran')",))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def storage_keys(obj, out):
    """Storage keys of every LazyTensor inside obj (dicts, lists, tuples)."""
    if isinstance(obj, ex.LazyTensor):
        out.add(obj.storage.key)
    elif isinstance(obj, dict):
        for v in obj.values():
            storage_keys(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            storage_keys(v, out)
    return out


class Base(unittest.TestCase):
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
        """(exit status, stderr) of main() in this process."""
        rc, _, err = self.run_cli_out(*args)
        return rc, err

    def run_cli_out(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = ex.main(list(args))
        return rc, out.getvalue(), err.getvalue()

    def assert_same_logits(self, folder, model, loops=(1, 4)):
        back = mt.load_model_folder(folder)
        with torch.no_grad():
            for n_loops in loops:
                self.assertTrue(torch.equal(back(self.ids, n_loops), model(self.ids, n_loops)),
                                f"{folder}: logits differ at {n_loops} loops")

    def reference_checkpoint(self, name="tiny_mla", step=1200, prefix="", steps=1, **kw):
        """(path, trained model): a checkpoint as the reference's save_checkpoint writes it."""
        model = mt.load_model_folder(self.folders[name])
        opt = ref.train_steps(model, steps)
        return ref.save_like_reference(model, opt, self.path("ckpt"), step, prefix, **kw), model


class ExportTest(Base):
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
                self.assertEqual(meta["step"], "10")
                back = mt.load_model_folder(out)
                with torch.no_grad():
                    for n_loops in (1, 4, 8):
                        self.assertTrue(torch.equal(back(self.ids, n_loops),
                                                    model(self.ids, n_loops)))

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
            ref_logits = model(self.ids[:1], 1)
            got = back(self.ids[:1], 1)
        # bf16 weights (8 significant bits): the logits move by about a percent.
        self.assertLess(common.max_rel_err(got, ref_logits), 0.05)

    def test_whole_module_bf16_weights_and_legacy_format(self):
        model = mt.load_model_folder(self.folders["tiny_mla"])
        # A whole pickled nn.Module (its classes become stand-ins; its cfg is used).
        torch.save(model, self.path("whole.pt"))
        rc, err = self.run_cli("--state-dict", self.path("whole.pt"), "--out", self.path("w"))
        self.assertEqual(rc, 0, err)
        self.assert_same_logits(self.path("w"), model)
        # The pre-1.6 format goes through torch.load with the restricted unpickler.
        torch.save({"model": model.state_dict(), "cfg": dataclasses.asdict(model.cfg)},
                   self.path("legacy.pt"), _use_new_zipfile_serialization=False)
        rc, err = self.run_cli("--state-dict", self.path("legacy.pt"), "--out", self.path("l"))
        self.assertEqual(rc, 0, err)
        self.assert_same_logits(self.path("l"), model)
        # bf16 weights written as f32 are the bf16 values exactly.
        sd = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v)
              for k, v in model.state_dict().items() if k not in mt.ROPE_BUFFERS}
        torch.save({"model": sd, "cfg": dataclasses.asdict(model.cfg)}, self.path("b.pt"))
        rc, err = self.run_cli("--state-dict", self.path("b.pt"), "--out", self.path("b"))
        self.assertEqual(rc, 0, err)
        raw, _ = mt.read_safetensors(self.path("b", "model.safetensors"), to_float32=False)
        self.assertEqual(raw["norm.weight"].dtype, torch.float32)
        self.assertTrue(torch.equal(raw["embed.weight"], sd["embed.weight"].float()))

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
        self.assertFalse(os.path.exists(self.path("o1")))  # created by the tool, removed

        sd = dict(model.state_dict())
        del sd["recurrent.act.halt.bias"]
        sd["recurrent.extra"] = torch.zeros(1)
        torch.save(sd, self.path("broken.pt"))
        rc, err = self.run_cli("--state-dict", self.path("broken.pt"), "--config", cfg,
                               "--out", self.path("o2"))
        self.assertEqual(rc, 1)
        self.assertIn("1 missing (recurrent.act.halt.bias)", err)
        self.assertIn("1 unexpected (recurrent.extra)", err)
        self.assertFalse(os.path.exists(self.path("o2", "model.safetensors")))

        # The right weights with the wrong config: counts and the first mismatches.
        torch.save(model.state_dict(), self.path("ok.pt"))
        rc, err = self.run_cli("--state-dict", self.path("ok.pt"), "--config-fields",
                               "attn_type=mla,dim=128,n_heads=4,vocab_size=64,expert_dim=16,"
                               "max_seq_len=128,max_loop_iters=4,prelude_layers=1,coda_layers=1,"
                               "kv_lora_rank=32,q_lora_rank=64,qk_rope_head_dim=16,"
                               "qk_nope_head_dim=16,v_head_dim=16,n_experts=8,"
                               "n_shared_experts=1,n_experts_per_tok=2,lora_rank=8",
                               "--out", self.path("o3"))
        self.assertEqual(rc, 1)
        # 8 routed experts and the shared one (x 3 matrices) have expert_dim 32, not 16.
        self.assertIn("27 with other shapes (recurrent.block.ffn.routed_experts.0.gate.weight: "
                      "expected [16, 128], found [32, 128]", err)
        self.assertIn("and 24 more", err)

        rc, err = self.run_cli("--state-dict", self.path("ok.pt"), "--config-fields", "dimm=3",
                               "--out", self.path("o4"))
        self.assertEqual(rc, 1)
        self.assertIn("unknown field 'dimm'", err)

        rc, err = self.run_cli("--state-dict", self.path("nothing.pt"), "--out", self.path("o5"))
        self.assertEqual(rc, 1)
        self.assertIn("nothing.pt: no such file", err)

    def test_mismatch_errors_are_short(self):
        """The reference's 3B config against a tiny checkpoint: thousands of mismatches,
        one line of a few hundred characters (mythos_torch's full list is 10k+)."""
        model = mt.load_model_folder(self.folders["tiny_mla"])
        torch.save({"model": model.state_dict()}, self.path("tiny.pt"))
        big = mt.MythosConfig(vocab_size=32000, dim=3072, n_heads=24, n_kv_heads=6,
                              max_seq_len=4096, max_loop_iters=16, prelude_layers=2,
                              coda_layers=2, attn_type="mla", kv_lora_rank=384, q_lora_rank=768,
                              qk_rope_head_dim=32, qk_nope_head_dim=96, v_head_dim=96,
                              n_experts=64, n_shared_experts=2, n_experts_per_tok=4,
                              expert_dim=4096, lora_rank=8)
        with open(self.path("big.json"), "w") as f:
            json.dump(dataclasses.asdict(big), f)
        rc, err = self.run_cli("--state-dict", self.path("tiny.pt"), "--config",
                               self.path("big.json"), "--out", self.path("o"))
        self.assertEqual(rc, 1)
        with self.assertRaises(ValueError) as full:
            mt.check_state_dict(big, model.state_dict())
        self.assertGreater(len(str(full.exception)), 10000)
        self.assertLess(len(err), 900, err)
        self.assertEqual(err.count("\n"), 1)
        expected = mt.expected_shapes(big)
        missing = sum(1 for k in expected if k != "head.weight" and k not in model.state_dict())
        self.assertIn(f"{missing:,} missing (prelude.1.attn_norm.weight, ", err)
        self.assertIn(f"and {missing - ex.SHOWN:,} more", err)
        self.assertIn("embed.weight: expected [32000, 3072], found [64, 128]", err)
        self.assertIn("tensors do not match the given config", err)

        # Recognisable causes are named: GQA weights under an MLA config, a common prefix.
        gqa = mt.load_model_folder(self.folders["tiny_gqa"])
        wrong = dict(dataclasses.asdict(gqa.cfg), attn_type="mla")
        torch.save({"model": gqa.state_dict(), "cfg": wrong}, self.path("g.pt"))
        rc, err = self.run_cli("--state-dict", self.path("g.pt"), "--out", self.path("o"))
        self.assertEqual(rc, 1)
        self.assertIn("the weights are attn_type=gqa", err)
        self.assertIn("tensors do not match the checkpoint's cfg", err)
        torch.save({"model": {"model." + k: v for k, v in gqa.state_dict().items()},
                    "cfg": dataclasses.asdict(gqa.cfg)}, self.path("p.pt"))
        rc, err = self.run_cli("--state-dict", self.path("p.pt"), "--out", self.path("o"))
        self.assertEqual(rc, 1)
        self.assertIn("every key carries the prefix 'model.'", err)


class ReferenceCheckpointTest(Base):
    def test_reference_checkpoints_need_no_open_mythos(self):
        cases = [("tiny_mla", ""), ("tiny_mla", "module."), ("tiny_gqa", "_orig_mod."),
                 ("tiny_gqa", "module._orig_mod.")]
        for i, (name, prefix) in enumerate(cases):
            with self.subTest(name=name, prefix=prefix):
                pt, model = self.reference_checkpoint(name, step=1000 + i, prefix=prefix, steps=2)
                self.assertTrue(pt.endswith(f"step_{1000 + i:07d}.pt"))
                self.assertNotIn("open_mythos", sys.modules)
                # Plain torch.load cannot read it without open_mythos (the user's problem).
                with self.assertRaises(Exception):
                    torch.load(pt, map_location="cpu")
                out = self.path(f"out{i}")
                with BlockImports() as blocker:
                    rc, stdout, err = self.run_cli_out("--state-dict", pt, "--out", out)
                self.assertEqual(rc, 0, err)
                self.assertEqual(blocker.attempts, [])
                self.assertNotIn("open_mythos", sys.modules)
                self.assertNotIn("transformers", sys.modules)
                with open(os.path.join(out, "config.json")) as f:
                    self.assertEqual(json.load(f), dataclasses.asdict(model.cfg))
                _, meta = mt.read_safetensors(os.path.join(out, "model.safetensors"))
                self.assertEqual(meta["step"], str(1000 + i))
                self.assertEqual(meta["origin"], os.path.basename(pt))
                self.assertIn(f"step {1000 + i}", stdout)
                self.assertIn("not read: optimizer", stdout)
                # The trained weights (not the golden ones) are what was exported.
                self.assert_same_logits(out, model)

    def test_config_stand_in_is_a_plain_record(self):
        pt, model = self.reference_checkpoint()
        obj, reader = ex.load_checkpoint(pt, "lazy")
        try:
            cfg = obj["cfg"]
            self.assertIsInstance(cfg, ex.Stub)
            self.assertEqual(type(cfg).qualname(), "open_mythos.main.MythosConfig")
            self.assertEqual(cfg.state, dataclasses.asdict(model.cfg))
            self.assertEqual(obj["vocab_size"], model.cfg.vocab_size)
            self.assertEqual(obj["step"], 1200)
        finally:
            reader.close()

    def test_optimizer_storages_are_never_read(self):
        pt, model = self.reference_checkpoint(steps=2)
        obj, reader = ex.load_checkpoint(pt, "lazy")
        model_keys = storage_keys(obj["model"], set())
        optimizer_keys = storage_keys(obj["optimizer"], set())
        reader.close()
        self.assertGreater(len(optimizer_keys), 2 * len(model.state_dict()) - 10)
        self.assertFalse(model_keys & optimizer_keys)
        cfg, facts = ex.export(pt, self.path("out"), loader="lazy")
        read = set(facts["storages_read"])
        self.assertTrue(read, "nothing was read")
        self.assertFalse(read & optimizer_keys, "an optimizer storage was read")
        self.assertLessEqual(read, model_keys)
        # embed.weight and head.weight share one storage, read once.
        self.assertEqual(len(facts["storages_read"]), len(read))
        self.assert_same_logits(self.path("out"), model)

    def test_memory_stays_below_the_optimizer(self):
        """Peak RSS of the tool with 256 MiB of optimizer state beside a 1.5 MB model,
        against the same checkpoint without it: within 64 MiB."""
        model = mt.load_model_folder(self.folders["tiny_mla"])
        opt = ref.train_steps(model, 1)
        n = 32 << 20  # two fp32 tensors of 128 MiB
        big = {"exp_avg": torch.ones(n), "exp_avg_sq": torch.full((n,), 2.0)}
        with_opt = ref.save_like_reference(model, opt, self.path("a"), 1, extra_optimizer=big)
        del big
        without = ref.save_like_reference(model, opt, self.path("b"), 1)
        self.assertGreater(os.path.getsize(with_opt), 256 << 20)

        def peak_kib(pt, out):
            # VmHWM of the tool's own process (ru_maxrss of a child would include this
            # process' size at the fork).
            script = ("import runpy, sys\n"
                      f"sys.argv = [{TOOL!r}, '--state-dict', {pt!r}, '--out', {out!r}]\n"
                      "try:\n"
                      "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
                      "except SystemExit as e:\n"
                      "    code = e.code\n"
                      "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
                      "print('peak', hwm[0].split()[1], file=sys.stderr)\n"
                      "sys.exit(code)\n")
            proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            peak = [line for line in proc.stderr.splitlines() if line.startswith("peak ")]
            self.assertEqual(len(peak), 1, proc.stderr)
            return int(peak[0].split()[1])

        small = peak_kib(without, self.path("o1"))
        large = peak_kib(with_opt, self.path("o2"))
        self.assertLess(large - small, 64 << 10, f"peak RSS {small} KiB -> {large} KiB")
        self.assertEqual(read_bytes(self.path("o1", "model.safetensors")),
                         read_bytes(self.path("o2", "model.safetensors")))

    def test_torch_load_is_restricted_explicit_and_mapped(self):
        pt, model = self.reference_checkpoint(prefix="module.")
        # torch.load with the restricted pickle_module reads it too (the mmap path minus
        # mmap, which this torch may lack).
        with BlockImports() as blocker:
            cfg, facts = ex.export(pt, self.path("t"), loader="torch")
        self.assertEqual(blocker.attempts, [])
        self.assertIsNone(facts["storages_read"])
        # torch 1.13's torch.load drops pickle_module when weights_only=False (so the
        # tool hands it to torch's loaders itself); 2.x uses it.
        major = int(torch.__version__.split(".")[0])
        self.assertEqual(ex.torch_honours_pickle_module(), major >= 2)
        self.assert_same_logits(self.path("t"), model)

        calls = []

        def load_with_mmap(f, map_location=None, pickle_module=None, *, weights_only=None,
                           mmap=None, **kw):
            calls.append(dict(map_location=map_location, pickle_module=pickle_module,
                              weights_only=weights_only, mmap=mmap))
            raise RuntimeError("stop here")

        def load_without_mmap(f, map_location=None, pickle_module=None, *, weights_only=None,
                              **kw):
            calls.append("old torch.load")
            raise RuntimeError("stop here")

        with mock.patch.object(ex.torch, "load", load_with_mmap):
            self.assertTrue(ex.torch_has_mmap())
            with self.assertRaises(ex.ExportError) as e:
                ex.load_checkpoint(pt)
        self.assertIn("stop here", str(e.exception))
        self.assertEqual(calls, [dict(map_location="cpu", pickle_module=ex.RESTRICTED_PICKLE,
                                      weights_only=False, mmap=True)])
        # Without mmap a zip checkpoint is read lazily, not by torch.load.
        calls.clear()
        with mock.patch.object(ex.torch, "load", load_without_mmap):
            self.assertFalse(ex.torch_has_mmap())
            obj, reader = ex.load_checkpoint(pt)
            reader.close()
        self.assertEqual(calls, [])
        self.assertIsInstance(obj["model"]["module.embed.weight"], ex.LazyTensor)

    def test_pickled_code_never_runs(self):
        model = mt.load_model_folder(self.folders["tiny_gqa"])
        marker = self.path("marker")
        evil_eval = self.path("eval_marker")
        for loader in ("lazy", "torch"):
            for protocol in (1, 2):
                with self.subTest(loader=loader, protocol=protocol):
                    pt = self.path(f"evil{protocol}.pt")
                    with ref.foreign_module():
                        torch.save({"model": model.state_dict(),
                                    "cfg": ref.ForeignMythosConfig(**dataclasses.asdict(model.cfg)),
                                    "hook": Evil(f"touch {marker}"), "more": [EvalEvil(evil_eval)]},
                                   pt, pickle_protocol=protocol)
                    cfg, facts = ex.export(pt, self.path(f"o{loader}{protocol}"), loader=loader)
                    self.assertFalse(os.path.exists(marker))
                    self.assertFalse(os.path.exists(evil_eval))
                    self.assertEqual(cfg.attn_type, "gqa")
        # A stand-in where a tensor belongs is named, not run.
        sd = dict(model.state_dict())
        sd["norm.weight"] = Evil(f"touch {marker}")
        torch.save({"model": sd, "cfg": dataclasses.asdict(model.cfg)}, self.path("bad.pt"))
        rc, err = self.run_cli("--state-dict", self.path("bad.pt"), "--out", self.path("bad"))
        self.assertEqual(rc, 1)
        self.assertIn("1 entries that are not tensors (norm.weight; system)", err)
        self.assertFalse(os.path.exists(marker))

    def test_tokenizer_is_copied_or_named(self):
        pt, model = self.reference_checkpoint()
        demo = os.path.join(common.REPO, "resources", "models", "demo_mla", "tokenizer.json")
        tik = os.path.join(common.test_data_dir(), "tokenizers", "o200k_base.tiktoken")
        # None anywhere: a note names what to add; the export still succeeds.
        rc, err = self.run_cli("--state-dict", pt, "--out", self.path("none"))
        self.assertEqual(rc, 0, err)
        self.assertIn("no tokenizer.json or .tiktoken file beside", err)
        self.assertIn("openai/gpt-oss-20b", err)
        self.assertEqual(sorted(os.listdir(self.path("none"))),
                         ["config.json", "model.safetensors"])
        # Beside the checkpoint.
        demo_bytes = read_bytes(demo)
        with open(self.path("ckpt", "tokenizer.json"), "wb") as f:
            f.write(demo_bytes)
        rc, stdout, err = self.run_cli_out("--state-dict", pt, "--out", self.path("beside"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(read_bytes(self.path("beside", "tokenizer.json")), demo_bytes)
        self.assertIn("tokenizer tokenizer.json", stdout)
        # --tokenizer FILE wins, replaces the other kind and warns about its size.
        rc, err = self.run_cli("--state-dict", pt, "--out", self.path("beside"), "--tokenizer", tik)
        self.assertEqual(rc, 0, err)
        self.assertEqual(sorted(os.listdir(self.path("beside"))),
                         ["config.json", "model.safetensors", "o200k_base.tiktoken"])
        self.assertIn("has 199,998 tokens but the model's vocab_size is 64", err)
        # --tokenizer FOLDER.
        os.makedirs(self.path("tokdir"))
        with open(self.path("tokdir", "tokenizer.json"), "wb") as f:
            f.write(demo_bytes)
        rc, err = self.run_cli("--state-dict", pt, "--out", self.path("dir"), "--tokenizer",
                               self.path("tokdir"))
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.isfile(self.path("dir", "tokenizer.json")))
        # A --tokenizer that is not there fails before anything is written.
        rc, err = self.run_cli("--state-dict", pt, "--out", self.path("bad"), "--tokenizer",
                               self.path("missing.json"))
        self.assertEqual(rc, 1)
        self.assertIn("missing.json: no such file or folder", err)
        self.assertFalse(os.path.exists(self.path("bad")))

    def test_progress_lines(self):
        pt, model = self.reference_checkpoint()
        rc, stdout, err = self.run_cli_out("--state-dict", pt, "--out", self.path("o"),
                                           "--dtype", "bf16")
        self.assertEqual(rc, 0, err)
        lines = stdout.splitlines()
        self.assertTrue(lines[-1].startswith(f"wrote {self.path('o')}: "), lines[-1])
        progress = [line.split(" ", 3) for line in lines[:-1]]
        self.assertTrue(all(p[0] == "progress" and len(p) == 4 for p in progress), lines[:5])
        self.assertEqual(progress[0][3], "reading " + os.path.basename(pt))
        sized = [(int(p[1]), int(p[2])) for p in progress if int(p[2]) > 0]
        self.assertGreater(len(sized), len(model.state_dict()) - 5)
        done = [d for d, _ in sized]
        self.assertEqual(done, sorted(done))
        size = os.path.getsize(self.path("o", "model.safetensors"))
        header = 8 + int.from_bytes(read_bytes(self.path("o", "model.safetensors"))[:8], "little")
        self.assertEqual(sized[-1], (size - header, size - header))

    def test_stopped_export_leaves_nothing_behind(self):
        pt, model = self.reference_checkpoint()
        real = ex._bytes_of
        count = [0]

        def term_on_fifth(t):
            count[0] += 1
            if count[0] == 5:
                os.kill(os.getpid(), signal.SIGTERM)  # main()'s handler turns it into Stopped
            return real(t)

        before = signal.getsignal(signal.SIGTERM)
        with mock.patch.object(ex, "_bytes_of", term_on_fifth):
            rc, err = self.run_cli("--state-dict", pt, "--out", self.path("new"))
        self.assertEqual(rc, ex.EXIT_STOPPED)
        self.assertIn("stopped", err)
        self.assertFalse(os.path.exists(self.path("new")))  # the tool made it, and removed it
        self.assertIs(signal.getsignal(signal.SIGTERM), before)
        # Into a folder that existed: its files stay, no temporary or half file is left.
        os.makedirs(self.path("old"))
        with open(self.path("old", "notes.txt"), "w") as f:
            f.write("mine")
        count[0] = 0
        with mock.patch.object(ex, "_bytes_of", term_on_fifth):
            rc, err = self.run_cli("--state-dict", pt, "--out", self.path("old"))
        self.assertEqual(rc, ex.EXIT_STOPPED)
        self.assertEqual(os.listdir(self.path("old")), ["notes.txt"])

    def test_without_torch_one_clear_line(self):
        # -S leaves site-packages (where Debian's torch lives) off the path.
        probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import torch"],
                               capture_output=True)
        if probe.returncode == 0:
            self.skipTest("torch is importable without site-packages here")
        pt = self.path("x.pt")
        with open(pt, "wb") as f:
            f.write(b"not read")
        proc = subprocess.run([sys.executable, "-I", "-S", TOOL, "--state-dict", pt,
                               "--out", self.path("o")], capture_output=True, text=True)
        self.assertEqual(proc.returncode, ex.EXIT_NO_TORCH, proc.stderr)
        self.assertEqual(proc.stderr.count("\n"), 1, proc.stderr)
        self.assertIn("export_checkpoint: error: PyTorch is not installed for", proc.stderr)
        self.assertIn("python3-torch", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertFalse(os.path.exists(self.path("o")))


if __name__ == "__main__":
    unittest.main()
