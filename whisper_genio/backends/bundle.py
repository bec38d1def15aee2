"""Model bundles: one folder per deployable model, described by ``manifest.json``.

A bundle carries what the runtime cannot discover by itself: the Neuron runtime reports only
byte sizes of a DLA's tensors (no dtype, no quantization), so the manifest declares, for each
encoder artifact, its input and output names, shapes, dtypes, scale and zero point, and the
layout of the two trailing dimensions; plus the model's dimensions, the compiler and flags
used, and where the decoder weights are. The runtime checks the manifest against itself
(shapes against dims, quantization parameters against dtypes, listed files against the folder)
and then against the artifacts (the neuron backend compares the DLA's byte sizes), and refuses
a disagreement with what disagrees.

    {
      "format": "whisper_genio.bundle", "format_version": 1,
      "model": "base",
      "dims": {"n_mels": 80, "n_audio_ctx": 1500, ...},
      "checkpoint": "model.bin",                      # decoder weights (optional)
      "encoder": {
        "dla": {"file": "encoder.dla",
                "input":  {"name": "mel", "shape": [1, 80, 3000], "dtype": "float32", "layout": "nct"},
                "output": {"name": "states", "shape": [1, 1500, 512], "dtype": "int16",
                           "scale": 0.0007, "zero_point": 0, "layout": "ntc"},
                "compiler": {"tool": "ncc-tflite", "arch": "mdla3.0",
                             "flags": ["--relax-fp32", "--opt-accuracy"]}},
        "onnx": {"file": "encoder.onnx", "opset": 17, "input": {...}, "output": {...}},
        "tflite": {"file": "encoder.tflite", ...}           # what ncc-tflite compiles into the DLA
      }
    }

Every file name in a manifest is relative to the bundle folder and must stay inside it (no
absolute path, no "..", no symbolic link resolving outside it). ``write_manifest`` adds
``"sha256": {file: hex digest}`` for every file the manifest lists, and ``load_bundle`` refuses a
listed file whose digest differs (a manifest without the field loads unverified).

Quantized artifacts (``whisper-genio quantize``) add, per artifact, a ``quantization`` object:
the scheme, the per-role precisions, and the scale/zero point of every quantized I/O tensor,
including those inside a float-I/O graph (the first QUANTIZE after the input, the last DEQUANTIZE
before the output), so a device output in any of those forms can be dequantized::

    "quantization": {"scheme": "a16w8", "activations": "int16", "weights": "int8 per-channel",
                     "io": {"input": {"dtype": "int16", "scale": 0.0001, "zero_point": 0},
                            "output": {"dtype": "int16", "scale": 0.0009, "zero_point": 0}},
                     "int8_mac_share": 0.0, ...}

and the ``compiler`` object records the ``ncc-tflite`` command line printed or run.

Decoder subgraphs (``whisper-genio export --decoder-subgraphs``; see whisper_genio/offload.py)
sit under ``"decoder": {"subgraphs": [...]}``, one entry per op, layer (or vocabulary chunk)
and fixed batch: ``{"op": "fc1", "layer": 0, "batch": 5, "files": {"tflite": ..., "dla": ...},
"inputs": [tensor...], "outputs": [tensor...], "quantization": {...}, "compiler": {...}}``;
vocabulary chunks add ``"chunk", "col0", "cols"``.

Padded NPU I/O: a DLA compiled with ``--suppress-input/--suppress-output`` takes its tensors in
the device layout, rows rounded up to the MDLA's alignment. A tensor then records both shapes:
``"shape"`` is the logical tensor, ``"padded_shape"`` the device buffer (same rank, no dimension
smaller), e.g. ``{"shape": [1, 80, 3000], "padded_shape": [1, 80, 3008], "dtype": "float16"}``.
The runtime's padded sizes and dimensions are read at load whether or not the manifest has
them; a recorded padded shape must agree.

Layouts name the tensor's dimensions: n = batch, c = channels (mel bins, or the model width),
t = time. Whisper's own are "nct" for the mel [1, n_mels, 3000] and "ntc" for the states
[1, 1500, d]; the other order means the device tensor is transposed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional, Union

from .. import _core
from ..dims import ModelDims
from ..errors import ModelLoadError, ModelNotFoundError

MANIFEST = "manifest.json"
FORMAT = "whisper_genio.bundle"
FORMAT_VERSION = 1
DTYPES = _core.IO_DTYPES  # the device dtypes the native converters know (tensor_io.h)
QUANTIZED = tuple(d for d in DTYPES if _core.io_dtype(d)["quantized"])
LAYOUTS = ("nct", "ntc")
ARTIFACTS = ("dla", "onnx", "tflite")

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class TensorInfo:
    """One device tensor: what the bytes are."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    scale: Optional[float] = None
    zero_point: Optional[int] = None
    layout: str = ""  # "nct" | "ntc"; "" = Whisper's own for this tensor
    # The device buffer's shape where the DLA's native I/O is padded (same rank as `shape`, each
    # dimension >= shape's; the NPU's row alignment): `shape` is the logical tensor. None: not
    # recorded - the runtime's padded dimensions are read at load either way, and a recorded one
    # must agree with them.
    padded_shape: Optional[tuple[int, ...]] = None

    def native(self, role: str) -> dict[str, Any]:
        """The spec the native backends take ({name, shape, dtype, scale, zero_point, transposed,
        padded_shape})."""
        host = "nct" if role == "input" else "ntc"
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": 1.0 if self.scale is None else float(self.scale),
            "zero_point": 0 if self.zero_point is None else int(self.zero_point),
            "transposed": bool(self.layout) and self.layout != host,
            "padded_shape": None if self.padded_shape is None else list(self.padded_shape),
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        if self.padded_shape is not None:
            d["padded_shape"] = list(self.padded_shape)
        return {k: v for k, v in d.items() if v not in (None, "")}


@dataclass(frozen=True)
class Artifact:
    """An encoder artifact of the bundle (encoder.dla, encoder.onnx)."""

    kind: str  # "dla" | "onnx"
    file: str
    input: TensorInfo
    output: TensorInfo
    extra: Mapping[str, Any] = field(default_factory=dict)  # compiler, flags, opset, soc ...


@dataclass(frozen=True)
class Bundle:
    root: pathlib.Path
    dims: ModelDims
    model: str = ""
    checkpoint: Optional[str] = None
    artifacts: Mapping[str, Artifact] = field(default_factory=dict)
    decoder_subgraphs: tuple[Mapping[str, Any], ...] = ()  # validated entries, files relative to root

    def path_of(self, kind: str) -> Optional[pathlib.Path]:
        a = self.artifacts.get(kind)
        return self.root / a.file if a else None

    @property
    def checkpoint_path(self) -> Optional[pathlib.Path]:
        return self.root / self.checkpoint if self.checkpoint else None


def default_tensor(dims: ModelDims, role: str, dtype: str = "float32", scale: Optional[float] = None,
                   zero_point: Optional[int] = None, layout: str = "") -> TensorInfo:
    """The encoder input (mel) or output (states) of an exported Whisper encoder."""
    if role == "input":
        host = "nct"
        layout = layout or host
        shape = (1, dims.n_mels, 2 * dims.n_audio_ctx) if layout == "nct" else (1, 2 * dims.n_audio_ctx, dims.n_mels)
        name = "mel"
    else:
        host = "ntc"
        layout = layout or host
        shape = (1, dims.n_audio_ctx, dims.n_audio_state) if layout == "ntc" else (1, dims.n_audio_state, dims.n_audio_ctx)
        name = "states"
    return TensorInfo(name, shape, dtype, scale, zero_point, layout)


def check_tensor(t: TensorInfo, dims: ModelDims, role: str, where: str) -> None:
    """Raises ModelLoadError naming the field when `t` cannot be this model's encoder `role`."""
    if t.layout and t.layout not in LAYOUTS:
        raise ModelLoadError(f"{where}.layout: {t.layout!r} is not one of {', '.join(LAYOUTS)}")
    _check_quantization(t, where)
    expected = default_tensor(dims, role, layout=t.layout).shape
    shape = tuple(t.shape)
    if shape != expected and shape != expected[1:]:
        what = "mel window" if role == "input" else "encoder states"
        raise ModelLoadError(
            f"{where}.shape: {list(shape)} is not this model's {what} {list(expected)} "
            f"(layout {t.layout or ('nct' if role == 'input' else 'ntc')}; dims n_mels={dims.n_mels}, "
            f"n_audio_ctx={dims.n_audio_ctx}, n_audio_state={dims.n_audio_state})")


def _check_quantization(t: TensorInfo, where: str) -> None:
    """dtype, scale and zero point: a quantized tensor states its scale, a float one has none;
    the values are checked natively (the checks the backends apply)."""
    if t.dtype in QUANTIZED and t.scale is None:
        raise ModelLoadError(f"{where}: a {t.dtype} tensor needs a positive scale, got None")
    if t.dtype in DTYPES and t.dtype not in QUANTIZED and (t.scale not in (None, 1, 1.0) or t.zero_point not in (None, 0)):
        raise ModelLoadError(f"{where}: scale/zero_point apply to int8/uint8/int16 tensors, not {t.dtype}")
    _core.check_tensor({"dtype": t.dtype, "shape": list(t.shape) or None, "scale": t.scale, "zero_point": t.zero_point},
                       where)


def _tensor(d: Any, where: str) -> TensorInfo:
    if not isinstance(d, Mapping):
        raise ModelLoadError(f"{where}: expected an object with name, shape, dtype")
    unknown = set(d) - {"name", "shape", "dtype", "scale", "zero_point", "layout", "padded_shape"}
    if unknown:
        raise ModelLoadError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    shape = d.get("shape")
    if not isinstance(shape, list) or not all(isinstance(x, int) and x > 0 for x in shape):
        raise ModelLoadError(f"{where}.shape: expected a list of positive integers, got {shape!r}")
    padded = d.get("padded_shape")
    if padded is not None:
        if not isinstance(padded, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in padded):
            raise ModelLoadError(f"{where}.padded_shape: expected a list of positive integers, got {padded!r}")
        if len(padded) != len(shape) or any(p < s for p, s in zip(padded, shape)):
            raise ModelLoadError(f"{where}.padded_shape: {padded} must have the rank of shape {shape} and no "
                                 "dimension smaller than it (the device buffer holds the logical tensor)")
    scale = d.get("scale")
    if scale is not None and not isinstance(scale, (int, float)):
        raise ModelLoadError(f"{where}.scale: expected a number, got {scale!r}")
    return TensorInfo(str(d.get("name", "")), tuple(shape), str(d.get("dtype", "float32")),
                      None if scale is None else float(scale), d.get("zero_point"), str(d.get("layout", "")),
                      None if padded is None else tuple(padded))


def parse_manifest(data: Mapping[str, Any], root: PathLike, *, check_files: bool = True) -> Bundle:
    """Validates a manifest (already parsed from JSON) against itself and the folder."""
    root = pathlib.Path(root)
    where = str(root / MANIFEST)
    if data.get("format") != FORMAT:
        raise ModelLoadError(f"{where}: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"{where}: format_version {data.get('format_version')!r} is not supported "
                             f"(this whisper_genio reads version {FORMAT_VERSION})")
    raw_dims = data.get("dims")
    if not isinstance(raw_dims, Mapping):
        raise ModelLoadError(f"{where}: 'dims' is missing")
    try:
        dims = ModelDims(**{k: raw_dims[k] for k in ModelDims.__dataclass_fields__})
    except KeyError as e:
        raise ModelLoadError(f"{where}: dims lacks {e.args[0]!r}") from None
    artifacts: dict[str, Artifact] = {}
    encoder = data.get("encoder", {}) or {}
    if not isinstance(encoder, Mapping):
        raise ModelLoadError(f"{where}: 'encoder' must be an object")
    for kind, entry in encoder.items():
        w = f"{where}: encoder.{kind}"
        if kind not in ARTIFACTS:
            raise ModelLoadError(f"{w}: unknown artifact kind (known: {', '.join(ARTIFACTS)})")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("file"), str):
            raise ModelLoadError(f"{w}.file: expected the artifact's file name")
        inp = _tensor(entry.get("input", default_tensor(dims, "input").to_json()), f"{w}.input")
        out = _tensor(entry.get("output", default_tensor(dims, "output").to_json()), f"{w}.output")
        check_tensor(inp, dims, "input", f"{w}.input")
        check_tensor(out, dims, "output", f"{w}.output")
        contained_path(root, entry["file"], f"{w}.file")
        if check_files and not (root / entry["file"]).is_file():
            raise ModelLoadError(f"{w}: the manifest lists {entry['file']!r} but {root} has no such file")
        extra = {k: v for k, v in entry.items() if k not in ("file", "input", "output")}
        artifacts[kind] = Artifact(kind, entry["file"], inp, out, extra)
    checkpoint = data.get("checkpoint")
    if checkpoint is not None:
        if not isinstance(checkpoint, str):
            raise ModelLoadError(f"{where}: 'checkpoint' must be a path relative to the bundle")
        contained_path(root, checkpoint, f"{where}: checkpoint")
        if check_files and not (root / checkpoint).exists():
            raise ModelLoadError(f"{where}: the manifest lists checkpoint {checkpoint!r} but {root} has no such file")
    subgraphs = _decoder_subgraphs(data.get("decoder"), dims, root, where, check_files)
    return Bundle(root, dims, str(data.get("model", "")), checkpoint, artifacts, subgraphs)


# A subgraph's batch is the number of decoder sequences it steps at once (beam_size x best_of):
# never more than the decoder runs side by side (the core's bound, also checked when it loads).
MAX_SUBGRAPH_BATCH = _core.MAX_DECODING_GROUP

SUBGRAPH_OPS = ("self_qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2", "layer_step", "vocab")


def _decoder_subgraphs(decoder: Any, dims: ModelDims, root: pathlib.Path, where: str,
                       check_files: bool) -> tuple[Mapping[str, Any], ...]:
    if decoder is None:
        return ()
    if not isinstance(decoder, Mapping) or not isinstance(decoder.get("subgraphs", []), list):
        raise ModelLoadError(f"{where}: 'decoder' must be an object with a 'subgraphs' list")
    out = []
    for i, e in enumerate(decoder.get("subgraphs", [])):
        w = f"{where}: decoder.subgraphs[{i}]"
        if not isinstance(e, Mapping) or e.get("op") not in SUBGRAPH_OPS:
            raise ModelLoadError(f"{w}.op: expected one of {', '.join(SUBGRAPH_OPS)}")
        if not isinstance(e.get("batch"), int) or not 1 <= e["batch"] <= MAX_SUBGRAPH_BATCH:
            raise ModelLoadError(f"{w}.batch: expected an integer in 1..{MAX_SUBGRAPH_BATCH}, got {e.get('batch')!r:.40}")
        if e["op"] == "vocab":
            if not all(isinstance(e.get(k), int) for k in ("chunk", "col0", "cols")) or e["cols"] < 1 or \
                    e["col0"] < 0 or e["col0"] + e["cols"] > dims.n_vocab:
                raise ModelLoadError(f"{w}: a vocabulary chunk needs integer chunk, col0, cols within "
                                     f"[0, {dims.n_vocab})")
        elif not isinstance(e.get("layer"), int) or not 0 <= e["layer"] < dims.n_text_layer:
            raise ModelLoadError(f"{w}.layer: expected 0..{dims.n_text_layer - 1}")
        files = e.get("files")
        if not isinstance(files, Mapping) or not files or not all(isinstance(v, str) for v in files.values()):
            raise ModelLoadError(f"{w}.files: expected {{kind: file name}}")
        for kind, name in files.items():
            contained_path(root, name, f"{w}.files.{kind}")
            if check_files and not (root / name).is_file():
                raise ModelLoadError(f"{w}.files.{kind}: the manifest lists {name!r} but {root} has no such file")
        for role in ("inputs", "outputs"):
            ts = e.get(role)
            if not isinstance(ts, list) or not ts:
                raise ModelLoadError(f"{w}.{role}: expected a list of tensors")
            for j, t in enumerate(ts):
                _check_quantization(_tensor(t, f"{w}.{role}[{j}]"), f"{w}.{role}[{j}]")
        out.append(dict(e))
    return tuple(out)


def load_bundle(path: PathLike) -> Bundle:
    """A bundle folder (or its manifest.json)."""
    p = pathlib.Path(path)
    manifest = p / MANIFEST if p.is_dir() else p
    if not manifest.is_file():
        raise ModelNotFoundError(f"no {MANIFEST} at {p}")
    data = read_manifest_json(manifest)
    bundle = parse_manifest(data, manifest.parent)
    verify_checksums(data, manifest.parent)
    return bundle


# A manifest lists a few dozen files and tensors: a few hundred KB with every decoder subgraph.
MAX_MANIFEST_BYTES = 16 << 20


def read_manifest_json(manifest: pathlib.Path) -> Mapping[str, Any]:
    """The parsed manifest.json: size-capped, and every parse failure a ModelLoadError."""
    try:
        size = manifest.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ModelLoadError(f"{manifest}: {size} bytes is too large for a bundle manifest "
                                 f"(at most {MAX_MANIFEST_BYTES})")
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{manifest}: not valid JSON: {e}") from None
    except RecursionError:
        raise ModelLoadError(f"{manifest}: not a bundle manifest: JSON nested too deeply") from None
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"{manifest}: expected a JSON object")
    return data


def contained_path(root: pathlib.Path, name: Any, where: str) -> pathlib.Path:
    """root/name, refused unless it stays inside the bundle folder: no absolute path, no "..",
    no symbolic link that leads out (a manifest must not make us read /etc/passwd)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ModelLoadError(f"{where}: expected a file name relative to the bundle folder, got {name!r:.80}")
    if pathlib.PurePosixPath(name).is_absolute() or pathlib.PureWindowsPath(name).is_absolute() or \
            ".." in pathlib.PurePosixPath(name.replace("\\", "/")).parts:
        raise ModelLoadError(f"{where}: {name!r:.80} leaves the bundle folder {root}")
    if len(name.encode("utf-8", "surrogateescape")) > 1024 or \
            any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in pathlib.PurePath(name).parts):
        raise ModelLoadError(f"{where}: file name {name!r:.80}... is too long")
    target = root / name
    try:
        inside = target.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise ModelLoadError(f"{where}: cannot resolve {name!r:.80}: {e}") from None
    if not inside:
        raise ModelLoadError(f"{where}: {name!r:.80} resolves to {target.resolve()}, outside the bundle folder {root}")
    return target


# -- per-file checksums ----------------------------------------------------------------------------
# write_manifest records "sha256": {file: hex digest} for every file the manifest lists; load_bundle
# refuses a listed file whose digest differs (a flipped byte in an NPU graph or a checkpoint would
# otherwise load and produce garbage). A manifest without the field (written by hand or by an
# older version) loads unverified. Digests are remembered per (path, size, mtime) in this process,
# so loading the same bundle again does not read its files again.

CHECKSUMS = "sha256"
_DIGESTS: dict[tuple[str, int, int], str] = {}


def listed_files(data: Mapping[str, Any]) -> list[str]:
    """Every file name a (validated) manifest lists: encoder artifacts, checkpoint, subgraphs."""
    names: list[str] = []
    for entry in (data.get("encoder") or {}).values():
        names.append(entry["file"])
    if isinstance(data.get("checkpoint"), str):
        names.append(data["checkpoint"])
    decoder = data.get("decoder") or {}
    for e in decoder.get("subgraphs", []):
        names.extend(e["files"].values())
    return sorted(set(names))


def file_sha256(path: pathlib.Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def record_checksums(folder: pathlib.Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with its "sha256" field set to the digests of the files it lists now."""
    out = {k: v for k, v in manifest.items() if k != CHECKSUMS}
    out[CHECKSUMS] = {name: file_sha256(folder / name) for name in listed_files(out)
                      if (folder / name).is_file()}
    return out


def verify_checksums(data: Mapping[str, Any], root: pathlib.Path) -> None:
    """Raises ModelLoadError naming the first listed file whose digest is not the recorded one."""
    recorded = data.get(CHECKSUMS)
    if recorded is None:
        return
    where = root / MANIFEST
    if not isinstance(recorded, Mapping) or not all(isinstance(v, str) for v in recorded.values()):
        raise ModelLoadError(f"{where}: '{CHECKSUMS}' must map file names to hex digests")
    for name, digest in recorded.items():
        path = contained_path(root, name, f"{where}: {CHECKSUMS}")
        if not path.is_file():
            raise ModelLoadError(f"{where}: {CHECKSUMS} lists {name!r} but {root} has no such file")
        actual = file_sha256(path)
        if actual != digest.lower():
            raise ModelLoadError(f"{root / name}: corrupt or modified: its SHA-256 is {actual}, the bundle "
                                 f"manifest records {digest} (re-export or re-copy the bundle)")


def find_bundle_for(artifact: PathLike) -> Optional[Bundle]:
    """The bundle whose manifest.json sits beside an artifact file (encoder.dla), if any."""
    manifest = pathlib.Path(artifact).parent / MANIFEST
    return load_bundle(manifest) if manifest.is_file() else None


def make_manifest(dims: ModelDims, *, model: str = "", checkpoint: Optional[str] = None,
                  dla: Optional[Mapping[str, Any]] = None, onnx: Optional[Mapping[str, Any]] = None,
                  tflite: Optional[Mapping[str, Any]] = None, extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """A manifest dict (for export tools and tests). `dla`/`onnx`/`tflite`: {"file", "input"?,
    "output"?, ...}; missing input/output default to Whisper's float32 tensors. `extra`: more
    top-level fields (tokenizer, exporter ...)."""
    encoder: dict[str, Any] = {}
    for kind, entry in (("dla", dla), ("onnx", onnx), ("tflite", tflite)):
        if entry is None:
            continue
        e = dict(entry)
        for role in ("input", "output"):
            t = e.get(role)
            if t is None:
                e[role] = default_tensor(dims, role).to_json()
            elif isinstance(t, TensorInfo):
                e[role] = t.to_json()
        encoder[kind] = e
    out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model,
                           "dims": dims.to_dict(), "encoder": encoder}
    if checkpoint is not None:
        out["checkpoint"] = checkpoint
    for k, v in (extra or {}).items():
        out.setdefault(k, v)
    return out


def write_manifest(folder: PathLike, manifest: Mapping[str, Any]) -> pathlib.Path:
    """Writes manifest.json into folder after validating it (files included)."""
    folder = pathlib.Path(folder)
    parse_manifest(manifest, folder)
    manifest = record_checksums(folder, manifest)
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
