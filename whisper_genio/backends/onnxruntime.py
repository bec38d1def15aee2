"""The "onnxruntime" encoder backend: an ONNX Whisper encoder (fixed [1, n_mels, 3000] input,
as ``whisper_genio.tools.export_onnx`` writes it) run by ONNX Runtime.

Execution providers: ``NeuronExecutionProvider`` (MediaTek's, on Genio Yocto builds of
onnxruntime) with its ``NEURON_FLAG_*`` options when the installed onnxruntime offers it, else
the CPU provider; or whatever ``providers=`` asks for (names, aliases ``neuron``/``cpu``, or
``(name, options)`` pairs; the CLI's ``--providers`` spells options ``NAME:KEY=VALUE;...``). The
Neuron EP's options are checked against NEURON_OPTIONS and ``NEURON_FLAG_USE_FP16`` is always on.
The session's actual providers and the options passed are reported (``Model.backend_info``,
``encoder.info``), so a silent fallback to the CPU is visible. Export requirements of the EP
(opset >= 13, static shapes, QDQ for integers) are checked by
``whisper_genio.tools.export_onnx.neuron_ep_problems``.

No copies: the native core owns the mel and states buffers (an ``ExternalEncoder``) and ONNX
Runtime binds both with IOBinding, reading the mel where the core wrote it and writing the
states where the decoder reads them. onnxruntime is an optional dependency
(``pip install 'whisper_genio[onnxruntime]'``); torch is never needed here.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .. import _core
from . import npu_check
from ..errors import BackendUnavailableError, InvalidOptionError, ModelLoadError, NpuSelfCheckError
from .registry import Availability, BackendSource, BackendSpec

NEURON_EP = "NeuronExecutionProvider"
CPU_EP = "CPUExecutionProvider"
# Short names accepted wherever a provider is named (providers=, --providers).
PROVIDER_ALIASES = {"neuron": NEURON_EP, "cpu": CPU_EP, "xnnpack": "XnnpackExecutionProvider"}

# MediaTek's NeuronExecutionProvider options (string -> string), the names public reports show in
# use (docs: ../shared/docs/neuron-runtime.md section 5.1, board-reports.md); MediaTek publishes no
# full list, so a name outside this table is refused rather than silently ignored by the EP.
NEURON_OPTIONS: dict[str, str] = {
    "NEURON_FLAG_USE_FP16": "run in FP16; mandatory (the MDLA has no FP32), always 1",
    "NEURON_FLAG_MIN_GROUP_SIZE": "fewest nodes per offloaded subgraph (0: offload all it can); a board report "
                                  "kept a wrongly computed BATCH_MATMUL on the CPU with 100",
    "NEURON_FLAG_OPTIMIZATION_STRING": "ncc-style compiler flags, e.g. '--opt=3 --num-mdla=1 --reshape-to-4d'",
    "NEURON_FLAG_MDLA_ONLY": "offload to the MDLA only",
    "NEURON_FLAG_CPU_DISABLED": "no CPU fallback inside the EP",
    "NEURON_FLAG_CPU_ONLY": "the EP's CPU path only (debugging)",
    "NEURON_FLAG_USE_NCHW": "NCHW layout",
    "NEURON_FLAG_FORCE_SKIP_OPS_STRING": "op types the EP must leave to the CPU, e.g. 'MatMul'",
}
# The MDLA cannot run FP32, so FP16 is always on; the other options are the user's.
DEFAULT_NEURON_OPTIONS = {"NEURON_FLAG_USE_FP16": "1"}
_FALSE = ("0", "false", "no", "off")

ProviderSpec = Union[str, tuple[str, dict]]


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailableError(
            f"onnxruntime is not installed ({e}): pip install 'whisper_genio[onnxruntime]'") from None
    return onnxruntime


def neuron_options(options: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """The NeuronExecutionProvider options in force for `options`: DEFAULT_NEURON_OPTIONS under the
    user's, each name checked against NEURON_OPTIONS, values as strings (what the EP takes)."""
    out = dict(DEFAULT_NEURON_OPTIONS)
    for k, v in (options or {}).items():
        key = str(k).strip()
        if key not in NEURON_OPTIONS:
            raise InvalidOptionError(f"unknown {NEURON_EP} option {key!r}; known: {', '.join(NEURON_OPTIONS)}")
        value = ("1" if v else "0") if isinstance(v, bool) else str(v).strip()
        if key == "NEURON_FLAG_USE_FP16" and value.lower() in _FALSE:
            raise InvalidOptionError("NEURON_FLAG_USE_FP16 cannot be turned off: the MDLA has no FP32 "
                                     "(MediaTek's guide makes it mandatory)")
        out[key] = value
    return out


def _split_spec(text: str) -> tuple[str, dict[str, str]]:
    """'Name' or 'Name:KEY=VALUE;KEY=VALUE' -> (name, options)."""
    name, _, rest = text.partition(":")
    if not name.strip():
        raise InvalidOptionError(f"providers: a provider name is missing in {text!r}")
    opts: dict[str, str] = {}
    for item in (i for i in rest.split(";") if i.strip()):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InvalidOptionError(f"providers: expected KEY=VALUE after {name.strip()!r}:, got {item.strip()!r}")
        opts[key.strip()] = value.strip()
    return name.strip(), opts


def parse_providers(text: str) -> tuple[ProviderSpec, ...]:
    """--providers: 'NAME[:KEY=VALUE;KEY=VALUE...][,NAME...]', e.g.
    'neuron:NEURON_FLAG_MIN_GROUP_SIZE=100;NEURON_FLAG_OPTIMIZATION_STRING=--opt=3 --num-mdla=1,cpu'.
    A comma starts a new provider only when a name follows it (a value may hold commas:
    --arch=mdla5.3,edma3.6)."""
    parts = [p.strip(" ,") for p in re.split(r",\s*(?=[A-Za-z_]+\s*(?::|,|$))", text.strip())]
    parts = [p for p in parts if p]
    if not parts:
        raise InvalidOptionError("providers: the list is empty")
    return tuple((n, o) if o else n for n, o in (_split_spec(p) for p in parts))


def choose_providers(requested: Optional[Sequence[ProviderSpec]],
                     available: Sequence[str]) -> tuple[list[str], list[dict], list[str]]:
    """(provider names, their options, notes) for an InferenceSession.

    Default: NeuronExecutionProvider (with DEFAULT_NEURON_OPTIONS) when available, else CPU.
    Requested providers: names (or aliases, or 'Name:KEY=VALUE;...') or (name, options) pairs;
    the Neuron EP's options are checked and FP16 is always on. Providers that this onnxruntime
    lacks are refused with the list it has.
    """
    notes: list[str] = []
    if requested is None:
        if NEURON_EP in available:
            # MediaTek's guidance is to omit CPU fallback providers; ORT still runs nodes the
            # Neuron EP declines on its built-in CPU provider.
            return [NEURON_EP], [neuron_options()], [f"{NEURON_EP} is available: using it"]
        notes.append(f"{NEURON_EP} is not in this onnxruntime (providers: {', '.join(available)}): "
                     "the CPU provider runs the same graph")
        return [CPU_EP], [{}], notes
    names: list[str] = []
    options: list[dict] = []
    for p in requested:
        if isinstance(p, str):
            name, opts = _split_spec(p)
        elif isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], Mapping):
            name, opts = p[0].strip(), {str(k): v for k, v in p[1].items()}
        else:
            raise InvalidOptionError(f"providers: expected names or (name, options) pairs, got {p!r}")
        name = PROVIDER_ALIASES.get(name.lower(), name)
        opts = neuron_options(opts) if name == NEURON_EP else {k: str(v) for k, v in opts.items()}
        if name not in available:
            raise BackendUnavailableError(f"execution provider {name!r} is not in this onnxruntime "
                                          f"(it has: {', '.join(available)})")
        names.append(name)
        options.append(opts)
    if not names:
        raise InvalidOptionError("providers: the list is empty")
    return names, options, notes


def _availability(source: Any) -> Availability:
    art = source.artifact("onnx") if isinstance(source, BackendSource) else None
    if art is None and isinstance(source, BackendSource):
        # Choosing a backend for a model without an ONNX encoder: say so without importing
        # onnxruntime, whose libraries would stay resident for nothing.
        installed = importlib.util.find_spec("onnxruntime") is not None
        return Availability("onnxruntime", False, ("onnxruntime is installed" if installed else "onnxruntime is not installed")
                            + ", but no ONNX encoder was given (encoder_model='encoder.onnx' or a bundle folder with one)")
    try:
        ort = _import_ort()
    except BackendUnavailableError as e:
        return Availability("onnxruntime", False, str(e))
    if art is None:
        return Availability("onnxruntime", False, f"onnxruntime {ort.__version__} is installed (providers: "
                            f"{', '.join(ort.get_available_providers())}), but no ONNX encoder was given "
                            "(encoder_model='encoder.onnx' or a bundle folder with one)")
    if not art[0].is_file():
        return Availability("onnxruntime", False, f"ONNX encoder not found: {art[0]}")
    return Availability("onnxruntime", True)


def create_encoder(dims: Any, path: str, *, providers: Optional[Sequence[ProviderSpec]] = None,
                   threads: Optional[int] = None, input_name: Optional[str] = None,
                   output_name: Optional[str] = None) -> Any:
    """A native ExternalEncoder whose run() is an ONNX Runtime session over `path`."""
    ort = _import_ort()
    names, options, notes = choose_providers(providers, ort.get_available_providers())
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=names, provider_options=options)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelLoadError(f"onnxruntime could not load {path}: {e}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(f"{path}: a Whisper encoder has one input and one output, this graph has "
                             f"{len(inputs)} and {len(outputs)}")
    mel_shape = (1, dims.n_mels, 2 * dims.n_audio_ctx)
    states_shape = (1, dims.n_audio_ctx, dims.n_audio_state)
    i, o = inputs[0], outputs[0]
    if input_name and i.name != input_name:
        raise ModelLoadError(f"{path}: the input is named {i.name!r}, the manifest says {input_name!r}")
    if output_name and o.name != output_name:
        raise ModelLoadError(f"{path}: the output is named {o.name!r}, the manifest says {output_name!r}")
    for t, shape, what in ((i, mel_shape, "input (mel)"), (o, states_shape, "output (states)")):
        if t.type != "tensor(float)":
            raise ModelLoadError(f"{path}: the {what} is {t.type}; this backend takes float32 I/O")
        declared = tuple(d if isinstance(d, int) else -1 for d in t.shape)
        if len(declared) != 3 or any(d not in (-1, e) for d, e in zip(declared, shape)):
            raise ModelLoadError(f"{path}: the {what} has shape {list(t.shape)}, this model needs {list(shape)}")

    binding = session.io_binding()
    used = session.get_providers()

    def run() -> None:  # closes over the session and binding only (never the encoder: no cycle)
        session.run_with_iobinding(binding)

    encoder = _core.ExternalEncoder(dims.to_dict(), "onnxruntime", run)
    binding.bind_input(i.name, "cpu", 0, np.float32, list(mel_shape), encoder.mel_address)
    binding.bind_output(o.name, "cpu", 0, np.float32, list(states_shape), encoder.states_address)
    encoder.info = {
        "onnxruntime": ort.__version__,
        "model": str(path),
        "providers": used,
        "requested": names,
        "provider_options": options,
        "notes": notes,
    }
    return encoder


def _create(checkpoint: Any, pool: Any, *, source: BackendSource, **_options: Any) -> Any:
    art = source.artifact("onnx")
    assert art is not None, "availability() checked it"
    path, inp, out = art
    for t, what in ((inp, "input"), (out, "output")):
        if t.dtype != "float32" or (t.layout and t.layout != ("nct" if what == "input" else "ntc")):
            raise ModelLoadError(f"the ONNX encoder's {what} is declared {t.dtype} {t.layout}: the onnxruntime backend "
                                 "takes Whisper's float32 tensors ([1, n_mels, 3000] -> [1, 1500, d])")
    threads = getattr(pool, "num_threads", None)
    enc = create_encoder(checkpoint.dims, str(path), providers=source.options.providers, threads=threads,
                         input_name=inp.name or None, output_name=out.name or None)
    info = enc.info
    accelerated = [p for p in info["requested"] if p != CPU_EP]
    if accelerated and source.options.self_test and npu_check.enabled():
        # An execution provider that is not ORT's CPU (the Neuron EP on the MDLA) is checked like an
        # encoder DLA: its states on the shipped speech window against the CPU encoder's.
        try:
            verdict = npu_check.check_encoder(
                f"onnxruntime encoder {path} on {', '.join(accelerated)}", enc, checkpoint, pool, artifact=path,
                io={"providers": info["requested"], "provider_options": info["provider_options"]},
                runtime_version=f"onnxruntime {info['onnxruntime']}")
        except NpuSelfCheckError as err:
            del enc  # the session goes now, not with the traceback
            err.__traceback__ = None
            raise err
        source.notes.append(f"self-check passed{' (cached)' if verdict['cached'] else ''}: "
                            f"{npu_check.describe(verdict)}")
    return enc


SPEC = BackendSpec("onnxruntime", "ONNX encoder on ONNX Runtime (NeuronExecutionProvider or CPU)", _availability,
                   _create)
