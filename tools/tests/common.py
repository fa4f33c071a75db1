"""Shared helpers of the Python tool tests: where the golden cases live and how to compare.

The folders come from the environment (CTest sets MYTHOS_GOLDEN_DIR and
MYTHOS_TEST_DATA_DIR) with the repository layout as the fallback, so the tests also run
straight from a checkout with ``python3 -m unittest discover -s tools/tests``.
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
REPO = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import torch  # noqa: E402

import mythos_torch as mt  # noqa: E402

# One thread: the golden numbers were made single-threaded, and CTest may run several
# test programs at once on a small machine.
torch.set_num_threads(1)


def golden_dir():
    return os.environ.get("MYTHOS_GOLDEN_DIR") or os.path.join(REPO, "..", "shared", "golden")


def test_data_dir():
    return os.environ.get("MYTHOS_TEST_DATA_DIR") or os.path.join(REPO, "tests", "data")


def golden_cases():
    """[(name, folder)] of every golden case in both places, skipping byte-identical
    duplicates (tests/data/tiny_* are copies of the shared ones) to keep the run short."""
    found = []
    for root, pattern in ((golden_dir(), ""), (test_data_dir(), "tiny_")):
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if name.startswith(pattern) and os.path.isfile(os.path.join(folder, "golden.json")):
                found.append((name, folder))
    seen, cases = set(), []
    for name, folder in found:
        h = hashlib.sha256()
        for f in ("golden.json", "model.safetensors"):
            with open(os.path.join(folder, f), "rb") as fh:
                h.update(fh.read())
        if h.digest() not in seen:
            seen.add(h.digest())
            cases.append((name, folder))
    return cases


def tiny_case(name="tiny_mla"):
    for root in (test_data_dir(), golden_dir()):
        folder = os.path.join(root, name)
        if os.path.isfile(os.path.join(folder, "golden.json")):
            return folder
    return None


class Golden:
    """One case: its model, golden.json and the golden tensors."""

    def __init__(self, folder):
        self.folder = folder
        with open(os.path.join(folder, "golden.json")) as f:
            self.json = json.load(f)
        self.tensors, _ = mt.read_safetensors(os.path.join(folder, self.json["tensor_file"]))
        self.model = mt.load_model_folder(folder)

    def ids(self, name):
        return torch.tensor(self.json["inputs"][name], dtype=torch.long)


def max_rel_err(got, ref):
    """max|got - ref| / max|ref|, the measure the tolerance below is stated in."""
    return float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-30))


def close(got, ref, rel=1e-4, abs_=1e-5):
    """The golden README's per-tensor tolerance: |got-ref| <= rel*max|ref| + abs."""
    got = got.detach().float()
    return bool(((got - ref).abs() <= rel * ref.abs().max() + abs_).all())
