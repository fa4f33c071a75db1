"""tasks.py (the demo task mix) and a few-step run of train_demo.py end to end."""

import contextlib
import io
import json
import os
import random
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import mt, torch  # noqa: E402

import tasks  # noqa: E402
import train_demo  # noqa: E402


def resolve(stmts: str, var: str) -> str:
    """Follows the assignments like the model must: one lookup per hop."""
    env = dict(s.split("=") for s in stmts.split(";"))
    while not env[var].isdigit():
        var = env[var]
    return env[var]


class TasksTest(unittest.TestCase):
    def test_vocab_and_tokenizer(self):
        self.assertLessEqual(len(tasks.VOCAB), 64)
        tok = tasks.tokenizer_json()
        self.assertEqual((tok["type"], tok["version"], tok["unk"]), ("char", 1, 0))
        self.assertTrue(all(len(c) == 1 for c in tok["vocab"][1:]))
        rng = random.Random(3)
        for _ in range(300):
            e = tasks.sample_train(rng)
            self.assertTrue(set(e.text) <= set(tasks.VOCAB), e.text)
            self.assertEqual(tasks.decode(tasks.encode(e.text)), e.text)

    def test_answers_are_right(self):
        rng = random.Random(5)
        for h in range(1, tasks.EVAL_MAX_HOPS + 1):
            e = tasks.make_chain(rng, h)
            stmts, var = e.prompt.rsplit(";", 1)
            self.assertTrue(var.startswith("?"), e.prompt)
            var = var[1:]
            self.assertEqual(resolve(stmts, var), e.answer)
            self.assertLessEqual(len(stmts.split(";")), max(tasks.MAX_STATEMENTS, h + 1))
            # exactly h assignments lie on the path from the query to the digit
            env = dict(s.split("=") for s in stmts.split(";"))
            n, v = 1, var
            while not env[v].isdigit():
                v, n = env[v], n + 1
            self.assertEqual(n, h)
        # every extra training query is answered right and trained at its answer digit
        for h in range(1, tasks.TRAIN_MAX_HOPS + 1):
            e = tasks.make_chain(rng, h, queries=5)
            stmts = e.prompt.rsplit(";", 1)[0]
            self.assertEqual(len(e.target_hops), len(e.targets))
            self.assertEqual(e.target_hops[0], h)
            env = dict(st.split("=") for st in stmts.split(";"))
            for c, th in zip(e.targets, e.target_hops):
                n, v = 1, e.text[c - 1]
                while not env[v].isdigit():
                    v, n = env[v], n + 1
                self.assertEqual(n, th)
            for c in e.targets:
                self.assertTrue(e.text[c].isdigit())
                self.assertEqual(e.text[c - 2], "?")
                self.assertEqual(resolve(stmts, e.text[c - 1]), e.text[c])
        for d in range(1, tasks.EVAL_MAX_DIGITS + 1):
            e = tasks.make_add(rng, d)
            a, b = e.prompt[:-1].split("+")
            self.assertEqual(int(a) + int(b), int(e.answer))
            self.assertEqual(e.hops, d)

    def test_chains_in_resolution_order_with_statement_values(self):
        rng = random.Random(11)
        interleaved = 0
        for h in range(1, tasks.EVAL_MAX_HOPS + 1):
            for _ in range(20):
                e = tasks.make_chain(rng, h)
                stmts = e.prompt.rsplit(";", 1)[0].split(";")
                env = dict(st.split("=") for st in stmts)
                # every right-hand variable is defined by an earlier statement
                for i, st in enumerate(stmts):
                    rhs = st[2]
                    if not rhs.isdigit():
                        self.assertIn(rhs, [s[0] for s in stmts[:i]], e.prompt)
                self.assertEqual(len(e.statements), len(stmts))
                for (pos, digit, hops), st in zip(e.statements, stmts):
                    self.assertEqual(e.prompt[pos - 2:pos + 1], st)
                    self.assertEqual(resolve(";".join(stmts), st[0]), digit)
                    n, v = 1, st[0]
                    while not env[v].isdigit():
                        v, n = env[v], n + 1
                    self.assertEqual(n, hops)
                # distractor chains are interleaved with the main one, not appended
                heads = [i for i, st in enumerate(stmts) if st[2].isdigit()]
                interleaved += any(heads[j + 1] - heads[j] > 1 for j in range(len(heads) - 1)) and \
                    heads[-1] < len(stmts) - 1
        self.assertGreater(interleaved, 20)
        # the shuffled variant breaks the order somewhere
        broken = 0
        for _ in range(50):
            e = tasks.make_chain(rng, 4, ordered=False)
            stmts = e.prompt.rsplit(";", 1)[0].split(";")
            broken += any(not st[2].isdigit() and st[2] not in [s[0] for s in stmts[:i]]
                          for i, st in enumerate(stmts))
        self.assertGreater(broken, 10)

    def test_deterministic_and_ranges(self):
        a = [tasks.sample_train(random.Random(7)).text for _ in range(3)]
        b = [tasks.sample_train(random.Random(7)).text for _ in range(3)]
        self.assertEqual(a, b)
        rng = random.Random(1)
        hops = {tasks.sample_train(rng).hops for _ in range(500)}
        self.assertLessEqual(max(hops), tasks.TRAIN_MAX_HOPS)
        ev = tasks.eval_set(0, per_level=2)
        self.assertEqual(max(e.hops for e in ev if e.task == "chain"), tasks.EVAL_MAX_HOPS)
        self.assertEqual([e.text for e in ev], [e.text for e in tasks.eval_set(0, per_level=2)])

    def test_prompts_writer(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "prompts.jsonl")
            tasks.write_prompts(path, tasks.eval_set(1, per_level=1))
            with open(path) as f:
                rows = [json.loads(line) for line in f]
            self.assertEqual(len(rows), tasks.EVAL_MAX_HOPS + tasks.EVAL_MAX_DIGITS)
            for r in rows:
                self.assertTrue({"prompt", "answer", "hops"} <= set(r))


class TrainDemoSmokeTest(unittest.TestCase):
    def test_batch_marks_each_statement_with_its_resolved_digit(self):
        ids, tgt, valid, thop, sval, shop = train_demo.make_batch(random.Random(4), 16, 95, queries=3)
        marked = 0
        for b in range(ids.shape[0]):
            text = tasks.decode(ids[b][valid[b]].tolist())
            if "?" not in text:  # a text line: no statements
                self.assertTrue(bool((sval[b] == -100).all()))
                continue
            stmts = text.split("?")[0].rstrip(";").split(";")
            pos = 0
            for st in stmts:
                self.assertEqual(int(sval[b, pos + 2]), int(resolve(";".join(stmts), st[0])))
                self.assertGreaterEqual(int(shop[b, pos + 2]), 1)
                self.assertEqual(int(shop[b, pos + 2]) == 1, st[2].isdigit())
                pos += len(st) + 1
                marked += 1
            self.assertEqual(int((sval[b] != -100).sum()), len(stmts))
        self.assertGreater(marked, 30)

    def test_few_steps_write_loadable_folders(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = train_demo.main(["--out", tmp, "--steps", "3", "--minutes", "5", "--threads", "1",
                                      "--eval-per-level", "1", "--batch", "8", "--log-every", "1"])
            self.assertEqual(rc, 0)
            torch.set_num_threads(1)
            for v in ("mla", "gqa"):
                folder = os.path.join(tmp, f"demo_{v}")
                self.assertEqual(sorted(os.listdir(folder)),
                                 ["config.json", "model.safetensors", "prompts.jsonl", "tokenizer.json"])
                self.assertLessEqual(os.path.getsize(os.path.join(folder, "model.safetensors")), 2 << 20)
                model = mt.load_model_folder(folder)
                self.assertEqual(model.cfg.attn_type, v)
                with open(os.path.join(folder, "tokenizer.json")) as f:
                    self.assertLessEqual(len(json.load(f)["vocab"]), model.cfg.vocab_size)
                self.assertLessEqual(float(model.injection_A().max()), train_demo.RHO_MAX + 1e-6)
            self.assertIn("[mla] step     3", out.getvalue())

    def test_passthrough_scale_is_the_model_at_scale_one(self):
        # The training-time pass-through scaling must vanish at s = 1 (the trained model is
        # the reference's), and change the output below 1.
        torch.manual_seed(3)
        model = mt.OpenMythos(train_demo.demo_config("gqa"))
        with torch.no_grad():
            model.recurrent.act.halt.bias.fill_(-3.0)  # keep every loop running
        ids = torch.randint(1, model.cfg.vocab_size, (2, 12))
        with torch.no_grad():
            want = model(ids, n_loops=3)

        def run_with(attr, value, default):
            """The output with the training aid set to value, and again after resetting it."""
            self.assertEqual(getattr(model.recurrent, attr), default)
            with torch.no_grad():
                setattr(model.recurrent, attr, value)
                changed = model(ids, n_loops=3)
                setattr(model.recurrent, attr, default)
                again = model(ids, n_loops=3)
            self.assertTrue(torch.equal(want, again))
            return changed

        other = run_with("passthrough_scale", 0.5, 1.0)
        self.assertGreater(float((want - other).abs().max()), 1e-3)
        # Likewise the loop-index offset (--loop-jitter): 0 is the model, 2 is not.
        shifted = run_with("loop_offset", 2, 0)
        self.assertGreater(float((want - shifted).abs().max()), 1e-4)

    def test_rescale_rule(self):
        model = mt.OpenMythos(train_demo.demo_config("gqa"))
        with torch.no_grad():
            model.recurrent.injection.log_A.fill_(-4.0)  # A ~ 0.98
        before = model.injection_A().clone()
        rho, after = train_demo.rescale_rho(model, 0.9)
        self.assertGreater(rho, 0.9)
        self.assertAlmostEqual(after, 0.9, places=5)
        # every entry scaled by the same factor, like mythos-cli rescale
        ratio = model.injection_A() / before
        self.assertLess(float(ratio.max() - ratio.min()), 1e-5)


if __name__ == "__main__":
    unittest.main()
