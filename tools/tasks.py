"""Character-level task mix for the bundled demo models.

Why these tasks: the explorer exists to show looped-depth behaviour, so the demo models
need inputs where the amount of computation per token visibly varies and can exceed what
training saw (depth extrapolation):

  * ``chain``: multi-hop variable lookups, "b=4;a=3;c=a;d=b;e=c;?e3". Each chain's
    statements come in the order they resolve (as in "a=3;b=a;c=b;c?"), the chains
    interleaved at random; ``hops`` = assignments on the path from the queried variable
    to the digit. A causal model resolves statement j of a chain at its own position by
    looking up statement j - 1, one hop per pass of the looped block, so a k-hop answer
    needs about k loops and longer chains need more loops than training ever ran
    (``ORDERED``; with the statements shuffled instead, the query position alone must
    chase the pointers, and the 20-minute demo models did not learn more than one hop).
    Training uses 1..4 hops, evaluation up to 8.
  * ``add``: multi-digit addition with carries, "47+85=132"; the leading answer digit
    depends on the whole carry chain. ``hops`` = digits of the longer operand.
  * ``text``: a little plain text from templates, where most tokens are easy, so ACT
    can learn to halt early on them.

Each example is one line ending in "\\n". Generation is deterministic from a seed
(``random.Random``, never the global RNG). Only the characters in ``VOCAB`` occur.
"""

import json
import os
import random
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

PAD = "<pad>"
DIGITS = "0123456789"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
PUNCT = "=;?+.,!'-:"
# id 0 is <pad>, also the unknown-character id ("unk": 0 in tokenizer.json).
VOCAB: List[str] = [PAD, "\n", " "] + list(DIGITS) + list(LETTERS) + list(PUNCT)
assert len(VOCAB) <= 64 and len(set(VOCAB)) == len(VOCAB)
STOI: Dict[str, int] = {c: i for i, c in enumerate(VOCAB)}

TRAIN_MAX_HOPS = 4
EVAL_MAX_HOPS = 8
# Statements per chain prompt (the chain plus distractors), training and evaluation alike.
MAX_STATEMENTS = 11
TRAIN_MAX_DIGITS = 4
EVAL_MAX_DIGITS = 8
# Training mix (chain, add, text). Addition is left out of the bundled recipe: in the
# 20-minute CPU budget a model this small does not learn carries, and every step spent on
# it is taken from the chains, where depth visibly matters.
TRAIN_MIX = (0.9, 0.0, 0.1)
# Chain statements in resolution order, chains interleaved (see the module docstring);
# False: every statement shuffled (train_demo.py --shuffled).
ORDERED = True


@dataclass
class Example:
    """``prompt`` + ``answer`` + ``more`` + "\n" is the full line. ``more`` holds extra
    training queries after the first (";c?1;y?1"), so one line trains several lookups.
    ``targets`` are the character indices whose prediction is trained: by default from
    ``target_from`` on (the answer for the reasoning tasks, since the prompt's random
    symbols are not predictable; everything for text). ``target_hops`` (chains with extra
    queries) gives each target's hop count, in the order of ``targets``."""
    task: str
    prompt: str
    answer: str
    hops: int
    target_from: int = field(default=-1)
    more: str = ""
    targets: Optional[List[int]] = None
    target_hops: Optional[List[int]] = None
    statements: Optional[List[tuple]] = None

    def __post_init__(self):
        if self.target_from < 0:
            self.target_from = len(self.prompt)
        if self.targets is None:
            self.targets = list(range(self.target_from, len(self.text)))

    @property
    def text(self) -> str:
        return self.prompt + self.answer + self.more + "\n"


def encode(text: str) -> List[int]:
    return [STOI.get(c, 0) for c in text]


def decode(ids: Iterable[int]) -> str:
    return "".join(VOCAB[i] if 0 < i < len(VOCAB) else "" for i in ids)


def _interleave(rng: random.Random, stmts: List[str]) -> List[str]:
    """A uniformly random merge of the chains in ``stmts`` (each a run "x=d", "y=x", ...
    as make_chain lists them) that keeps every chain's own order."""
    chains: List[List[str]] = []
    for st in stmts:
        if st[2].isdigit():
            chains.append([])
        chains[-1].append(st)
    out: List[str] = []
    while chains:
        r = rng.randrange(sum(len(c) for c in chains))
        for c in chains:
            if r < len(c):
                out.append(c.pop(0))
                break
            r -= len(c)
        chains = [c for c in chains if c]
    return out


def _resolve(env: Dict[str, str], v: str) -> tuple:
    """(digit, hops): follows the assignments from variable v to its digit."""
    n = 1
    while not env[v].isdigit():
        v, n = env[v], n + 1
    return env[v], n


def _statement_values(stmts: List[str]) -> List[tuple]:
    """(index of the right-hand symbol in the prompt, resolved digit, hops) per statement."""
    env = dict(st.split("=") for st in stmts)
    out, pos = [], 0
    for st in stmts:
        out.append((pos + 2, *_resolve(env, st[0])))
        pos += len(st) + 1
    return out


def make_chain(rng: random.Random, hops: int, extra: Optional[int] = None,
               queries: int = 1, max_statements: int = 0, ordered: Optional[bool] = None) -> Example:
    """A prompt like "a=3;b=a;c=b;d=c;?d" with the answer "3": the query "?d" comes last so
    that the answer is predicted at the queried variable itself (with "d?" the model must
    first fetch the variable from the previous position, and a small model trained for
    minutes sits on a plateau before it learns that). hops >= 1: the queried variable
    reaches its digit through ``hops`` assignments.
    ``extra`` distractor statements (default: 1..MAX_STATEMENTS - hops, at least 1) form
    other chains of 1..hops assignments, each ending in a different digit (and no deeper
    than the queried one, so extra queries stay within the curriculum), so guessing a digit
    seen in the prompt or following the wrong chain fails. The same length rule holds for
    training and evaluation, so prompts of every hop count span the trained positions.
    ``ordered`` (default ``ORDERED``): each chain in resolution order, chains interleaved;
    otherwise every statement shuffled. ``statements`` of the result lists, per statement,
    (index of its right-hand symbol, the digit its variable resolves to, hops)."""
    if extra is None:
        extra = rng.randint(1, max(1, (max_statements or MAX_STATEMENTS) - hops))
    names = rng.sample(LETTERS, hops + extra)
    digits = rng.sample(DIGITS, 1 + min(extra, 9))
    digit = digits[0]
    chain = names[:hops]
    stmts = [f"{chain[0]}={digit}"] + [f"{chain[i]}={chain[i - 1]}" for i in range(1, hops)]
    used, k = hops, 1
    while used < hops + extra:
        n = min(rng.randint(1, hops), hops + extra - used)
        other = names[used: used + n]
        used += n
        d2 = digits[min(k, len(digits) - 1)]
        k += 1
        stmts += [f"{other[0]}={d2}"] + [f"{other[i]}={other[i - 1]}" for i in range(1, n)]
    stmts = _interleave(rng, stmts) if (ORDERED if ordered is None else ordered) else rng.sample(stmts, len(stmts))
    ex = Example("chain", ";".join(stmts) + f";?{chain[-1]}", digit, hops)
    ex.statements = _statement_values(stmts)
    if queries > 1:
        # Further queries about random variables of the prompt (any chain, any depth);
        # only their answer digits are trained.
        env = dict(st.split("=") for st in stmts)
        more, targets, target_hops = "", [len(ex.prompt)], [hops]
        for v in rng.sample(sorted(env), min(queries - 1, len(env))):
            more += f";?{v}"
            targets.append(len(ex.prompt) + 1 + len(more))
            digit, n = _resolve(env, v)
            more += digit
            target_hops.append(n)
        ex.more, ex.targets, ex.target_hops = more, targets, target_hops
    return ex


def make_add(rng: random.Random, digits: int) -> Example:
    """Operands of 1..``digits`` digits, the longer one exactly ``digits`` long. Carries
    are over-represented (sum digits >= 9 half the time) since they are the hard part."""
    def number(n):
        if n == 1:
            return rng.randint(0, 9)
        return rng.randint(10 ** (n - 1), 10 ** n - 1)
    a = number(digits)
    b = number(rng.randint(1, digits))
    if rng.random() < 0.5:
        # Push towards carry chains: make b's digits complement a's.
        sa = str(a).zfill(digits)
        sb = "".join(str(rng.randint(max(0, 9 - int(c)), 9)) for c in sa[-len(str(b)):])
        b = int(sb)
    if rng.random() < 0.5:
        a, b = b, a
    return Example("add", f"{a}+{b}=", str(a + b), max(len(str(a)), len(str(b))))


_SUBJECTS = ["the cat", "a dog", "the bird", "my friend", "the old man", "a child", "the loop",
             "the model", "she", "he"]
_VERBS = ["sees", "likes", "finds", "reads", "makes", "takes", "wants", "keeps"]
_OBJECTS = ["the ball", "a book", "the red box", "some bread", "the door", "a small key",
            "the answer", "a long word"]
_ENDINGS = [".", "!", ", then it rests.", " again.", " at noon.", " - slowly."]


def make_text(rng: random.Random) -> Example:
    s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_ENDINGS)}"
    return Example("text", "", s, 0, target_from=0)


def sample_train(rng: random.Random, max_hops: int = TRAIN_MAX_HOPS,
                 max_digits: int = TRAIN_MAX_DIGITS, mix=TRAIN_MIX, queries: int = 1,
                 max_statements: int = 0) -> Example:
    """One training example: chain / addition / text with the given probabilities and
    uniformly many hops (digits) up to the training limits."""
    r = rng.random()
    if r < mix[0]:
        return make_chain(rng, rng.randint(1, max_hops), queries=queries,
                          max_statements=max_statements)
    if r < mix[0] + mix[1]:
        return make_add(rng, rng.randint(1, max_digits))
    return make_text(rng)


def eval_set(seed: int, per_level: int = 8, max_hops: int = EVAL_MAX_HOPS,
             max_digits: int = EVAL_MAX_DIGITS) -> List[Example]:
    """Held-out prompts for every difficulty up to the evaluation limits (beyond the
    training range on purpose). A seed stream disjoint from training (seed offset)."""
    rng = random.Random(seed * 1_000_003 + 17)
    out = []
    for h in range(1, max_hops + 1):
        out += [make_chain(rng, h) for _ in range(per_level)]
    for d in range(1, max_digits + 1):
        out += [make_add(rng, d) for _ in range(per_level)]
    return out


def tokenizer_json() -> dict:
    return {"type": "char", "version": 1, "vocab": list(VOCAB), "unk": 0}


def _write_text(path: str, text: str) -> None:
    """Atomic like the model files, so a folder is never seen half-written."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_tokenizer(path: str) -> None:
    """docs/tokenizer.md's character tokenizer."""
    _write_text(path, json.dumps(tokenizer_json(), ensure_ascii=False) + "\n")


def write_prompts(path: str, examples: List[Example]) -> None:
    """One JSON object per line: {"prompt", "answer", "hops", "task"}."""
    lines = [json.dumps({"prompt": e.prompt, "answer": e.answer, "hops": e.hops, "task": e.task},
                        ensure_ascii=False) for e in examples]
    _write_text(path, "\n".join(lines) + "\n")
