"""The "onnxruntime" encoder backend: an ONNX Whisper encoder (fixed [1, n_mels, 3000] input,
as ``whisper_genio.tools.export_onnx`` writes it) run by ONNX Runtime.

Execution providers: ``NeuronExecutionProvider`` (MediaTek's, on Genio Yocto builds of
onnxruntime) with its ``NEURON_FLAG_*`` options when the installed onnxruntime offers it, else
the CPU provider; or whatever ``providers=`` asks for. The session's actual providers are
reported (``Model.backend_info``), so a silent fallback to the CPU is visible.

No copies: the native core owns the mel and states buffers (an ``ExternalEncoder``) and ONNX
Runtime binds both with IOBinding, reading the mel where the core wrote it and writing the
states where the decoder reads them. onnxruntime is an optional dependency
(``pip install 'whisper_genio[onnxruntime]'``); torch is never needed here.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Optional, Sequence, Union

import numpy as np

from .. import _core
from ..errors import BackendUnavailableError, InvalidOptionError, ModelLoadError
from .registry import Availability, BackendSource, BackendSpec

NEURON_EP = "NeuronExecutionProvider"
CPU_EP = "CPUExecutionProvider"
# MediaTek's NeuronEP options are strings. The MDLA cannot run FP32, so FP16 is on; the others
# (NEURON_FLAG_MIN_GROUP_SIZE, NEURON_FLAG_OPTIMIZATION_STRING with ncc-style flags, ...) are
# left to the user: pass providers=[("NeuronExecutionProvider", {...})].
DEFAULT_NEURON_OPTIONS = {"NEURON_FLAG_USE_FP16": "1"}

ProviderSpec = Union[str, tuple[str, dict]]


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailableError(
            f"onnxruntime is not installed ({e}): pip install 'whisper_genio[onnxruntime]'") from None
    return onnxruntime


def choose_providers(requested: Optional[Sequence[ProviderSpec]],
                     available: Sequence[str]) -> tuple[list[str], list[dict], list[str]]:
    """(provider names, their options, notes) for an InferenceSession.

    Default: NeuronExecutionProvider (with DEFAULT_NEURON_OPTIONS) when available, else CPU.
    Requested providers that this onnxruntime lacks are refused with the list it has.
    """
    notes: list[str] = []
    if requested is None:
        if NEURON_EP in available:
            # MediaTek's guidance is to omit CPU fallback providers; ORT still runs nodes the
            # Neuron EP declines on its built-in CPU provider.
            return [NEURON_EP], [dict(DEFAULT_NEURON_OPTIONS)], [f"{NEURON_EP} is available: using it"]
        notes.append(f"{NEURON_EP} is not in this onnxruntime (providers: {', '.join(available)}): using the CPU")
        return [CPU_EP], [{}], notes
    names: list[str] = []
    options: list[dict] = []
    for p in requested:
        if isinstance(p, str):
            name, opts = p, {}
        elif isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], dict):
            name, opts = p[0], {str(k): str(v) for k, v in p[1].items()}
        else:
            raise InvalidOptionError(f"providers: expected names or (name, options) pairs, got {p!r}")
        if name not in available:
            raise BackendUnavailableError(f"execution provider {name!r} is not in this onnxruntime "
                                          f"(it has: {', '.join(available)})")
        if name == NEURON_EP and not opts:
            opts = dict(DEFAULT_NEURON_OPTIONS)
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
    return create_encoder(checkpoint.dims, str(path), providers=source.options.providers, threads=threads,
                          input_name=inp.name or None, output_name=out.name or None)


SPEC = BackendSpec("onnxruntime", "ONNX encoder on ONNX Runtime (NeuronExecutionProvider or CPU)", _availability,
                   _create)
