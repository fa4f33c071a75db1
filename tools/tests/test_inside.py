"""Inside the loop (docs/inside-the-loop.md): the PyTorch side (trace_pytorch's lens,
attention, trajectory and interventions, made with hooks) checked on its own, then the
engine's ``mythos-cli trace --lens --attention --trajectory [--intervene F]`` checked
against it on tiny_mla, tiny_gqa (golden) and the bundled demo_mla, demo_gqa.

The engine part needs the mythos-cli binary (MYTHOS_CLI, set by CTest); without the
variable it is skipped like test_demo, but a binary that does not know the flags fails."""

import contextlib
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

import trace_pytorch as tp  # noqa: E402

CLI = os.environ.get("MYTHOS_CLI", "")


def _encode(folder, text):
    with open(os.path.join(folder, "tokenizer.json")) as f:
        vocab = json.load(f)["vocab"]
    return [vocab.index(ch) for ch in text]


class Case:
    """A model, a batch of two rows and a loop count K. tiny_mla and demo_mla run deeper
    than max_loop_iters (depth extrapolation: the LoRA row is clamped, the loop-index
    embedding is not)."""

    def __init__(self, name, folder, K):
        self.name, self.folder, self.K = name, folder, K
        self.model = mt.load_model_folder(folder)
        V = self.model.cfg.vocab_size
        if os.path.isfile(os.path.join(folder, "tokenizer.json")):
            rows = [_encode(folder, "a=3;b=a;c=7;?b"), _encode(folder, "x=5;y=2;z=y;?z")]
        else:
            g = torch.Generator().manual_seed(len(name))
            rows = torch.randint(0, V, (2, 11), generator=g).tolist()
        self.ids = rows
        self.ids_t = torch.tensor(rows)
        with torch.no_grad():
            self.base = self.model(self.ids_t, n_loops=K)
        self.trace = tp.trace_model(self.model, rows, K, hash_weights=False)
        self.deep = tp.deep_run(self.model, rows, K, attention_row=1)
        self.lens = tp.lens_of(self.model, rows, K, deep=self.deep)
        self.traj = tp.trajectory_of(self.deep["states"])

    def parsed(self, iv):
        """The intervention checked and normalised, a "prompt" tokenized with the folder's
        tokenizer."""
        return tp.parse_intervention(iv, self.model.cfg, tp._char_tokenizer(self.folder))

    def interventions(self):
        """(label, intervention) for every kind and one combination, with indices chosen so
        that each does something on this model (an expert that is selected, loops that run)."""
        cfg = self.model.cfg
        sel = torch.tensor(self.trace["routing"]["topk_ids"])  # (L, B, T, k)
        counts = torch.bincount(sel.reshape(-1), minlength=cfg.n_experts)
        busy = int(counts.argmax())
        first = int(torch.bincount(sel[0].reshape(-1), minlength=cfg.n_experts).argmax())
        other = self.ids[1][:8]
        out = [
            ("ablate_experts_all_loops", {"ablate_experts": [{"expert": busy}]}),
            ("ablate_experts_loop_1", {"ablate_experts": [{"expert": first, "loop": 1}]}),
            ("ablate_heads_recurrent_loop_1",
             {"ablate_heads": [{"stage": "recurrent", "layer": 0, "head": 1, "loop": 1}]}),
            ("ablate_heads_prelude_coda",
             {"ablate_heads": [{"stage": "prelude", "layer": 0, "head": 0},
                               {"stage": "coda", "layer": cfg.coda_layers - 1, "head": cfg.n_heads - 1}]}),
            ("exit_loop_2", {"exit": {"loop": 2}}),
            ("exit_loop_K", {"exit": {"loop": self.K}}),
            ("exit_convergence", {"exit": {"at": "convergence"}}),
            ("injection_off_after_1", {"injection_off_after": 1}),
            ("injection_off_after_0", {"injection_off_after": 0}),
            ("lora_scale_zero", {"lora_scale_zero": True}),
            ("loop_shift_2", {"loop_shift": 2}),
            ("patch_ids", {"patch": {"token": 6, "loop": 1, "ids": other, "source_token": 4}}),
            ("combination", {"schema": "mythos-intervention/1", "name": "mix",
                             "ablate_experts": [{"expert": busy, "loop": 2}],
                             "ablate_heads": [{"stage": "recurrent", "layer": 0, "head": 0}],
                             "lora_scale_zero": True, "loop_shift": 1, "injection_off_after": 2,
                             "exit": {"loop": 3},
                             "patch": {"token": 2, "loop": 2, "ids": other}}),
        ]
        if os.path.isfile(os.path.join(self.folder, "tokenizer.json")):
            out.append(("patch_prompt", {"patch": {"token": 4, "loop": 1, "prompt": "q=9;r=q"}}))
        return out


_CASES = None


def cases():
    """The four models, loaded once per process."""
    global _CASES
    if _CASES is None:
        _CASES = []
        for name, K in (("tiny_mla", 6), ("tiny_gqa", 4)):
            folder = common.tiny_case(name)
            if folder is not None:
                _CASES.append(Case(name, folder, K))
        for name, K in (("demo_mla", 8), ("demo_gqa", 6)):
            folder = os.path.join(common.REPO, "resources", "models", name)
            if os.path.isfile(os.path.join(folder, "model.safetensors")):
                _CASES.append(Case(name, folder, K))
        if len(_CASES) < 4:
            raise unittest.SkipTest("tiny_mla / tiny_gqa / demo models not found")
    return _CASES


def max_err(got, ref):
    return float((got.double() - ref.double()).abs().max()) if ref.numel() else 0.0


class PyTorchSideTest(unittest.TestCase):
    """trace_pytorch on its own: the definitions of docs/inside-the-loop.md restated as
    properties that a wrong hook would break."""

    def test_cached_deep_run_computes_the_uncached_states(self):
        for c in cases():
            with self.subTest(c.name):
                seen = []
                hk = c.model.recurrent.injection.register_forward_hook(lambda _m, _i, o: seen.append(o))
                try:
                    with torch.no_grad():
                        out = c.model(c.ids_t, n_loops=c.K)
                finally:
                    hk.remove()
                self.assertGreaterEqual(len(seen), 1)
                for t, h in enumerate(seen):
                    self.assertTrue(torch.equal(h, c.deep["states"][t]), f"loop {t + 1}")
                self.assertTrue(torch.equal(out, c.deep["logits"]))

    def test_act_lens_is_the_forward_at_t_loops(self):
        for c in cases():
            with self.subTest(c.name):
                act = c.lens["act"]
                for t in range(1, c.K + 1):
                    with torch.no_grad():
                        ref = c.model(c.ids_t, n_loops=t)
                    self.assertTrue(torch.equal(act["logits"][t - 1], ref), f"t={t}")
                self.assertTrue(torch.equal(act["logits"][-1], torch.tensor(c.trace["logits"])))
                self.assertEqual(float(act["kl_final"][-1].abs().max()), 0.0)

    def test_state_lens_is_the_exit_at_that_loop(self):
        for c in cases():
            with self.subTest(c.name):
                for t in range(1, c.K + 1):
                    got = tp.run_intervened(c.model, c.ids, c.K, {"exit": {"loop": t}})
                    ref = c.lens["state"]["logits"][t - 1]
                    self.assertTrue(common.close(got, ref, 1e-5, 1e-6), f"t={t}: {max_err(got, ref)}")

    def test_lens_numbers_follow_their_definitions(self):
        for c in cases():
            for name in ("act", "state"):
                with self.subTest(c.name, lens=name):
                    L = c.lens[name]
                    logits = L["logits"]
                    self.assertTrue(torch.equal(L["top1"], logits.argmax(-1)))
                    probs = torch.softmax(logits, -1)
                    self.assertLess(max_err(L["p"], probs.max(-1).values), 1e-6)
                    ent = -(probs.double() * torch.log_softmax(logits, -1).double()).sum(-1)
                    self.assertLess(max_err(L["entropy"], ent), 1e-6)
                    self.assertTrue(bool(torch.isnan(L["kl_prev"][0]).all()))
                    self.assertFalse(bool(torch.isnan(L["kl_prev"][1:]).any()))
                    self.assertGreater(float(L["kl_final"].min()), -1e-5)
                    conv = L["convergence"]
                    self.assertTrue(bool(((conv >= 1) & (conv <= c.K)).all()))
                    top1 = L["top1"]
                    for b in range(top1.shape[1]):
                        for i in range(top1.shape[2]):
                            k = int(conv[b, i])
                            self.assertTrue(bool((top1[k - 1:, b, i] == top1[-1, b, i]).all()))
                            if k > 1:
                                self.assertNotEqual(int(top1[k - 2, b, i]), int(top1[-1, b, i]))

    def test_attention_sites_are_the_models_softmax(self):
        for c in cases():
            with self.subTest(c.name):
                cfg = c.model.cfg
                sites = c.deep["sites"]
                names = ([f"prelude_{i}" for i in range(cfg.prelude_layers)]
                         + [f"recurrent_loop_{j}" for j in range(c.K)]
                         + [f"coda_{i}" for i in range(cfg.coda_layers)])
                self.assertEqual([s["name"] for s in sites], names)
                self.assertEqual([s["loop"] for s in sites if s["stage"] == "recurrent"],
                                 list(range(1, c.K + 1)))
                T = c.ids_t.shape[1]
                for s in sites:
                    P = s["probs"]
                    self.assertEqual(tuple(P.shape), (cfg.n_heads, T, T))
                    self.assertLess(max_err(P.sum(-1), torch.ones(cfg.n_heads, T)), 1e-5)
                    self.assertEqual(float(P.triu(1).abs().max()), 0.0, s["name"])
                if cfg.attn_type == "gqa":
                    # prelude_0 re-derived from the embedding: attn_norm, wq / wk, RoPE, scale
                    blk = c.model.prelude[0]
                    with torch.no_grad():
                        x = blk.attn_norm(c.model.embed(c.ids_t[1:2]))
                        hd = cfg.dim // cfg.n_heads
                        fr = c.model.freqs_cis[:T]
                        q = mt.apply_rope(blk.attn.wq(x).view(1, T, cfg.n_heads, hd), fr)
                        k = mt.apply_rope(blk.attn.wk(x).view(1, T, cfg.n_kv_heads, hd), fr)
                        k = k.repeat_interleave(cfg.n_heads // cfg.n_kv_heads, dim=2)
                        s = torch.einsum("bthd,bshd->bhts", q, k) * hd ** -0.5
                        s = s + torch.full((T, T), float("-inf")).triu(1)
                        ref = torch.softmax(s, -1)[0]
                    self.assertLess(max_err(sites[0]["probs"], ref), 1e-6)

    def test_trajectory(self):
        for c in cases():
            with self.subTest(c.name):
                tr = c.traj
                K, B, T = c.K, *c.ids_t.shape
                self.assertEqual(tuple(tr["coords"].shape), (K, B, T, 2))
                self.assertLess(max_err(tr["cos_final"][-1], torch.ones(B, T)), 1e-9)
                e = tr["explained"]
                self.assertTrue(0 <= e[1] <= e[0] <= 1 and e[0] + e[1] <= 1 + 1e-9)
                S = c.deep["states"].double().reshape(-1, c.model.cfg.dim)
                total = float(((S - S.mean(0)) ** 2).sum())
                for i in range(2):
                    share = float((tr["coords"][..., i] ** 2).sum()) / total
                    self.assertAlmostEqual(share, e[i], places=9)

    def test_interventions_that_change_nothing(self):
        found = 0
        for c in cases():
            with self.subTest(c.name):
                cfg = c.model.cfg
                nothing = [{}, {"schema": "mythos-intervention/1", "name": "none"},
                           {"loop_shift": 0}, {"ablate_experts": []},
                           {"injection_off_after": c.K}]
                for iv in nothing:
                    got = tp.run_intervened(c.model, c.ids, c.K, iv)
                    self.assertTrue(torch.equal(got, c.base), json.dumps(iv))
                # an expert that no position selects at loop t
                sel = torch.tensor(c.trace["routing"]["topk_ids"])
                for t in range(sel.shape[0]):
                    unused = set(range(cfg.n_experts)) - set(sel[t].reshape(-1).tolist())
                    for e in sorted(unused)[:1]:
                        got = tp.run_intervened(c.model, c.ids, c.K,
                                                {"ablate_experts": [{"expert": e, "loop": t + 1}]})
                        self.assertTrue(common.close(got, c.base, 1e-6, 1e-6), f"expert {e} loop {t + 1}")
                        found += 1
                # patching a position with its own state
                got = tp.run_intervened(c.model, c.ids, c.K,
                                        {"patch": {"token": 3, "loop": 1, "ids": c.ids[0]}})
                self.assertTrue(torch.equal(got[0], c.base[0]))
                # a loop the uncached run never reaches (every position halted before it)
                L = c.trace["loops_executed"]
                if L < c.K:
                    for iv in ({"ablate_experts": [{"expert": 0, "loop": L + 1}]},
                               {"ablate_heads": [{"stage": "recurrent", "head": 0, "loop": L + 1}]},
                               {"injection_off_after": L}, {"patch": {"token": 0, "loop": L + 1,
                                                                      "ids": c.ids[1]}}):
                        got = tp.run_intervened(c.model, c.ids, c.K, iv)
                        self.assertTrue(torch.equal(got, c.base), json.dumps(iv))
        self.assertGreater(found, 0, "no case has an expert that some loop leaves unused")

    def test_interventions_take_effect(self):
        for c in cases():
            with self.subTest(c.name):
                w = torch.tensor(c.trace["act"]["weight"])
                for label, iv in c.interventions():
                    got = tp.run_intervened(c.model, c.ids, c.K, c.parsed(iv))
                    err = max_err(got, c.base)
                    if label == "exit_loop_K" and float(w.max(0).values.min()) > 0.999:
                        continue  # every position's ACT weight on one loop: may equal it
                    if label == "injection_off_after_1" and c.trace["loops_executed"] < 2:
                        continue
                    self.assertGreater(err, 1e-4, label)
                tr = tp.trace_model(c.model, c.ids, c.K, hash_weights=False,
                                    intervention={"ablate_experts": [{"expert": 0}]})
                sel = torch.tensor(tr["routing"]["topk_ids"])
                gates = torch.tensor(tr["routing"]["weights"])
                self.assertEqual(float(gates[sel == 0].abs().max()) if bool((sel == 0).any()) else 0.0, 0.0)
                self.assertEqual(tr["intervention"], {"ablate_experts": [{"expert": 0}]})

    def test_exit_runs_every_loop(self):
        c = cases()[2]
        tr = tp.trace_model(c.model, c.ids, c.K, hash_weights=False, intervention={"exit": {"loop": 2}})
        self.assertEqual(tr["loops_executed"], c.K)
        self.assertNotIn("kv", tr)

    def test_bad_interventions_name_the_field(self):
        c = cases()[0]
        bad = [({"frobnicate": 1}, "frobnicate"),
               ({"ablate_experts": [{"expert": c.model.cfg.n_experts}]}, "ablate_experts[0].expert"),
               ({"ablate_experts": [{"expert": 0, "when": 1}]}, "ablate_experts[0].when"),
               ({"ablate_experts": {"expert": 0}}, "ablate_experts"),
               ({"ablate_heads": [{"stage": "middle", "head": 0}]}, "ablate_heads[0].stage"),
               ({"ablate_heads": [{"stage": "coda", "layer": 5, "head": 0}]}, "ablate_heads[0].layer"),
               ({"ablate_heads": [{"stage": "recurrent", "head": 99}]}, "ablate_heads[0].head"),
               ({"exit": {"loop": 0}}, "exit.loop"),
               ({"exit": {"at": "never"}}, "exit.at"),
               ({"exit": 3}, "exit"),
               ({"injection_off_after": "2"}, "injection_off_after"),
               ({"injection_off_after": -1}, "injection_off_after"),
               ({"lora_scale_zero": 1}, "lora_scale_zero"),
               ({"loop_shift": 1.5}, "loop_shift"),
               ({"loop_shift": -1}, "loop_shift"),
               ({"patch": {"token": 1, "loop": 0, "ids": [1, 2]}}, "patch.loop"),
               ({"patch": {"token": 1, "loop": 1, "ids": [1, 1 << 20]}}, "patch.ids"),
               ({"patch": {"token": 1, "loop": 1}}, "patch"),
               ({"patch": {"token": 1, "loop": 1, "ids": [1, 2], "source_token": 2}}, "patch.source_token"),
               ({"patch": {"token": 50, "loop": 1, "ids": [1] * 60}}, "patch.token"),
               ({"schema": "mythos-intervention/9"}, "schema")]
        for iv, field in bad:
            with self.subTest(field=field):
                with self.assertRaises(ValueError) as ctx:
                    tp.run_intervened(c.model, c.ids, c.K, iv)
                self.assertIn(f"'{field}'", str(ctx.exception))
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "iv.json")
            with open(f, "w") as fh:
                json.dump({"ablate_heads": [{"stage": "recurrent", "head": 99}]}, fh)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = tp.main(["--model", c.folder, "--ids", "1,2,3", "--intervene", f,
                              "--out", os.path.join(tmp, "t.json")])
            self.assertEqual(rc, 1)
            self.assertEqual(len(err.getvalue().strip().splitlines()), 1)
            self.assertIn("ablate_heads[0].head", err.getvalue())

    def test_main_writes_the_optional_parts(self):
        c = cases()[3]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "t.json")
            ivf = os.path.join(tmp, "iv.json")
            with open(ivf, "w") as fh:
                json.dump({"lora_scale_zero": True}, fh)
            ids = ";".join(",".join(map(str, r)) for r in c.ids)
            with contextlib.redirect_stdout(io.StringIO()):
                rc = tp.main(["--model", c.folder, "--ids", ids, "--loops", str(c.K), "--lens",
                              "--attention", "--attention-row", "1", "--trajectory",
                              "--intervene", ivf, "--out", out])
            self.assertEqual(rc, 0)
            with open(out) as fh:
                tr = json.load(fh, parse_constant=lambda s: self.fail(f"{s} in the file"))
        check_parts(self, tr)
        self.assertEqual(tr["intervention"], {"lora_scale_zero": True})


def shape_of(x):
    if not isinstance(x, list):
        return ()
    inner = {shape_of(v) for v in x}
    if len(inner) > 1:
        raise AssertionError("ragged array")
    return (len(x),) + (inner.pop() if inner else ())


def check_parts(tc, tr):
    """The shapes of docs/trace-schema.md, "Optional parts: inside the loop"."""
    K, B, T, V = tr["n_loops"], tr["batch"], tr["seq_len"], tr["vocab"]
    H = tr["config"]["n_heads"]
    tc.assertEqual((tr["lens"]["version"], tr["lens"]["loops"]), (1, K))
    for name in ("act", "state"):
        part = tr["lens"][name]
        for f in ("top1", "p", "entropy", "kl_final", "kl_prev"):
            tc.assertEqual(shape_of(part[f]), (K, B, T), f"lens.{name}.{f}")
        tc.assertEqual(shape_of(part["convergence"]), (B, T))
        if "logits" in part:
            tc.assertEqual(shape_of(part["logits"]), (K, B, T, V))
        tc.assertTrue(all(v is None for r in part["kl_prev"][0] for v in r))
    a = tr["attention"]
    tc.assertEqual(a["version"], 1)
    for s in a["sites"]:
        tc.assertEqual(shape_of(s["probs"]), (H, T, T), s["name"])
        tc.assertEqual(set(s), {"name", "stage", "layer", "loop", "probs"})
    t = tr["trajectory"]
    tc.assertEqual(t["version"], 1)
    tc.assertEqual(shape_of(t["explained"]), (2,))
    tc.assertEqual(shape_of(t["coords"]), (K, B, T, 2))
    tc.assertEqual(shape_of(t["cos_final"]), (K, B, T))


def _t(x):
    """JSON array -> float64 tensor, null as NaN."""
    if isinstance(x, list):
        return torch.tensor(_nan(x), dtype=torch.float64)
    return torch.tensor(float("nan") if x is None else x, dtype=torch.float64)


def _nan(x):
    return [_nan(v) for v in x] if isinstance(x, list) else (float("nan") if x is None else x)


@unittest.skipUnless(CLI, "MYTHOS_CLI is not set (CTest sets it to the mythos-cli binary)")
class EngineTest(unittest.TestCase):
    """mythos-cli trace --lens --attention --trajectory [--intervene] against trace_pytorch."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def cli(self, c, *extra, loops=None):
        out = os.path.join(self.tmp.name, "engine.json")
        ids = ";".join(",".join(map(str, r)) for r in c.ids)
        cmd = [CLI, "trace", "--model", c.folder, "--ids", ids, "--loops", str(loops or c.K),
               "--threads", "1", "--out", out, *extra]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            self.fail(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        with open(out) as f:
            return json.load(f)

    def assertLogitsClose(self, got, ref, what, rel=2e-4, abs_=2e-5):
        got, ref = _t(got), ref.double()
        self.assertEqual(tuple(got.shape), tuple(ref.shape), what)
        scale = float(ref.abs().max())
        err = max_err(got, ref)
        self.assertLessEqual(err, rel * scale + abs_, f"{what}: max error {err:.3g} of {scale:.3g}")

    def assertTop1(self, got, ref_top1, ref_logits, what):
        """Equal top-1, except where the reference's best two logits are within tolerance."""
        got = torch.tensor(got)
        bad = got != ref_top1
        if bool(bad.any()):
            lg = ref_logits.double()
            a = lg.gather(-1, got.unsqueeze(-1)).squeeze(-1)
            b = lg.gather(-1, ref_top1.unsqueeze(-1)).squeeze(-1)
            gap = (b - a).abs()[bad]
            self.assertLessEqual(float(gap.max()), 1e-4 * float(lg.abs().max()) + 1e-5,
                                 f"{what}: {int(bad.sum())} top-1 differ")
        return bad

    def test_lens_attention_trajectory(self):
        for c in cases():
            with self.subTest(c.name):
                eng = self.cli(c, "--lens", "--attention", "--attention-row", "1", "--trajectory",
                               "--full-logits")
                check_parts(self, eng)
                self.assertLogitsClose(eng["logits"], c.base, "logits")
                for name in ("act", "state"):
                    L, E = c.lens[name], eng["lens"][name]
                    w = f"lens.{name}"
                    self.assertLogitsClose(E["logits"], L["logits"], w + ".logits")
                    bad = self.assertTop1(E["top1"], L["top1"], L["logits"], w + ".top1")
                    self.assertLess(max_err(_t(E["p"]), L["p"]), 1e-4, w + ".p")
                    self.assertLess(max_err(_t(E["entropy"]), L["entropy"]), 2e-4, w + ".entropy")
                    for f in ("kl_final", "kl_prev"):
                        got, ref = _t(E[f]), L[f]
                        self.assertTrue(torch.equal(torch.isnan(got), torch.isnan(ref)), f"{w}.{f} nulls")
                        ok = ~torch.isnan(ref)
                        err = (got[ok] - ref[ok]).abs() - 1e-3 * ref[ok].abs()
                        self.assertLess(float(err.max()), 2e-4, f"{w}.{f}")
                    conv_ok = ~bad.any(0)
                    got_conv = torch.tensor(E["convergence"])
                    self.assertTrue(torch.equal(got_conv[conv_ok], L["convergence"][conv_ok]),
                                    f"{w}.convergence")
                a = eng["attention"]
                self.assertEqual(a["batch_row"], 1)
                ref_sites = c.deep["sites"]
                self.assertEqual([s["name"] for s in a["sites"]], [s["name"] for s in ref_sites])
                for s, r in zip(a["sites"], ref_sites):
                    self.assertEqual((s["stage"], s["layer"], s["loop"]), (r["stage"], r["layer"], r["loop"]))
                    err = max_err(_t(s["probs"]), r["probs"])
                    self.assertLess(err, 2e-5, f"attention {s['name']}: {err:.3g}")
                t = eng["trajectory"]
                for i in range(2):
                    self.assertAlmostEqual(t["explained"][i], c.traj["explained"][i], delta=1e-4,
                                           msg="trajectory.explained")
                coords = _t(t["coords"])
                scale = float(c.traj["coords"].abs().max())
                err = max_err(coords, c.traj["coords"])
                self.assertLessEqual(err, 1e-3 * scale, f"trajectory.coords: {err:.3g} of {scale:.3g}")
                self.assertLess(max_err(_t(t["cos_final"]), c.traj["cos_final"]), 1e-5,
                                "trajectory.cos_final")

    def test_act_lens_at_K_is_the_trace_output(self):
        for c in cases():
            with self.subTest(c.name):
                eng = self.cli(c, "--lens", "--full-logits")
                got = _t(eng["lens"]["act"]["logits"])[-1]
                self.assertLessEqual(max_err(got, _t(eng["logits"])), 1e-6)

    def test_interventions(self):
        for c in cases():
            for label, iv in c.interventions():
                with self.subTest(c.name, intervention=label):
                    f = os.path.join(self.tmp.name, "iv.json")
                    with open(f, "w") as fh:
                        json.dump(iv, fh)
                    eng = self.cli(c, "--intervene", f)
                    ref = tp.run_intervened(c.model, c.ids, c.K, c.parsed(iv))
                    self.assertLogitsClose(eng["logits"], ref, f"{label} logits")
                    self.assertIn("intervention", eng)
                    tr = tp.trace_model(c.model, c.ids, c.K, hash_weights=False, intervention=c.parsed(iv))
                    self.assertEqual(eng["loops_executed"], tr["loops_executed"], label)
                    if "exit" in iv:
                        self.assertEqual(eng["loops_executed"], c.K, label)
                    self.assertEqual(eng["act"]["halt_loop"], tr["act"]["halt_loop"], label)
                    self.assertLess(max_err(_t(eng["act"]["p"]), _t(tr["act"]["p"])), 1e-5, f"{label} act.p")
                    self.assertTrue(common.close(_t(eng["h_norm"]), _t(tr["h_norm"]), 1e-4, 1e-5),
                                    f"{label} h_norm")
                    self.assertEqual(eng["routing"]["topk_ids"], tr["routing"]["topk_ids"], label)
                    err = max_err(_t(eng["routing"]["weights"]), _t(tr["routing"]["weights"]))
                    self.assertLess(err, 1e-5, f"{label} routing.weights")

    def test_lens_attention_trajectory_of_an_intervened_run(self):
        for c in (cases()[0], cases()[3]):
            for label, iv in c.interventions():
                if label not in ("exit_loop_2", "combination", "patch_ids"):
                    continue
                with self.subTest(c.name, intervention=label):
                    f = os.path.join(self.tmp.name, "iv.json")
                    with open(f, "w") as fh:
                        json.dump(iv, fh)
                    eng = self.cli(c, "--intervene", f, "--lens", "--attention", "--trajectory",
                                   "--full-logits")
                    deep = tp.deep_run(c.model, c.ids, c.K, c.parsed(iv), attention_row=0)
                    lens = tp.lens_of(c.model, c.ids, c.K, c.parsed(iv), deep=deep)
                    for name in ("act", "state"):
                        self.assertLogitsClose(eng["lens"][name]["logits"], lens[name]["logits"],
                                               f"{label} lens.{name}.logits")
                    for s, r in zip(eng["attention"]["sites"], deep["sites"]):
                        self.assertLess(max_err(_t(s["probs"]), r["probs"]), 2e-5, f"{label} {s['name']}")
                    traj = tp.trajectory_of(deep["states"])
                    err = max_err(_t(eng["trajectory"]["coords"]), traj["coords"])
                    self.assertLessEqual(err, 1e-3 * float(traj["coords"].abs().max()), f"{label} coords")

    def test_empty_intervention_is_the_unmodified_run(self):
        c = cases()[0]
        f = os.path.join(self.tmp.name, "empty.json")
        with open(f, "w") as fh:
            fh.write("{}")
        self.assertEqual(self.cli(c, "--intervene", f)["logits"], self.cli(c)["logits"])

    def test_bad_intervention_is_one_line_naming_the_field(self):
        c = cases()[0]
        for iv, field in (({"frobnicate": 1}, "frobnicate"),
                          ({"ablate_experts": [{"expert": c.model.cfg.n_experts}]}, "expert"),
                          ({"ablate_heads": [{"stage": "recurrent", "head": 99}]}, "head")):
            with self.subTest(field=field):
                f = os.path.join(self.tmp.name, "bad.json")
                with open(f, "w") as fh:
                    json.dump(iv, fh)
                r = subprocess.run([CLI, "trace", "--model", c.folder, "--ids", "1,2,3", "--intervene", f,
                                    "--out", os.path.join(self.tmp.name, "x.json")],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(field, r.stderr)


if __name__ == "__main__":
    unittest.main()
