#!/usr/bin/python3
"""Convert a PyTorch OpenMythos checkpoint (.pt) into the folder Mythos Explorer opens.

    export_checkpoint.py --state-dict step_0012000.pt --out DIR [--dtype f32|bf16] [--tokenizer T]
    export_checkpoint.py --state-dict model.pt --config cfg.json --out DIR
    export_checkpoint.py --state-dict model.pt --config-fields dim=256,n_heads=8,... --out DIR

A checkpoint of the reference trainer (``save_checkpoint`` in kyegomez/OpenMythos'
training script: a dict with ``step``, ``model``, ``optimizer``, a pickled ``cfg``
MythosConfig and ``vocab_size``) needs no option but --out: the config comes from its
``cfg``. --config/--config-fields win over it. Other accepted wrappings: a bare
state_dict, {"state_dict": sd}, {"model_state_dict": sd}, a whole pickled nn.Module;
DataParallel/FSDP "module." and torch.compile "_orig_mod." prefixes are removed.

Why a converter instead of reading .pt in the app: .pt files are pickles (arbitrary code
on load, Python-only), while the app reads safetensors, which is plain data.

Reading without trusting the pickle. Nothing the checkpoint names is imported: neither
open_mythos nor transformers needs to be installed. A restricted unpickler allows only
what tensors are built from (torch's tensor-rebuild functions, storage types and dtypes,
collections.OrderedDict, a few builtins); every other class or function the pickle
names (the reference's open_mythos.main.MythosConfig, nn.Module classes, anything
hostile such as os.system) becomes an inert stand-in that records its arguments and
state as a plain dict and runs no code. torch.load is always called with
``weights_only=False`` spelled out (torch >= 2.6 defaults to True and refuses the
pickled cfg) and with that restricted ``pickle_module``. torch 1.13's torch.load drops
the pickle_module when weights_only is False, so there the unpickler is handed to its
zip and legacy readers directly (torch_honours_pickle_module finds out by trying).

Memory: the optimizer state is never materialised. An AdamW checkpoint holds the
weights three times over (weights, exp_avg, exp_avg_sq: about 42 GB for a 3B model in
fp32), so loading it whole would need that much RAM for a 12 GB model. Where torch.load
has ``mmap=True`` (torch >= 2.1) the file is mapped instead of read: a mapped tensor
costs no memory until its pages are touched, and the optimizer's pages never are. With
an older torch (Debian 12 ships 1.13) this tool reads the zip archive itself: the pickle
is unpickled with storages left as references (key, dtype, size), and only the storages
the model's tensors use are read from the archive, one at a time, converted and
written. Either way the peak is about one tensor plus its converted copy, whatever the
optimizer holds. (The pre-1.6 non-zip format, ``_use_new_zipfile_serialization=False``,
has no index, so torch.load reads it whole.)

Before anything is written every key and shape is checked against the config, so a
wrong config is reported as such (counts and the first few names, one short line), not
as a broken model later. The tied head.weight and the complex RoPE buffers are
dropped, each file is written atomically, the tokenizer is copied (tokenizer.json or a
.tiktoken file from beside the checkpoint or from --tokenizer), and an output folder
the tool created is removed again when it fails or is stopped (SIGTERM, Ctrl+C).

Output for programs (the window's File > Import PyTorch Checkpoint runs this tool):
stdout carries lines ``progress DONE TOTAL TEXT`` (DONE and TOTAL integers, bytes of
the output while writing; TOTAL 0 while the amount of work is not known) and a last
``wrote DIR: ...`` line; errors are single lines ``export_checkpoint: error: ...`` on
stderr. Exit status: 0 done, 1 bad input, 2 bad usage, 3 PyTorch missing, 130 stopped.
"""

import argparse
import collections
import dataclasses
import inspect
import json
import os
import pickle
import shutil
import signal
import struct
import sys
import threading
import types
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

EXIT_NO_TORCH = 3
EXIT_STOPPED = 130

try:
    import torch  # noqa: E402
except ImportError as _e:  # the one error a first-time user meets: say what to install
    print(f"export_checkpoint: error: PyTorch is not installed for {sys.executable} ({_e}); "
          "install the Debian package python3-torch and run this tool with /usr/bin/python3",
          file=sys.stderr)
    sys.exit(EXIT_NO_TORCH)

import mythos_torch as mt  # noqa: E402

PREFIXES = ("module.", "_orig_mod.")
SHOWN = 4  # names listed per kind of mismatch; the rest are counted
TOKENIZER_HINT = "the reference trainer uses openai/gpt-oss-20b's tokenizer.json"


class ExportError(Exception):
    """A problem with the user's inputs, reported as one readable line."""


class Stopped(BaseException):
    """SIGTERM or Ctrl+C: unwinds like KeyboardInterrupt so temporaries are removed."""


def _few(names, shown=SHOWN, sep=", ") -> str:
    """'a, b, c, d and 1,230 more': mismatch lists stay one short line."""
    names = list(names)
    head = sep.join(names[:shown])
    rest = len(names) - shown
    return head + (f" and {rest:,} more" if rest > 0 else "")


# ---------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------


class Stub:
    """Stand-in for a class or function the pickle names but that is not allowed (the
    reference's MythosConfig, nn.Module classes, anything else). Creating, calling and
    restoring one only records: ``args`` (constructor or call arguments), ``state`` (what
    BUILD or __setstate__ gave, as a dict), ``items`` (appended) and ``entries`` (set)."""

    stub_module = ""
    stub_name = ""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "state", {})
        object.__setattr__(obj, "items", [])
        object.__setattr__(obj, "entries", {})
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        # (dict, slots) from objects with __slots__, a dict from plain ones.
        if isinstance(state, tuple) and len(state) == 2 and all(
                s is None or isinstance(s, dict) for s in state):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if isinstance(state, dict):
            self.state.update(state)
        else:
            self.state["__state__"] = state

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __setitem__(self, key, value):
        self.entries[key] = value

    def __reduce__(self):  # never pickled back out as something importable
        raise pickle.PicklingError(f"stand-in for {self.qualname()} cannot be pickled")

    @classmethod
    def qualname(cls) -> str:
        return f"{cls.stub_module}.{cls.stub_name}"

    def __repr__(self):
        return f"<stand-in for {self.qualname()}>"


_stub_classes = {}


def stub_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _stub_classes:
        _stub_classes[key] = type(str(name), (Stub,), {"stub_module": module, "stub_name": name,
                                                       "__module__": __name__})
    return _stub_classes[key]


def _reconstructor(cls, base, state=None):
    """copyreg._reconstructor (protocol 0/1 objects): only stand-ins are built."""
    if isinstance(cls, type) and issubclass(cls, Stub):
        return cls()
    raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")


def _latin1_encode(text, encoding="latin1"):
    """_codecs.encode as protocol 2 uses it for bytes objects, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode with unexpected arguments")
    return text.encode("latin1")


def _rebuild_from_type(func, new_type, args, state=None):
    """torch._tensor._rebuild_from_type_v2 without the subclass and its state."""
    return func(*args)


def _rebuild_tensor_torch(storage, storage_offset, size, stride, requires_grad=False,
                          backward_hooks=None, *metadata):
    """torch's own rebuild (torch checks the view against the storage) without the
    pickled hooks and metadata."""
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False,
                                           collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data  # a Parameter's data is all the export needs


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64, "IntStorage": torch.int32, "ShortStorage": torch.int16,
    "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}

_BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex, "slice": slice,
             "bytearray": bytearray, "object": object}


class StorageKind:
    """What a pickled storage type (torch.FloatStorage, ...) means to the lazy reader."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES.get(name)


class RestrictedUnpickler(pickle.Unpickler):
    """find_class resolves only the allowlist; everything else becomes a Stub. Used by
    torch.load (as its pickle_module's Unpickler) and by the lazy reader below."""

    lazy = False  # the lazy reader's subclass rebuilds tensors as LazyTensor

    def find_class(self, module, name):
        if module == "torch._utils":
            if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
                return _rebuild_lazy_tensor if self.lazy else _rebuild_tensor_torch
            if name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
                return _rebuild_parameter
        if (module, name) in (("torch._tensor", "_rebuild_from_type_v2"),
                              ("torch.tensor", "_rebuild_from_type_v2")):
            return _rebuild_from_type
        if module == "torch":
            if name in _STORAGE_DTYPES:
                return StorageKind(name) if self.lazy else getattr(torch, name)
            value = getattr(torch, name, None) if not name.startswith("_") else None
            if isinstance(value, torch.dtype) or value is torch.Size or value is torch.device:
                return value
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "copyreg" and name == "_reconstructor":
            return _reconstructor
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        return stub_class(module, name)


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


def _restricted_loads(data, **kwargs):
    import io
    return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


# torch.load's pickle_module: torch subclasses .Unpickler (and uses .load for the
# legacy format's header), so the allowlist applies to every global in the file.
RESTRICTED_PICKLE = types.ModuleType("mythos_restricted_pickle")
RESTRICTED_PICKLE.Unpickler = RestrictedUnpickler
RESTRICTED_PICKLE.load = _restricted_load
RESTRICTED_PICKLE.loads = _restricted_loads
RESTRICTED_PICKLE.UnpicklingError = pickle.UnpicklingError
RESTRICTED_PICKLE.__version__ = "1"


# ---------------------------------------------------------------------------
# Lazy reading of torch's zip format (torch without mmap)
# ---------------------------------------------------------------------------


class LazyStorage:
    __slots__ = ("archive", "key", "kind", "numel")

    def __init__(self, archive, key, kind, numel):
        self.archive, self.key, self.kind, self.numel = archive, key, kind, numel


class LazyTensor:
    """A tensor of the checkpoint that has not been read: shape and dtype are known, the
    bytes are read from the archive by load()."""

    def __init__(self, storage: LazyStorage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.shape = torch.Size(tuple(int(s) for s in size))
        self.stride_ = tuple(int(s) for s in stride)
        if storage.kind.dtype is None:
            self.dtype = None
        else:
            self.dtype = storage.kind.dtype

    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def same_view(self, other) -> bool:
        return (isinstance(other, LazyTensor) and other.storage.archive is self.storage.archive
                and other.storage.key == self.storage.key and other.offset == self.offset
                and other.shape == self.shape and other.stride_ == self.stride_)

    def load(self) -> torch.Tensor:
        if self.dtype is None:
            raise ExportError(f"storage {self.storage.key} has an unsupported type "
                              f"{self.storage.kind.name}")
        flat = self.storage.archive.read_storage(self.storage)
        if self.numel() == 0:
            return torch.empty(self.shape, dtype=self.dtype)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride_))
        if self.offset < 0 or min(self.stride_, default=0) < 0 or last >= flat.numel():
            raise ExportError(f"storage {self.storage.key}: a tensor of shape {list(self.shape)} "
                              f"at offset {self.offset} lies outside its {flat.numel()} elements")
        return torch.as_strided(flat, self.shape, self.stride_, self.offset)


def _rebuild_lazy_tensor(storage, storage_offset, size, stride, requires_grad=False,
                         backward_hooks=None, *metadata):
    if not isinstance(storage, LazyStorage):
        raise pickle.UnpicklingError("a tensor without a storage record")
    return LazyTensor(storage, storage_offset, size, stride)


class ZipCheckpoint:
    """torch.save's zip archive read by hand: ``<archive>/data.pkl`` unpickled with
    storages as LazyStorage references, ``<archive>/data/<key>`` read only when a
    tensor is loaded. ``storages_read`` lists the keys read (the tests check that no
    optimizer storage is ever among them)."""

    def __init__(self, path: str):
        self.path = path
        self.file = open(path, "rb")
        try:
            self.zip = zipfile.ZipFile(self.file)
            pickles = [n for n in self.zip.namelist()
                       if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ExportError(f"{path}: a zip file but not a torch.save checkpoint "
                                  "(no <archive>/data.pkl)")
            self.prefix = pickles[0][:-len("data.pkl")]
            if self.prefix + "constants.pkl" in self.zip.namelist():
                raise ExportError(f"{path}: a TorchScript archive, not a torch.save checkpoint")
            order = self.prefix + "byteorder"
            if order in self.zip.namelist() and self.zip.read(order).strip() != b"little":
                raise ExportError(f"{path}: saved on a big-endian machine, which this tool "
                                  "does not convert")
        except BaseException:
            self.file.close()
            raise
        self.storages_read = []
        self._cache = (None, None)

    def close(self):
        self.zip.close()
        self.file.close()

    def load(self):
        archive = self

        class LazyUnpickler(RestrictedUnpickler):
            lazy = True

            def persistent_load(self, saved_id):
                if not (isinstance(saved_id, tuple) and len(saved_id) >= 5
                        and saved_id[0] in ("storage", b"storage")):
                    raise pickle.UnpicklingError(f"unknown persistent id {saved_id!r:.80}")
                kind, key, numel = saved_id[1], saved_id[2], saved_id[4]
                if isinstance(key, bytes):
                    key = key.decode("ascii", "replace")
                if not isinstance(kind, StorageKind):
                    kind = StorageKind(getattr(kind, "stub_name", str(kind)))
                if not isinstance(numel, int) or numel < 0:
                    raise pickle.UnpicklingError(f"storage {key}: bad size {numel!r}")
                return LazyStorage(archive, str(key), kind, numel)

        import io
        data = self.zip.read(self.prefix + "data.pkl")
        return LazyUnpickler(io.BytesIO(data), encoding="utf-8").load()

    def read_storage(self, storage: LazyStorage) -> torch.Tensor:
        if self._cache[0] == storage.key:
            return self._cache[1]
        dtype = storage.kind.dtype
        itemsize = torch.empty((), dtype=dtype).element_size()
        nbytes = storage.numel * itemsize
        name = f"{self.prefix}data/{storage.key}"
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise ExportError(f"{self.path}: storage record {name} is missing") from None
        if info.file_size < nbytes:
            raise ExportError(f"{self.path}: storage record {name} holds {info.file_size} bytes, "
                              f"{nbytes} expected (truncated file?)")
        buf = bytearray(nbytes)
        if info.compress_type == zipfile.ZIP_STORED:
            # torch stores records uncompressed: read them straight into the buffer.
            self.file.seek(info.header_offset)
            local = self.file.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ExportError(f"{self.path}: damaged zip entry {name}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            self.file.seek(info.header_offset + 30 + name_len + extra_len)
            view = memoryview(buf)
            done = 0
            while done < nbytes:
                n = self.file.readinto(view[done:])
                if not n:
                    raise ExportError(f"{self.path}: storage record {name} is truncated")
                done += n
        else:
            with self.zip.open(info) as r:
                view = memoryview(buf)
                done = 0
                while done < nbytes:
                    chunk = r.read(min(1 << 24, nbytes - done))
                    if not chunk:
                        raise ExportError(f"{self.path}: storage record {name} is truncated")
                    view[done:done + len(chunk)] = chunk
                    done += len(chunk)
        self.storages_read.append(storage.key)
        flat = (torch.frombuffer(buf, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype))
        self._cache = (storage.key, flat)
        return flat


def torch_has_mmap() -> bool:
    try:
        return "mmap" in inspect.signature(torch.load).parameters
    except (TypeError, ValueError):
        return False


_honours = None


def torch_honours_pickle_module() -> bool:
    """Whether torch.load(weights_only=False) uses the pickle_module it is given: torch
    1.13 replaces it by the standard pickle (fixed in 2.0), so there the restricted
    unpickler must be handed to torch's loaders directly. Found by trying, once."""
    global _honours
    if _honours is None:
        import io
        used = []

        class Probe(pickle.Unpickler):
            def __init__(self, *args, **kwargs):
                used.append(True)
                super().__init__(*args, **kwargs)

        probe = types.ModuleType("probe_pickle")
        probe.Unpickler, probe.load = Probe, lambda f, **kw: Probe(f, **kw).load()
        buf = io.BytesIO()
        torch.save({"probe": 1}, buf)
        buf.seek(0)
        torch.load(buf, map_location="cpu", weights_only=False, pickle_module=probe)
        _honours = bool(used)
    return _honours


def _torch_load(path: str, is_zip: bool):
    kwargs = {"map_location": "cpu", "weights_only": False, "pickle_module": RESTRICTED_PICKLE}
    if is_zip and torch_has_mmap():
        kwargs["mmap"] = True  # torch >= 2.1, which honours pickle_module
        return torch.load(path, **kwargs)
    if torch_honours_pickle_module():
        return torch.load(path, **kwargs)
    # torch 1.13: its own zip and legacy readers, given the restricted unpickler.
    ser = torch.serialization
    if not hasattr(ser, "_load") or not hasattr(ser, "_legacy_load"):
        raise ExportError("this torch's torch.load ignores pickle_module and has no usable "
                          "loader to give it; update torch")
    with open(path, "rb") as f:
        if is_zip:
            with ser._open_zipfile_reader(f) as z:
                return ser._load(z, "cpu", RESTRICTED_PICKLE, encoding="utf-8")
        return ser._legacy_load(f, "cpu", RESTRICTED_PICKLE, encoding="utf-8")


def load_checkpoint(path: str, loader: str = "auto"):
    """(object, reader): the unpickled checkpoint with tensors mapped (torch.load with
    mmap), lazy (ZipCheckpoint) or, for the legacy format, read. ``loader`` is "auto",
    "torch" (torch.load, with mmap when available) or "lazy" (ZipCheckpoint); the
    reader is the ZipCheckpoint (to be closed) or None."""
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such file")
    is_zip = zipfile.is_zipfile(path)
    if loader == "auto":
        loader = "torch" if (torch_has_mmap() or not is_zip) else "lazy"
    if loader == "lazy":
        if not is_zip:
            raise ExportError(f"{path}: not a zip-format torch.save checkpoint")
        reader = ZipCheckpoint(path)
        try:
            return reader.load(), reader
        except ExportError:
            reader.close()
            raise
        except Exception as e:
            reader.close()
            raise ExportError(f"{path}: cannot be unpickled ({type(e).__name__}: {e})") from None
    try:
        return _torch_load(path, is_zip), None
    except ExportError:
        raise
    except Exception as e:  # a pickle can fail in many ways; name the file
        raise ExportError(f"{path}: cannot be read by torch.load ({type(e).__name__}: "
                          f"{str(e)[:300]})") from None


# ---------------------------------------------------------------------------
# From the checkpoint's objects to a state_dict and a config
# ---------------------------------------------------------------------------


def _is_tensor(v) -> bool:
    return isinstance(v, (torch.Tensor, LazyTensor))


def _materialize(v) -> torch.Tensor:
    return v.load() if isinstance(v, LazyTensor) else v


def _as_mapping(obj):
    """A dict for dicts and for stand-ins of dict-like or plain objects."""
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, Stub):
        if obj.entries:
            return obj.entries
        if obj.state:
            return obj.state
    return None


def _module_state_dict(module, prefix="", out=None):
    """The state_dict of a pickled nn.Module (a stand-in): its _parameters and
    persistent _buffers, recursively through _modules."""
    out = collections.OrderedDict() if out is None else out
    state = module.state
    skip = state.get("_non_persistent_buffers_set") or set()
    for table in ("_parameters", "_buffers"):
        for name, value in (state.get(table) or {}).items():
            if value is not None and not (table == "_buffers" and name in skip):
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Stub):
            _module_state_dict(child, prefix + name + ".", out)
    return out


def _is_module(obj) -> bool:
    return isinstance(obj, Stub) and "_parameters" in obj.state and "_modules" in obj.state


def _config_dict(c):
    if c is None:
        return None
    if isinstance(c, dict):
        return dict(c)
    if isinstance(c, Stub):
        return dict(c.state)
    if dataclasses.is_dataclass(c):
        return dataclasses.asdict(c)
    return getattr(c, "__dict__", None)


def strip_prefixes(name: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for p in PREFIXES:
            if name.startswith(p):
                name, stripped = name[len(p):], True
    return name


def unwrap_state_dict(obj, source: str):
    """(state_dict, embedded config dict or None, facts) from what the loader gave.
    ``facts`` holds the checkpoint's step and vocab_size when it has them and the
    top-level keys that were left unread (the optimizer)."""
    facts = {}
    if _is_module(obj):  # a whole pickled model; the reference's keeps its cfg
        obj = {"model": obj, "cfg": obj.state.get("cfg")}
    top = _as_mapping(obj)
    cfg = None
    if top is not None:
        for key in ("config", "cfg"):
            if top.get(key) is not None:
                cfg = _config_dict(top[key])
        for key in ("step", "vocab_size"):
            if isinstance(top.get(key), int) and not isinstance(top.get(key), bool):
                facts[key] = top[key]
    sd = top
    if top is not None:
        for key in ("model", "state_dict", "model_state_dict"):
            if key in top and (_as_mapping(top[key]) is not None or _is_module(top[key])):
                sd = top[key]
                facts["unread"] = sorted(str(k) for k in top if k != key and
                                         not _is_tensor(top[k]) and
                                         k not in ("config", "cfg", "step", "vocab_size"))
                break
    if _is_module(sd):
        sd = _module_state_dict(sd)
    sd = _as_mapping(sd) if not isinstance(sd, dict) else sd
    if not isinstance(sd, dict) or not sd:
        raise ExportError(f"{source}: no state_dict found (expected a dict of tensors, "
                          "possibly under 'model' or 'state_dict')")
    not_tensors = [str(k) for k, v in sd.items() if not _is_tensor(v)]
    if not_tensors:
        kinds = {type(sd[k]).__name__ for k in sd if str(k) in not_tensors[:SHOWN]}
        raise ExportError(f"{source}: the state_dict holds {len(not_tensors):,} entries that are "
                          f"not tensors ({_few(not_tensors)}; {', '.join(sorted(kinds))})")
    out = collections.OrderedDict()
    for k, v in sd.items():
        name = strip_prefixes(str(k))
        if name in out:
            raise ExportError(f"{source}: key '{name}' appears twice after removing prefixes")
        out[name] = v
    return out, cfg, facts


# ---------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------


def _attn_type_of(names):
    if any(n.endswith("attn.q_down.weight") for n in names):
        return "mla"
    if any(n.endswith("attn.wq.weight") for n in names):
        return "gqa"
    return None


def _prefix_hint(missing, unexpected, known):
    """'model.' when every unexpected key is a known one behind the same prefix."""
    if not missing or not unexpected:
        return None
    prefixes = set()
    for k in unexpected:
        hit = next((k[:i + 1] for i in range(len(k)) if k[i] == "." and k[i + 1:] in known), None)
        if hit is None:
            return None
        prefixes.add(hit)
    return prefixes.pop() if len(prefixes) == 1 else None


def check_tensors(cfg: mt.MythosConfig, sd: dict, source: str, config_origin: str) -> None:
    """Raises one short ExportError naming counts and the first few keys of each kind
    of mismatch, with a hint where the cause is recognisable."""
    expected = mt.expected_shapes(cfg)
    present = {k: v for k, v in sd.items() if k not in mt.ROPE_BUFFERS}
    missing = [k for k in expected if k not in present and k != "head.weight"]
    unexpected = [k for k in present if k not in expected]
    wrong = [f"{k}: expected {list(expected[k])}, found {list(v.shape)}"
             for k, v in present.items() if k in expected and tuple(v.shape) != expected[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing):,} missing ({_few(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected):,} unexpected ({_few(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong):,} with other shapes ({_few(wrong, 3, '; ')})")
    if parts:
        hints = []
        found_attn = _attn_type_of(present)
        if found_attn and found_attn != cfg.attn_type:
            hints.append(f"the weights are attn_type={found_attn}")
        prefix = _prefix_hint(missing, unexpected, set(expected) | set(mt.ROPE_BUFFERS))
        if prefix:
            hints.append(f"every key carries the prefix '{prefix}'")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ExportError(f"{source}: its {len(present):,} tensors do not match "
                          f"{config_origin} (attn_type={cfg.attn_type}, dim={cfg.dim}, "
                          f"vocab_size={cfg.vocab_size}): " + "; ".join(parts) + hint)
    for k, v in present.items():
        if v.dtype is None or v.dtype.is_complex or not v.dtype.is_floating_point:
            raise ExportError(f"{source}: tensor '{k}' has dtype {v.dtype}; "
                              "expected floating point")
    if "head.weight" in present:
        head, embed = present["head.weight"], present["embed.weight"]
        tied = (head.same_view(embed) if isinstance(head, LazyTensor) else
                isinstance(head, torch.Tensor) and isinstance(embed, torch.Tensor) and
                head.data_ptr() == embed.data_ptr() and head.stride() == embed.stride())
        if not tied and not torch.equal(_materialize(head).float(), _materialize(embed).float()):
            raise ExportError(f"{source}: head.weight differs from embed.weight; OpenMythos ties "
                              "them, so this checkpoint is not an OpenMythos model")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _progress_printer(stream):
    def emit(done, total, text):
        print(f"progress {int(done)} {int(total)} {text}", file=stream, flush=True)
    return emit


def _bytes_of(t: torch.Tensor):
    t = t.contiguous().reshape(-1)
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same bits as int16
        t = t.view(torch.int16)
    return memoryview(t.numpy()).cast("B")


def write_safetensors(path, entries, dtype, meta, progress):
    """Writes ``entries`` [(name, tensor or LazyTensor)] as ``dtype``, reading,
    converting and writing one tensor at a time (atomically, via mythos_torch)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    st_name = {torch.float32: "F32", torch.bfloat16: "BF16"}[dtype]
    header = {"__metadata__": {str(k): str(v) for k, v in meta.items()}}
    offset = 0
    for name, v in entries:
        n = 1
        for s in v.shape:
            n *= int(s)
        header[name] = {"dtype": st_name, "shape": [int(s) for s in v.shape],
                        "data_offsets": [offset, offset + n * itemsize]}
        offset += n * itemsize
    total = offset
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def chunks():
        yield struct.pack("<Q", len(text)) + text
        done = 0
        for name, v in entries:
            progress(done, total, f"writing {name}")
            t = _materialize(v).detach().to("cpu", dtype)
            data = _bytes_of(t)
            yield data
            done += len(data)
            del t, data
        progress(total, total, "writing done")

    mt.write_atomic(path, chunks())


def find_tokenizer(checkpoint: str, explicit: str = None):
    """Files to copy: [(source, name in the model folder)], or [] when the checkpoint's
    folder holds none. An explicit --tokenizer that cannot be used is an error."""
    def from_folder(folder, required):
        if os.path.isfile(os.path.join(folder, "tokenizer.json")):
            return [(os.path.join(folder, "tokenizer.json"), "tokenizer.json")]
        tik = sorted(f for f in os.listdir(folder) if f.endswith(".tiktoken"))
        if len(tik) == 1:
            return [(os.path.join(folder, tik[0]), tik[0])]
        if len(tik) > 1:
            raise ExportError(f"{folder}: holds several .tiktoken files ({_few(tik, 3)}); "
                              "name one with --tokenizer")
        if required:
            raise ExportError(f"--tokenizer {folder}: no tokenizer.json or .tiktoken file there")
        return []

    if explicit:
        if os.path.isdir(explicit):
            return from_folder(explicit, True)
        if not os.path.isfile(explicit):
            raise ExportError(f"--tokenizer {explicit}: no such file or folder")
        if explicit.endswith(".tiktoken"):
            return [(explicit, os.path.basename(explicit))]
        if explicit.endswith(".json"):
            return [(explicit, "tokenizer.json")]
        raise ExportError(f"--tokenizer {explicit}: expected a tokenizer.json, a .tiktoken file "
                          "or a folder holding one")
    return from_folder(os.path.dirname(os.path.abspath(checkpoint)), False)


def tokenizer_size(path: str):
    """Tokens in the tokenizer's base vocabulary (added tokens not counted), or None
    when the file is not readable as a tokenizer (said by the caller)."""
    try:
        if path.endswith(".tiktoken"):
            with open(path, "rb") as f:
                return sum(1 for line in f if line.strip())
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    vocab = doc.get("vocab") if isinstance(doc, dict) else None
    if vocab is None and isinstance(doc, dict) and isinstance(doc.get("model"), dict):
        vocab = doc["model"].get("vocab")
    return len(vocab) if isinstance(vocab, (dict, list)) else None


def copy_tokenizer(files, out_dir, cfg, note):
    for src, name in files:
        dest = os.path.join(out_dir, name)
        size = tokenizer_size(src)
        if size is None:
            raise ExportError(f"{src}: not a readable tokenizer (tokenizer.json or .tiktoken)")
        if size > cfg.vocab_size:
            note(f"{src} has {size:,} tokens but the model's vocab_size is {cfg.vocab_size:,}: "
                 "ids past the vocabulary cannot be run; is it the tokenizer the model was "
                 "trained with?")
        # One tokenizer per folder: an older one of the other kind would win or clash.
        for old in os.listdir(out_dir):
            if old != name and (old == "tokenizer.json" or old.endswith(".tiktoken")):
                os.unlink(os.path.join(out_dir, old))
                note(f"removed {os.path.join(out_dir, old)} (replaced by {name})")
        if os.path.exists(dest) and os.path.samefile(src, dest):
            continue
        with open(src, "rb") as f:
            mt.write_atomic(dest, f.read())


# ---------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------


def parse_config_fields(text: str) -> dict:
    """"dim=256,attn_type=gqa" -> dict with each value typed like the dataclass field,
    so a typo such as dim=2S6 fails here and not deep inside the model."""
    fields = {f.name: f for f in dataclasses.fields(mt.MythosConfig)}
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ExportError(f"--config-fields: '{item}' is not key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in fields:
            raise ExportError(f"--config-fields: unknown field '{key}' "
                              f"(known: {', '.join(fields)})")
        kind = mt.MythosConfig.__dataclass_fields__[key].type
        try:
            if kind in (int, "int"):
                out[key] = int(value)
            elif kind in (float, "float"):
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError:
            raise ExportError(f"--config-fields: {key}={value} is not a valid {kind}") from None
    return out


def _silent(*_args):
    pass


def export(state_dict_path: str, out_dir: str, config: dict = None, dtype: str = "f32",
           tokenizer: str = None, progress=_silent, note=_silent, loader: str = "auto"):
    """Converts the checkpoint; returns (config, facts). ``progress(done, total, text)``
    and ``note(text)`` report; ``loader`` as in load_checkpoint."""
    dt = {"f32": torch.float32, "bf16": torch.bfloat16}.get(str(dtype).lower())
    if dt is None:
        raise ExportError(f"--dtype must be f32 or bf16, not {dtype}")
    name = os.path.basename(state_dict_path)
    tokenizer_files = find_tokenizer(state_dict_path, tokenizer)
    progress(0, 0, f"reading {name}")
    obj, reader = load_checkpoint(state_dict_path, loader)
    try:
        sd, embedded, facts = unwrap_state_dict(obj, state_dict_path)
        del obj  # the optimizer's references go with it, unread
        merged = dict(embedded or {})
        origin = "the checkpoint's cfg" if embedded else "the defaults"
        if "vocab_size" in facts and "vocab_size" not in merged:
            merged["vocab_size"] = facts["vocab_size"]
        if config:
            merged.update(config)
            origin = "the given config" + (" over the checkpoint's cfg" if embedded else "")
        if not merged:
            raise ExportError(f"{state_dict_path}: holds no config (cfg): give --config cfg.json "
                              "or --config-fields k=v,...")
        try:
            cfg = mt.MythosConfig.from_dict(merged, "config")
        except ValueError as e:
            raise ExportError(str(e)) from None
        if "vocab_size" in facts and facts["vocab_size"] != cfg.vocab_size and not config:
            raise ExportError(f"{state_dict_path}: its vocab_size {facts['vocab_size']:,} differs "
                              f"from its cfg's {cfg.vocab_size:,}")
        progress(0, 0, f"checking {len(sd)} tensors")
        check_tensors(cfg, sd, state_dict_path, origin)
        order = [k for k in mt.expected_shapes(cfg) if k != "head.weight"]
        entries = [(k, sd[k]) for k in order]
        meta = {"format": "pt", "source": "export_checkpoint.py",
                "tied": "embed.weight=head.weight",
                "dtype": "BF16" if dt == torch.bfloat16 else "F32", "origin": name}
        if "step" in facts:
            meta["step"] = facts["step"]
        os.makedirs(out_dir, exist_ok=True)
        write_safetensors(os.path.join(out_dir, "model.safetensors"), entries, dt, meta, progress)
    finally:
        if reader is not None:
            facts_read = list(reader.storages_read)
            reader.close()
        else:
            facts_read = None
    facts["storages_read"] = facts_read
    if tokenizer_files:
        progress(0, 0, "copying " + ", ".join(n for _, n in tokenizer_files))
        copy_tokenizer(tokenizer_files, out_dir, cfg, note)
        facts["tokenizer"] = [n for _, n in tokenizer_files]
    else:
        facts["tokenizer"] = []
        note(f"no tokenizer.json or .tiktoken file beside {state_dict_path}: put the tokenizer "
             f"the model was trained with into {out_dir} ({TOKENIZER_HINT}) or pass "
             "--tokenizer; until then text is encoded as UTF-8 bytes")
    # config.json last: a folder is openable only once everything else is in place.
    mt.write_atomic(os.path.join(out_dir, "config.json"), cfg.to_json_text().encode("utf-8"))
    return cfg, facts


def _stop(signum, frame):
    raise Stopped()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dict", required=True, help="PyTorch checkpoint (.pt)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--config", help="config JSON (dataclasses.asdict(MythosConfig)); "
                   "default: the checkpoint's cfg")
    g.add_argument("--config-fields", help="config as k=v,... (other fields keep the defaults)")
    ap.add_argument("--out", required=True, help="output model folder")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--tokenizer", help="tokenizer.json, a .tiktoken file or a folder holding "
                    "one (default: beside the checkpoint)")
    args = ap.parse_args(argv)

    def note(text):
        print(f"export_checkpoint: note: {text}", file=sys.stderr, flush=True)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _stop)
    created = not os.path.exists(args.out)
    ok = False
    try:
        config = None
        if args.config:
            try:
                with open(args.config, encoding="utf-8") as f:
                    config = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                raise ExportError(f"{args.config}: {e}") from None
            if not isinstance(config, dict):
                raise ExportError(f"{args.config}: expected a JSON object")
        elif args.config_fields is not None:
            config = parse_config_fields(args.config_fields)
        cfg, facts = export(args.state_dict, args.out, config, args.dtype, args.tokenizer,
                            _progress_printer(sys.stdout), note)
        ok = True
    except ExportError as e:
        print(f"export_checkpoint: error: {e}", file=sys.stderr)
        return 1
    except (Stopped, KeyboardInterrupt):
        print("export_checkpoint: stopped", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not ok and created and os.path.isdir(args.out):
            shutil.rmtree(args.out, ignore_errors=True)
    n = sum(1 for _ in mt.expected_shapes(cfg)) - 1
    step = f", step {facts['step']}" if "step" in facts else ""
    tok = ", tokenizer " + "+".join(facts["tokenizer"]) if facts["tokenizer"] else ", no tokenizer"
    if facts.get("unread"):
        tok += ", not read: " + ", ".join(facts["unread"])
    print(f"wrote {args.out}: {n} tensors ({args.dtype}), attn={cfg.attn_type}, dim={cfg.dim}, "
          f"vocab={cfg.vocab_size}{step}{tok}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
