#!/usr/bin/python3
"""A small, independent byte-level BPE tokenizer: the expected ids of the engine's tokenizer tests.

    bpe_reference.py check            published vectors, then every case of vectors.json again
    bpe_reference.py make             write tests/data/tokenizers/vectors.json
    bpe_reference.py hf-o200k OUT     write o200k_base.tiktoken as a Hugging Face tokenizer.json
                                      the way gpt-oss ships it (Split(Regex) + ByteLevel, merges
                                      as pairs, special tokens past the base vocabulary)
    bpe_reference.py encode FILE TEXT ids of TEXT with FILE (tokenizer.json or *.tiktoken)

It shares no code with core/src/bpe.cpp: Python's `regex` module (Debian's python3-regex)
instead of PCRE2, and the plain quadratic merge loop of the BPE papers instead of the
engine's queue. Both follow the same rule, the one Hugging Face `tokenizers` and tiktoken
apply: merge the adjacent pair with the lowest rank, the leftmost of equal ranks, until no
pair has a rank. Its own output is checked against published ids first (the `check`
command), so a case in vectors.json is not just the engine agreeing with itself.
"""

import base64
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "tokenizers")

# The pre-tokenizer patterns: GPT-2's (Hugging Face ByteLevel with use_regex, tiktoken r50k/p50k),
# cl100k_base's and o200k_base's (tiktoken; gpt-oss's tokenizer.json carries o200k's in a Split).
PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "cl100k": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "o200k": "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
}

# o200k_base's special tokens in tiktoken, and the ones gpt-oss's tokenizer.json adds (a sample:
# the real file reserves every id from 199998 to 201087).
O200K_SPECIALS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
GPT_OSS_SPECIALS = {
    "<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|reserved_200000|>": 200000,
    "<|return|>": 200002, "<|constrain|>": 200003, "<|channel|>": 200005, "<|start|>": 200006,
    "<|end|>": 200007, "<|message|>": 200008, "<|call|>": 200012, "<|endofprompt|>": 200018,
}


def byte_alphabet():
    """GPT-2's printable stand-in for each byte (byte -> one character)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHAR = byte_alphabet()
CHAR_BYTE = {c: b for b, c in BYTE_CHAR.items()}


def from_byte_chars(text):
    return bytes(CHAR_BYTE[c] for c in text) if all(c in CHAR_BYTE for c in text) else text.encode()


class Bpe:
    """ranks: token bytes -> id; merges: (left bytes, right bytes) -> rank, or None for a
    tiktoken file, whose pair rank is the id of the joined bytes."""

    def __init__(self, vocab, merges, pattern, specials, ignore_merges, prefix_space=False):
        import regex  # Debian's python3-regex: Unicode classes, which `re` lacks

        self.vocab = vocab
        self.merges = merges
        self.pattern = regex.compile(pattern) if pattern else None
        self.specials = specials
        self.special_re = (regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))
                           if specials else None)
        self.ignore_merges = ignore_merges
        self.prefix_space = prefix_space

    def rank(self, left, right):
        if self.merges is None:
            return self.vocab.get(left + right)
        return self.merges.get((left, right))

    def bpe(self, piece):
        if self.ignore_merges and piece in self.vocab:
            return [self.vocab[piece]]
        parts = [bytes([b]) for b in piece]
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.rank(parts[i], parts[i + 1])
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [self.vocab[p] for p in parts]

    def pieces(self, chunk):
        if self.prefix_space and not chunk.startswith(" "):
            chunk = " " + chunk
        if not self.pattern:
            return [chunk]
        out, at = [], 0
        for m in self.pattern.finditer(chunk):
            if m.start() > at:
                out.append(chunk[at:m.start()])
            out.append(m.group())
            at = m.end()
        if at < len(chunk):
            out.append(chunk[at:])
        return out

    def encode(self, text):
        ids, at = [], 0
        chunks = []
        if self.special_re:
            for m in self.special_re.finditer(text):
                chunks.append((text[at:m.start()], None))
                chunks.append((None, self.specials[m.group()]))
                at = m.end()
        chunks.append((text[at:], None))
        for chunk, special in chunks:
            if special is not None:
                ids.append(special)
                continue
            for p in self.pieces(chunk):
                if p:
                    ids.extend(self.bpe(p.encode("utf-8")))
        return ids

    def decode(self, ids):
        back = {i: b for b, i in self.vocab.items()}
        back.update({i: s.encode() for s, i in self.specials.items()})
        return b"".join(back[i] for i in ids).decode("utf-8", errors="replace")


def tiktoken_ranks(path):
    vocab = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                vocab[base64.b64decode(token)] = int(rank)
    return vocab


def load_tiktoken(path):
    vocab = tiktoken_ranks(path)
    name = os.path.basename(path)
    kind = "cl100k" if "cl100k" in name else "gpt2" if ("r50k" in name or "p50k" in name or "gpt2" in name) else "o200k"
    specials = {"o200k": O200K_SPECIALS, "gpt2": {"<|endoftext|>": 50256},
                "cl100k": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                           "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}}[kind]
    return Bpe(vocab, None, PATTERNS[kind], specials, ignore_merges=True)


def load_hf(path):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    model = j["model"]
    assert model["type"] == "BPE", model["type"]
    vocab = {from_byte_chars(t): i for t, i in model["vocab"].items()}
    merges = {}
    for rank, m in enumerate(model["merges"]):
        left, right = m.split(" ") if isinstance(m, str) else m
        merges[(from_byte_chars(left), from_byte_chars(right))] = rank
    pre = j["pre_tokenizer"]
    steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
    pattern, prefix_space = None, False
    for step in steps:
        if step["type"] == "Split":
            assert step["behavior"] == "Isolated" and not step.get("invert")
            pattern = step["pattern"]["Regex"]
        elif step["type"] == "ByteLevel":
            prefix_space = step.get("add_prefix_space", False)
            if step.get("use_regex", True):
                pattern = PATTERNS["gpt2"]
    specials = {t["content"]: t["id"] for t in j.get("added_tokens", [])}
    return Bpe(vocab, merges, pattern, specials, model.get("ignore_merges", False), prefix_space)


def load(path):
    return load_tiktoken(path) if path.endswith(".tiktoken") else load_hf(path)


def write_hf_o200k(out):  # needs no `regex`: CTest makes the file for the core tests
    """o200k_base.tiktoken as the Hugging Face tokenizer.json gpt-oss ships: vocab in the byte
    alphabet, merges as [left, right] pairs ordered by the rank of what they make (each token's
    merge is the last step of BPE on its own bytes with only lower ranks), the o200k pattern as
    a Split, ByteLevel without its own regex, special tokens past the base vocabulary."""
    ranks = tiktoken_ranks(os.path.join(DATA, "o200k_base.tiktoken"))
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        merges.append(["".join(BYTE_CHAR[b] for b in p) for p in parts])
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for s, i in sorted(GPT_OSS_SPECIALS.items(), key=lambda kv: kv[1])],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PATTERNS["o200k"]}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {"".join(BYTE_CHAR[b] for b in t): i for t, i in ranks.items()},
                  "merges": merges},
    }
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    os.replace(tmp, out)


# Published ids: GPT-2's from its model card and the tokenizers docs, o200k's from tiktoken's.
PUBLISHED = {
    "gpt2": [("Hello world", [15496, 995])],
    "o200k": [("Hello world", [13225, 2375]), ("Hello, world!", [13225, 11, 2375, 0])],
}


def cases():
    """A few hundred strings: words, contractions, whitespace runs, digits, scripts, emoji,
    code, special tokens in text, and random mixtures of them (fixed seed)."""
    base = [
        "Hello world", "Hello, world!", "hello", " hello", "  hello", "hello ", "HELLO", "HeLLo WoRLD",
        "I'm", "you're", "they've", "she'll", "he'd", "it's", "don't", "DON'T", "I'M HERE", "it'S", "o'clock",
        "rock 'n' roll", "'s", "'", "''", "the dog's bone", "the dogs' bones",
        "a  b", "a   b", "a\tb", "a\nb", "a\n\nb", "a\r\nb", "\n", "\n\n\n", " \n ", "   ", "\t\t", "  \n  x",
        "trailing   ", "   leading", "x \n\n y", "line one\nline two\n", "tab\tseparated\tvalues",
        "0", "12", "123", "1234", "12345678", "3.14159", "1,000,000", "-42", "+7", "1e10", "0x1F", "2026-12-05",
        "v1.2.3", "99 bottles", "abc123def", "123abc", "½ ¾ ²", "٣٤٥", "१२३",
        "naïve café", "résumé", "Ελληνικά γράμματα", "русский текст", "Україна", "中文字符测试", "日本語のテキスト",
        "カタカナ", "한국어 문장", "العربية لغة", "עברית", "हिन्दी भाषा", "ภาษาไทย", "Tiếng Việt", "ქართული",
        "e\u0301", "cafe\u0301", "\u00e9", "Å\u030a", "ﬁne", "ß", "ẞ", "İstanbul", "ǅemal",
        "👍", "👍🏽", "👨‍👩‍👧", "🎉🎉🎉", "🇩🇪", "❤️", "a👍b", "emoji 😀 in text", "✓ done", "→ ← ↑",
        "def f(x):\n    return x**2\n", "if (a && b) { c++; }", "x = [1, 2, 3]", "#include <vector>",
        "https://example.org/a/b?c=d", "a/b/c", "//comment", "C:\\path\\to", "foo@bar.com", "$100", "50%",
        "...", "!!!", "?!", "—", "–", "«quoted»", "\"double\"", "(parens)", "[brackets]", "{braces}",
        "CamelCaseString", "snake_case_name", "kebab-case-name", "iPhone", "McDonald's", "HTTPServer", "ABCdef",
        "A", "a", " ", "z", "Z", "_", "-", "=", "==", "===", "<", ">", "<>",
        "\u200b", "zero\u200bwidth", "non\u00a0breaking", "\u3000ideographic space", "soft\u00adhyphen",
        "\x01control\x02", "\x7f", "bell\x07",
        "The quick brown fox jumps over the lazy dog.",
        "Recurrent depth lets a model think longer on hard tokens.",
        "Mixture-of-experts routing: top-2 of 64 experts per token.",
    ]
    rng = random.Random(20261205)
    mixed = []
    for _ in range(200):
        k = rng.randint(2, 4)
        sep = rng.choice(["", " ", "  ", "\n", "\t", ", ", " \n"])
        mixed.append(sep.join(rng.choice(base) for _ in range(k)))
    return base + mixed


def special_cases(specials):
    names = sorted(specials)
    return [f"{names[0]}", f"a{names[0]}b", f"Hello{names[-1]} world", f" {names[0]} ", f"{names[0]}{names[-1]}",
            f"<|not special|>", f"{names[0][:-1]}"]


def make_vectors():
    gpt2 = load_hf(os.path.join(DATA, "gpt2_tokenizer.json"))
    o200k = load_tiktoken(os.path.join(DATA, "o200k_base.tiktoken"))
    out = {"_about": "Expected ids from tools/bpe_reference.py (`make`); checked by `check` and core tests."}
    out["gpt2"] = [[t, gpt2.encode(t)] for t in cases() + special_cases(gpt2.specials)]
    out["o200k"] = [[t, o200k.encode(t)] for t in cases() + special_cases(o200k.specials)]
    tmp = os.path.join(DATA, "vectors.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        # one case per line, so a change shows as the cases it changes
        f.write("{\n")
        f.write(f'"_about": {json.dumps(out["_about"])},\n')
        for name in ("gpt2", "o200k"):
            rows = ",\n".join(json.dumps(case, ensure_ascii=False) for case in out[name])
            f.write(f'"{name}": [\n{rows}\n]' + (",\n" if name == "gpt2" else "\n"))
        f.write("}\n")
    os.replace(tmp, os.path.join(DATA, "vectors.json"))
    print(f"gpt2 {len(out['gpt2'])} cases, o200k {len(out['o200k'])} cases")


def check(hf_o200k=None):
    failures = 0
    loaded = {"gpt2": load_hf(os.path.join(DATA, "gpt2_tokenizer.json")),
              "o200k": load_tiktoken(os.path.join(DATA, "o200k_base.tiktoken"))}
    for name, pairs in PUBLISHED.items():
        for text, ids in pairs:
            got = loaded[name].encode(text)
            if got != ids:
                print(f"FAIL published {name} {text!r}: {got} != {ids}")
                failures += 1
    with open(os.path.join(DATA, "vectors.json"), encoding="utf-8") as f:
        vectors = json.load(f)
    if hf_o200k:
        loaded["o200k_hf"] = load_hf(hf_o200k)
        vectors["o200k_hf"] = vectors["o200k"]
    count = 0
    for name, tok in loaded.items():
        for text, ids in vectors[name]:
            count += 1
            got = tok.encode(text)
            if got != ids:
                print(f"FAIL {name} {text!r}: {got} != {ids}")
                failures += 1
            elif tok.decode(ids) != text:
                print(f"FAIL decode {name} {text!r}: {tok.decode(ids)!r}")
                failures += 1
    print(f"{count} cases, {failures} failures")
    return failures == 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "make":
        make_vectors()
        return 0
    if len(argv) >= 2 and argv[1] == "check":
        return 0 if check(argv[2] if len(argv) > 2 else None) else 1
    if len(argv) == 3 and argv[1] == "hf-o200k":
        write_hf_o200k(argv[2])
        return 0
    if len(argv) == 4 and argv[1] == "encode":
        print(load(argv[2]).encode(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
