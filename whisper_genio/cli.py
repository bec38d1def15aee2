"""The ``whisper-genio`` command line.

    whisper-genio transcribe FILE... [--model base] [--language en] [--beam-size 5] ...

Errors the user can fix (missing file, bad option, missing weights) print one line and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Optional, Sequence

from . import _core
from .backends.npu_check import FALLBACKS as NPU_FALLBACKS
from .errors import InvalidOptionError, TranscriptionInterrupted, WhisperGenioError
from .transcription.writers import OUTPUT_FORMATS, format_timestamp, get_writer


def _optional_float(value: str) -> Optional[float]:
    if value.lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or None, got {value!r}") from None


def _trim_or_auto(value: str) -> Any:
    return "auto" if value.lower() == "auto" else _optional_float(value)


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None


def _optional_int(value: str) -> Optional[int]:
    if value.lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or None, got {value!r}") from None


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def _bool(value: str) -> bool:
    v = value.lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _cpu_list(value: str) -> list[int]:
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated CPU ids, got {value!r}") from None


def _key_values(value: str) -> dict:
    """``k=v,k=v`` (numbers, None, inf) or a JSON object: the fields of an options dataclass."""
    import json

    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"invalid JSON ({e})") from None
        if not isinstance(parsed, dict):
            raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
        return parsed
    out: dict = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected name=value[,name=value...], got {item!r}")
        raw = raw.strip()
        if raw.lower() == "none":
            out[key.strip()] = None
            continue
        for kind in (int, float):
            try:
                out[key.strip()] = kind(raw)
                break
            except ValueError:
                continue
        else:
            raise argparse.ArgumentTypeError(f"{key.strip()}: expected a number or None, got {raw!r}")
    return out


def _spellings(*names: str) -> list[str]:
    """Each long option in our spelling (``--output-dir``) and openai-whisper's (``--output_dir``)."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if name.startswith("--") and "-" in name[2:]:
            out.append("--" + name[2:].replace("-", "_"))
    return out


_METAVARS = {_bool: "BOOL", _optional_int: "N", _int: "N", _optional_float: "X", _float: "X"}


def _add(p, *names: str, **kwargs):
    if "metavar" not in kwargs and "choices" not in kwargs and kwargs.get("type") in _METAVARS:
        kwargs["metavar"] = _METAVARS[kwargs["type"]]
    return p.add_argument(*_spellings(*names), **kwargs)


class _Parser(argparse.ArgumentParser):
    """Errors in one line (``whisper-genio transcribe: error: argument --x: ...``), status 2; both
    spellings of an option count as one when abbreviated (``--beam`` is ``--beam-size``)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _get_option_tuples(self, option_string):  # noqa: D401 - argparse hook
        unique = {}
        for option_tuple in super()._get_option_tuples(option_string):
            unique.setdefault(id(option_tuple[0]), option_tuple)
        return list(unique.values())


class _HelpFormatter(argparse.HelpFormatter):
    """Every spelling of an option on one line with its value named once, and the default added
    once, unless the help text already gives it (or there is none to give)."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or "default" in text or action.default is None
                or action.default is argparse.SUPPRESS or action.nargs == 0 or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    _add(p, "--model", default="base", help="size name (base, small, large-v3, ...) or a path to a .pt file, "
                   "Hugging Face folder or CTranslate2 folder (default: base)")
    _add(p, "--backend", default="auto",
                   help="encoder backend: auto (neuron, then onnxruntime, then cpu), neuron, onnxruntime, replay, cpu "
                   "(default: auto)")
    _add(p, "--compute-type", default="auto", choices=_core.COMPUTE_TYPES,
                   help="weight precision on the CPU (default: auto = float32)")
    _add(p, "--threads", type=_optional_int, default=None,
         help="CPU threads; 0 or None: the default, min(4, cores)")
    _add(p, "--cpu-affinity", type=_cpu_list, default=None,
                   help="pin threads to these CPU ids, e.g. the big cores: 4,5,6,7")
    e = p.add_argument_group("encoder backends (NPU, ONNX Runtime, replay)")
    _add(e, "--encoder-model", default=None,
                   help="encoder.dla (neuron), encoder.onnx (onnxruntime) or a model-bundle folder with manifest.json")
    _add(e, "--encoder-output", nargs="+", action="extend", default=None, metavar="BIN",
                   help="replay: output.bin file(s) written by neuronrt, one per 30-second window in order "
                   "(put the audio, if any, before this option)")
    _add(e, "--encoder-output-dtype", default=None, choices=_core.IO_DTYPES,
                   help="replay: dtype of the output.bin bytes (default: the bundle manifest's, else float32)")
    _add(e, "--scale", type=_float, default=None, help="replay: quantization scale of the output tensor")
    _add(e, "--zero-point", type=_int, default=None, help="replay: quantization zero point of the output tensor")
    _add(e, "--layout", default=None, choices=["ntc", "nct"],
                   help="replay: ntc = [1, 1500, d] (Whisper's), nct = [1, d, 1500]")
    _add(e, "--neuron-qos", default=None, metavar="K=V,...",
                   help="neuron: QoS, e.g. preference=performance,priority=high,boost=100")
    _add(e, "--neuron-api", default="auto", choices=_core.NEURON_APIS, help="neuron: runtime API")
    _add(e, "--no-self-test", action="store_true",
                   help="neuron, onnxruntime on a non-CPU provider, decoder subgraphs: skip the load-time checks (a "
                   "changed input changes the output; the NPU's states on a shipped speech window pass the validate "
                   "gate against the CPU's; the decoder's logits with its NPU subgraphs match the CPU decoder's)")
    _add(e, "--npu-fallback", default="raise", choices=list(NPU_FALLBACKS),
                   help="when a load-time accuracy check fails, raise (default) or run the encoder (or each failing "
                   "decoder subgraph's op) on the CPU and say why")
    _add(e, "--providers", default=None, metavar="NAME[:K=V;...],...",
                   help="onnxruntime: execution providers in order, each with its options, e.g. "
                   "'neuron:NEURON_FLAG_MIN_GROUP_SIZE=100;NEURON_FLAG_OPTIMIZATION_STRING=--opt=3 --num-mdla=1,cpu' "
                   "(NEURON_FLAG_USE_FP16=1 is always on; default: NeuronExecutionProvider if present, else CPU)")
    o = p.add_argument_group("decoder offload (NPU subgraphs)")
    _add(o, "--decoder-offload", default="none", choices=_core.DECODER_OFFLOAD_MODES,
                   help="which decoder ops run on NPU subgraphs (see whisper_genio/backends/decoder_offload.py)")
    _add(o, "--decoder-subgraphs", default=None, metavar="BUNDLE",
                   help="bundle folder with decoder subgraphs (default: --encoder-model when it is a bundle)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="whisper-genio", description="OpenAI Whisper for MediaTek Genio boards")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (before the command: "
                        "whisper-genio --debug transcribe ...)")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe or translate audio files (openai-whisper's `whisper` options)",
                       formatter_class=_HelpFormatter, description=TRANSCRIBE_DESCRIPTION)
    _add_transcribe_arguments(t)
    t.set_defaults(func=_cmd_transcribe)

    b = sub.add_parser("bench", help="per-stage time, CPU and memory of one transcription", formatter_class=_HelpFormatter)
    b.add_argument("audio", help="audio file")
    _add_model_arguments(b)
    b.add_argument("--beam-size", type=_optional_int, default=None, help="beams (default: greedy)")
    b.add_argument("--language", default=None)
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=_cmd_bench)

    d = sub.add_parser("doctor", help="what can run here (NPU runtime, devices, tools, providers) and how to fix the rest")
    d.add_argument("--dla", default=None, help="also load this encoder DLA and run one round trip (and the self-test)")
    d.add_argument("--model", default="base", help="the model the DLA was exported from (for its dimensions)")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--decoder-subgraphs", default=None, metavar="BUNDLE",
                   help="also load this bundle's decoder subgraphs into --model's decoder and print the plan")
    d.add_argument("--decoder-offload", default="auto", choices=[m for m in _core.DECODER_OFFLOAD_MODES if m != "none"],
                   help="the plan to build from --decoder-subgraphs")
    d.add_argument("--onnx", default=None, metavar="MODEL",
                   help="also check this ONNX encoder (or a bundle's encoder.onnx) against what MediaTek's "
                        "NeuronExecutionProvider is reported to refuse")
    d.add_argument("--checklist", action="store_true", help="print the on-device checklist (docs/on-device.md) "
                   "with pass/fail where this machine can tell")
    d.set_defaults(func=_cmd_doctor)

    m = sub.add_parser("mel", help="write the encoder input files for a device (one raw [1, n_mels, 3000] per window)")
    m.add_argument("audio", help="audio file")
    m.add_argument("--output-dir", "-o", default=".", help="where mel_000.bin, mel_001.bin ... go")
    m.add_argument("--n-mels", type=int, default=80, choices=[80, 128])
    m.add_argument("--dtype", default="float32", choices=_core.IO_DTYPES,
                   help="the DLA input's dtype")
    m.add_argument("--scale", type=float, default=None, help="quantization scale of the DLA input")
    m.add_argument("--zero-point", type=int, default=None, help="quantization zero point of the DLA input")
    m.add_argument("--layout", default="nct", choices=["nct", "ntc"], help="nct = [1, n_mels, 3000], ntc = [1, 3000, n_mels]")
    m.set_defaults(func=_cmd_mel)
    _add_quantization_parsers(sub)
    _add_stream_parser(sub)
    return parser


STREAM_DESCRIPTION = """\
Live transcription: committed text is printed as it comes (on a terminal, the partial hypothesis
after it, rewritten in place). SOURCE is '-' for raw mono PCM on stdin (arecord -f S16_LE -r 16000
-c 1 | whisper-genio stream -), an audio file (--realtime plays it at real-time pace), or nothing
for the default microphone (pip install 'whisper_genio[mic]'). Ctrl-C ends the stream and commits
what was heard. With -f, the committed segments are written at the end.
"""


def _add_stream_parser(sub) -> None:
    from .transcription.streaming import StreamOptions

    defaults = StreamOptions()
    s = sub.add_parser("stream", help="live transcription from a microphone, stdin PCM or a file",
                       formatter_class=_HelpFormatter, description=STREAM_DESCRIPTION)
    s.add_argument("source", nargs="?", default=None, help="'-' (stdin PCM), an audio file, or none (microphone)")
    _add_model_arguments(s)
    _add(s, "--model-dir", default=None, metavar="DIR", help="look for --model's openai-whisper checkpoint here")
    _add(s, "--language", default=None, help="spoken language; detected once, on the first decode, when omitted")
    _add(s, "--step", type=_float, default=defaults.step, help="seconds of new audio between decodes")
    _add(s, "--agreement", type=_int, default=defaults.agreement,
         help="LocalAgreement-n: hypotheses that must agree before a word is committed")
    _add(s, "--min-word-probability", type=_float, default=defaults.min_word_probability,
         help="an agreed word below this probability waits for more audio (0: agreement alone)")
    _add(s, "--unsure-word-wait", type=_float, default=defaults.unsure_word_wait,
         help="seconds of audio after an unsure word before agreement alone commits it")
    _add(s, "--whole-window-at-endpoint", type=_bool, default=defaults.whole_window_at_endpoint,
         help="the decode that ends an utterance encodes a whole 30 s window (when steps are trimmed)")
    _add(s, "--vad", default="auto", choices=["auto", "on", "off"],
         help="gate decoding on speech with Silero VAD (auto: when installed)")
    _add(s, "--endpoint-silence", type=_float, default=defaults.endpoint_silence,
         help="seconds of silence after speech that end an utterance (with VAD)")
    _add(s, "--max-buffer", type=_float, default=defaults.max_buffer, help="longest audio decoded at once (s)")
    _add(s, "--word-timestamps", type=_bool, default=False, help="keep word times in the written files")
    _add(s, "--beam-size", type=_optional_int, default=None, help="beams (default: greedy)")
    _add(s, "--trim-window", type=_trim_or_auto, default="auto", metavar="auto|None|SECONDS",
         help="fewest seconds encoded per decode, the buffer and 1 s of padding when longer (auto: trimmed where "
         "the encoder can; None: whole 30 s windows)")
    _add(s, "--rate", type=_int, default=SAMPLE_RATE_DEFAULT, help="stdin PCM: sample rate in Hz")
    _add(s, "--format", default="s16le", choices=["s16le", "f32le"], help="stdin PCM: sample format")
    _add(s, "--input-device", default=None, help="microphone: PortAudio device name or index")
    _add(s, "--chunk", type=_float, default=0.1, help="seconds per read from the source")
    _add(s, "--realtime", action="store_true", help="a file: feed it at real-time pace")
    _add(s, "--output-format", "-f", default=None, choices=OUTPUT_FORMATS, help="write the transcript at the end")
    _add(s, "--output-dir", "-o", default=".", help="where -f writes")
    s.set_defaults(func=_cmd_stream)


SAMPLE_RATE_DEFAULT = 16000


def _cmd_stream(args: argparse.Namespace) -> int:
    from . import load_model
    from .tools.stream import file_chunks, microphone_chunks, pcm_chunks, run_stream
    from .transcription.streaming import StreamOptions

    options = dict(step=args.step, agreement=args.agreement, vad={"auto": None, "on": True, "off": False}[args.vad],
                   endpoint_silence=args.endpoint_silence, max_buffer=args.max_buffer,
                   trim_seconds=min(StreamOptions().trim_seconds, args.max_buffer), language=args.language,
                   word_timestamps=args.word_timestamps, min_word_probability=args.min_word_probability,
                   unsure_word_wait=args.unsure_word_wait, whole_window_at_endpoint=args.whole_window_at_endpoint)
    if args.beam_size is not None:
        options["beam_size"] = args.beam_size
    if args.trim_window != "auto":
        from .transcription.options import split_transcribe_kwargs

        options["trim_window"] = args.trim_window
        split_transcribe_kwargs({"trim_window": args.trim_window})  # checked before the model loads
    StreamOptions(**{k: v for k, v in options.items() if k not in ("beam_size", "trim_window")})  # checked before the model loads
    if args.output_format is not None:
        _prepare_output_dir(args.output_dir)
    model = load_model(_model_name(args), backend=args.backend, compute_type=args.compute_type,
                       threads=args.threads or None, cpu_affinity=args.cpu_affinity,
                       decoder_offload=args.decoder_offload, decoder_subgraphs=args.decoder_subgraphs,
                       **_encoder_options(args))
    rate = SAMPLE_RATE_DEFAULT
    if args.source == "-":
        chunks, rate = pcm_chunks(sys.stdin.buffer, args.rate, args.chunk, args.format), args.rate
    elif args.source is not None:
        chunks = file_chunks(args.source, args.chunk, args.realtime)
    else:
        chunks = microphone_chunks(args.input_device, args.chunk)
    result = run_stream(model, chunks, rate=rate, **options)
    print()
    if args.output_format is not None:
        name = "stream" if args.source in (None, "-") else args.source
        get_writer(args.output_format, args.output_dir)(result, name)
    return 0


TRANSCRIBE_DESCRIPTION = """\
Transcribe or translate audio files. Every option of openai-whisper's `whisper` command is
accepted in its spelling (--output_format, --word_timestamps) and in ours (--output-format).
As with openai-whisper, every output format (-f all) is written into the current directory
(-o .) by default: FILE.txt, .vtt, .srt, .tsv and .json for each input FILE.ext. Two inputs with
the same name (a/clip.wav, b/clip.mp3) never overwrite each other: the second one's files are
named clip-2.* (a note says so). An input that can't be read or transcribed is reported in one
line and skipped; the others are still transcribed, and the exit status is 2 when any failed.
Differences: the default model is base (openai-whisper's: turbo); --device and --fp16 do not
apply (the encoder runs on --backend, the precision is --compute-type); nothing is downloaded.
"""


def _add_transcribe_arguments(t: argparse.ArgumentParser) -> None:
    from .transcription.options import DecodingOptions, TranscribeOptions

    api = TranscribeOptions()  # the library's defaults, shown in --help (openai-whisper's)
    decode = DecodingOptions()
    t.add_argument("audio", nargs="*", help="audio files (any format ffmpeg or libsndfile reads); with "
                   "--encoder-output: the recording the device encoded (optional; adds a comparison with the CPU encoder)")
    _add_model_arguments(t)
    _add(t, "--model-dir", default=None, metavar="DIR",
         help="look for the model's openai-whisper checkpoint (DIR/NAME.pt) here first; nothing is downloaded")
    _add(t, "--device", default="cpu", help="accepted for openai-whisper compatibility: whisper_genio decodes on "
         "the CPU and runs the encoder on --backend (a value other than cpu prints a note)")
    _add(t, "--fp16", type=_bool, default=None, help="accepted for openai-whisper compatibility (a note is printed): "
         "the precision is --compute-type")
    out = t.add_argument_group("output")
    _add(out, "--output-dir", "-o", default=".", help="directory the output files go into (created if needed)")
    _add(out, "--output-format", "-f", default="all", choices=OUTPUT_FORMATS,
         help="format of the output files; all: txt, vtt, srt, tsv and json")
    _add(out, "--verbose", type=_bool, default=True,
         help="True: print the detected language and each segment as it is decoded; False: a progress bar")
    _add(out, "--quiet", action="store_true", help="print nothing but errors (overrides --verbose)")
    _add(out, "--word-timestamps", type=_bool, default=api.word_timestamps,
         help="word-level timestamps (segments' \"words\" in json; needed by the four options below)")
    _add(out, "--highlight-words", type=_bool, default=False,
         help="(needs --word-timestamps True) underline each word as it is spoken in srt and vtt")
    _add(out, "--max-line-width", type=_optional_int, default=None,
         help="(needs --word-timestamps True) the most characters in a subtitle line before it breaks")
    _add(out, "--max-line-count", type=_optional_int, default=None,
         help="(needs --word-timestamps True) the most lines in a subtitle cue (with --max-line-width)")
    _add(out, "--max-words-per-line", type=_optional_int, default=None,
         help="(needs --word-timestamps True; no effect with --max-line-width) the most words in a subtitle cue")
    _add(out, "--prepend-punctuations", default=api.prepend_punctuations,
         help="with word timestamps: these join the word after them")
    _add(out, "--append-punctuations", default=api.append_punctuations,
         help="with word timestamps: these join the word before them")

    d = t.add_argument_group("decoding")
    _add(d, "--language", default=None, help="spoken language (code or name, e.g. en or English); detected from "
         "the first 30 seconds when omitted")
    _add(d, "--task", default=decode.task, choices=["transcribe", "translate"],
         help="transcribe (X -> X) or translate (X -> English)")
    _add(d, "--temperature", type=_float, default=0.0, help="first sampling temperature")
    _add(d, "--temperature-increment-on-fallback", type=_optional_float, default=0.2,
         help="the temperature step of the fallback when a window fails the thresholds below; None: no fallback")
    _add(d, "--best-of", type=_optional_int, default=5, help="candidates when sampling (temperature > 0)")
    _add(d, "--beam-size", type=_optional_int, default=5, help="beams at temperature 0; None: greedy")
    _add(d, "--patience", type=_optional_float, default=None, help="beam search patience (arXiv:2204.05424); "
         "None: 1.0, conventional beam search")
    _add(d, "--length-penalty", type=_optional_float, default=None,
         help="length penalty alpha (arXiv:1609.08144); None: length normalisation")
    _add(d, "--suppress-tokens", default=decode.suppress_tokens,
         help="comma-separated token ids never sampled; -1: most special characters (not common punctuation)")
    _add(d, "--initial-prompt", default=api.initial_prompt, help="text given as the previous window's to the first")
    _add(d, "--carry-initial-prompt", type=_bool, default=api.carry_initial_prompt,
         help="give --initial-prompt to every window, before the previous text")
    _add(d, "--condition-on-previous-text", type=_bool, default=api.condition_on_previous_text,
         help="give each window the previous text as its prompt (False: less prone to loops, less consistent)")
    _add(d, "--compression-ratio-threshold", type=_optional_float, default=api.compression_ratio_threshold,
         help="a window whose text's gzip compression ratio is higher failed (fallback)")
    _add(d, "--logprob-threshold", type=_optional_float, default=api.logprob_threshold,
         help="a window whose average token log probability is lower failed (fallback)")
    _add(d, "--no-speech-threshold", type=_optional_float, default=api.no_speech_threshold,
         help="a window whose no-speech probability is higher and which failed --logprob-threshold is silence")
    _add(d, "--clip-timestamps", default=api.clip_timestamps,
         help="start,end,start,end,... seconds of the clips to transcribe; the last end defaults to the end")
    _add(d, "--hallucination-silence-threshold", type=_optional_float, default=None,
         help="(needs --word-timestamps True) skip silences longer than this many seconds around a likely "
         "hallucination")
    _add_own_transcribe_arguments(t.add_argument_group("whisper_genio's own"), api, decode)


def _add_own_transcribe_arguments(g, api, decode) -> None:
    """transcribe's options that openai-whisper's command does not have (faster-whisper's, ours)."""
    _add(g, "--vad-filter", type=_bool, default=api.vad_filter,
         help="transcribe only the speech found by voice activity detection (Silero VAD)")
    _add(g, "--vad-parameters", type=_key_values, default=None, metavar="K=V,...",
         help="VAD options, faster-whisper's names: threshold, neg_threshold, min_speech_duration_ms, "
         "max_speech_duration_s, min_silence_duration_ms, speech_pad_ms (or a JSON object)")
    _add(g, "--repetition-cutoff", type=_optional_int, default=decode.repetition_cutoff,
         help="stop a window whose text ends in one block repeated this many times (counts as failed)")
    _add(g, "--no-repeat-ngram-size", type=_int, default=decode.no_repeat_ngram_size,
         help="> 0: never sample an n-gram of this many tokens twice in a window")
    _add(g, "--repetition-penalty", type=_float, default=decode.repetition_penalty,
         help="> 1 penalises tokens already sampled in the window")
    _add(g, "--trim-window", type=_optional_float, default=api.trim_window, metavar="SECONDS",
         help="encode each window only as far as its audio plus 1 s of padding, but at least this many seconds "
         "(cpu encoder; faster on short audio, results differ a little from openai-whisper's); None: whole "
         "30 s windows")


def _add_quantization_parsers(sub) -> None:
    """export, quantize, validate (whisper_genio.tools; torch/litert/onnx only where needed)."""
    x = sub.add_parser("export", help="export the encoder (TFLite for ncc-tflite, ONNX) and the model bundle")
    x.add_argument("--model", default="base", help="size name or checkpoint path (default: base)")
    x.add_argument("--output-dir", "-o", required=True, help="bundle folder to write")
    x.add_argument("--format", default="tflite,onnx", help="tflite, onnx or both (default: tflite,onnx)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    x.add_argument("--soc", default="genio-700", help="record the ncc-tflite command for this SoC/board "
                   "(genio-510/700/1200/520/720, mt8390 ...; 'none' to skip)")
    x.add_argument("--no-checkpoint", action="store_true", help="do not copy the weights and tokenizer into the bundle")
    x.add_argument("--decoder-subgraphs", default=None, metavar="KINDS",
                   help="also export decoder subgraphs for the NPU: 'linear' (projections + vocabulary chunks)")
    x.add_argument("--beams", default="1,5", help="decoder subgraph batches = beam counts (default 1,5)")
    x.add_argument("--decoder-quantize", default="none", choices=["none", "a16w8", "w8"],
                   help="decoder subgraphs: float (none), int16 activations + int8 weights, or int8 weights only")
    x.add_argument("--calibration", nargs="+", default=(), metavar="AUDIO",
                   help="a16w8: speech files or folders whose decoder activations calibrate the subgraphs")
    x.add_argument("--check-mdla", default=None, metavar="BOARD",
                   help="MDLA pre-flight: read every TFLite file written and list what the MDLA guidelines of BOARD "
                   "(genio-510/700 = mdla3.0, genio-1200 = mdla2.0, genio-520/720 = mdla5.3, or mdla2.0/3.0/5.3, "
                   "all) do not cover, with each source's confidence; also writes mdla_check.json")
    x.set_defaults(func=_cmd_export)

    q = sub.add_parser("quantize", help="calibrate on real audio and write a quantized bundle (TFLite + ONNX QDQ)")
    q.add_argument("--bundle", required=True, help="the float bundle written by `whisper-genio export`")
    q.add_argument("--calibration", nargs="+", required=True, metavar="AUDIO",
                   help="audio files or folders; clips are packed into full 30 s windows")
    q.add_argument("--scheme", default="a16w8", help="a16w8 (default), a16w8-tensor, a8w8, a8w8-tensor, w8 "
                   "(weight-only), mixed (search), or mixed:GROUP=16,... / a16w8:GROUP=8,...")
    q.add_argument("--output-dir", "-o", required=True, help="quantized bundle folder to write")
    q.add_argument("--format", default="tflite,onnx", help="tflite, onnx or both")
    q.add_argument("--soc", default="genio-700", help="SoC/board for the ncc-tflite command ('none' to skip)")
    q.add_argument("--max-windows", type=int, default=None, help="use at most this many 30 s calibration windows")
    q.add_argument("--target-db", type=float, default=20.0,
                   help="mixed search: minimum encoder SQNR on the speech frames (default 20)")
    q.add_argument("--max-wer-vs-float", type=float, default=0.05,
                   help="mixed search: maximum WER of the transcripts against the float encoder's (default 0.05)")
    q.add_argument("--no-compile", action="store_true", help="do not run ncc-tflite even when it is on PATH")
    q.add_argument("--no-host-check", action="store_true",
                   help="skip running each written model on one calibration window against the float encoder "
                        "(exit status 3 when one fails)")
    q.add_argument("--report", default=None, metavar="DIR", help="also write the diagnosis report (HTML + JSON) here")
    q.add_argument("--threads", type=int, default=2)
    q.add_argument("--check-mdla", default=None, metavar="BOARD",
                   help="MDLA pre-flight: read every TFLite file written and list what the MDLA guidelines of BOARD "
                   "(genio-510/700 = mdla3.0, genio-1200 = mdla2.0, genio-520/720 = mdla5.3, or mdla2.0/3.0/5.3, "
                   "all) do not cover, with each source's confidence; also writes mdla_check.json")
    q.set_defaults(func=_cmd_quantize)

    v = sub.add_parser("validate", help="compare an encoder output (device output.bin, TFLite, ONNX) with the float "
                       "reference; exit status 1 when the gate fails")
    v.add_argument("--audio", required=True, help="the audio the device encoded (its first 30 s window)")
    v.add_argument("--model", default="base", help="the model (for the float reference and decoder)")
    src = v.add_mutually_exclusive_group(required=True)
    src.add_argument("--encoder-output", help="raw encoder output (neuronrt's output.bin)")
    src.add_argument("--encoder-model", help="an encoder .tflite or .onnx to run on the host instead")
    v.add_argument("--dtype", default=None, choices=_core.IO_DTYPES,
                   help="dtype of output.bin (default: the bundle's, else float32)")
    v.add_argument("--scale", type=float, default=None, help="quantization scale of the output tensor")
    v.add_argument("--zero-point", type=int, default=None, help="quantization zero point of the output tensor")
    v.add_argument("--layout", default=None, choices=["ntc", "nct"], help="ntc = [1, 1500, d], nct = [1, d, 1500]")
    v.add_argument("--bundle", default=None, help="take dtype/scale/zero point/layout from this bundle's manifest")
    v.add_argument("--host-model", default=None, help="the quantized .tflite/.onnx the DLA came from: three-way check")
    v.add_argument("--min-sqnr", type=float, default=None, help="gate: minimum SQNR on the speech frames (dB)")
    v.add_argument("--min-cosine", type=float, default=None, help="gate: minimum cosine")
    v.add_argument("--max-wer", type=float, default=None, help="gate: maximum transcript WER against float (0-1)")
    v.add_argument("--language", default=None)
    v.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    v.add_argument("--threads", type=int, default=2)
    v.set_defaults(func=_cmd_validate)


def _check_mdla_target(args: argparse.Namespace) -> None:
    """Refuses an unknown --check-mdla BOARD before any work."""
    if args.check_mdla:
        from .tools.mdla_check import parse_target

        parse_target(args.check_mdla)


def _check_mdla(args: argparse.Namespace, folder: str) -> None:
    """--check-mdla: the pre-flight on every TFLite file under `folder`; report to stdout, JSON beside."""
    if args.check_mdla:
        from .tools.mdla_check import JSON_NAME, run_check

        _, text = run_check(folder, args.check_mdla, json_path=os.path.join(folder, JSON_NAME))
        print(text)
        print(f"MDLA pre-flight: {os.path.join(folder, JSON_NAME)}")


def _cmd_export(args: argparse.Namespace) -> int:
    from .tools.export import export_bundle

    _check_mdla_target(args)

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    soc = None if args.soc in (None, "", "none") else args.soc
    b = export_bundle(args.model, args.output_dir, formats=formats, opset=args.opset, checkpoint=not args.no_checkpoint,
                      soc=soc, log=lambda m: print(m, file=sys.stderr))
    for kind, art in b.artifacts.items():
        print(f"{kind}: {b.root / art.file}")
        cmd = art.extra.get("compiler", {}).get("command")
        if cmd:
            print("  compile: " + " ".join(cmd))
    if args.decoder_subgraphs:
        from .tools.export_decoder import add_decoder_subgraphs

        kinds = [k.strip() for k in args.decoder_subgraphs.split(",") if k.strip()]
        beams = [int(v) for v in args.beams.split(",") if v.strip()]
        quant = None if args.decoder_quantize == "none" else args.decoder_quantize
        entries = add_decoder_subgraphs(args.output_dir, args.model, kinds=kinds, batches=beams, quantize=quant,
                                        calibration=args.calibration, soc=soc, log=lambda m: print(m, file=sys.stderr))
        print(f"decoder subgraphs: {len(entries)} in {args.output_dir} (manifest decoder.subgraphs)")
        if entries and "compiler" in entries[0]:
            print("  compile each: " + " ".join(entries[0]["compiler"]["command"]) + "  (and so on)")
    _check_mdla(args, args.output_dir)
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from .tools.quantize.pipeline import quantize_bundle

    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    _check_mdla_target(args)
    soc = None if args.soc in (None, "", "none") else args.soc
    summary = quantize_bundle(args.bundle, args.calibration, args.scheme, args.output_dir,
                              formats=[f.strip() for f in args.format.split(",") if f.strip()], soc=soc,
                              max_windows=args.max_windows, target_db=args.target_db,
                              max_wer_vs_float=args.max_wer_vs_float, run_compiler=not args.no_compile,
                              threads=args.threads, host_check=not args.no_host_check, log=say)
    print(f"scheme {summary['scheme']}: int8 share of encoder MACs {100 * summary['int8_mac_share']:.0f} %")
    failed = [k for k, a in summary["artifacts"].items() if not a.get("host_check", {}).get("pass", True)]
    for kind, a in summary["artifacts"].items():
        io = a["io"]
        desc = ", ".join(f"{r} {io[r]['dtype']}" + (f" scale {io[r]['scale']:.6g} zero point {io[r]['zero_point']}"
                                                   if "scale" in io[r] else "") for r in ("input", "output"))
        print(f"{kind}: {a['file']} ({desc})")
        if a.get("host_check"):
            hc = a["host_check"]
            print(f"  host check (integer kernels, calibration window 0): SQNR {hc['sqnr_db']:.1f} dB, cosine "
                  f"{hc['cosine']:.4f}: {'pass' if hc['pass'] else 'FAIL'}")
        if a.get("ncc"):
            print("  ncc-tflite: " + " ".join(a["ncc"]))
    if args.report:
        from .tools.quantize.calibrate import build_windows
        from .tools.report import build_report

        w = build_windows(args.calibration, max_windows=args.max_windows,
                          cache=os.path.join(args.bundle, ".calibration", "windows.npz"))
        paths = build_report(args.bundle, summary["scheme"], args.report, calibration=w, threads=args.threads, log=say)
        print(f"report: {paths['html']}")
    _check_mdla(args, args.output_dir)
    if failed:
        print(f"FAILED host check: {', '.join(failed)} (do not compile; see the SQNR above)", file=sys.stderr)
        return 3
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from .tools.validate import Gate, format_result, validate

    fmt = None
    if any(v is not None for v in (args.dtype, args.scale, args.zero_point, args.layout)):
        fmt = {"dtype": args.dtype or "float32", "scale": args.scale, "zero_point": args.zero_point,
               "layout": args.layout or "ntc"}
    gate = Gate()
    changes = {k: v for k, v in (("min_sqnr_db", args.min_sqnr), ("min_cosine", args.min_cosine),
                                 ("max_wer", args.max_wer)) if v is not None}
    if changes:
        gate = dataclasses.replace(gate, **changes)
    r = validate(args.audio, model=args.model, encoder_output=args.encoder_output, encoder_model=args.encoder_model,
                 output_format=fmt, bundle=args.bundle, host_model=args.host_model, gate=gate, threads=args.threads,
                 language=args.language)
    print(format_result(r))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1, default=float)
    return 0 if r["passed"] else 1


def _encoder_options(args: argparse.Namespace) -> dict:
    """load_model keyword arguments for the encoder backend options given on the command line."""
    fmt = None
    if any(v is not None for v in (args.encoder_output_dtype, args.scale, args.zero_point, args.layout)):
        fmt = {"dtype": args.encoder_output_dtype or "float32", "scale": args.scale, "zero_point": args.zero_point,
               "layout": args.layout or "ntc"}
    from .backends import EncoderOptions

    return {"encoder_options": EncoderOptions(
        encoder_model=args.encoder_model, encoder_output=tuple(args.encoder_output or ()), encoder_output_format=fmt,
        neuron_qos=args.neuron_qos, neuron_api=args.neuron_api, self_test=not args.no_self_test,
        npu_fallback=args.npu_fallback,
        providers=_providers(args.providers))}


def _providers(text: Optional[str]) -> Optional[tuple[Any, ...]]:
    from .backends.onnxruntime import parse_providers

    return parse_providers(text) if text else None


def _cmd_bench(args: argparse.Namespace) -> int:
    from .tools.bench import run_bench

    report = run_bench(args.audio, args.model, backend=args.backend, compute_type=args.compute_type,
                       threads=args.threads or None, beam_size=args.beam_size, cpu_affinity=args.cpu_affinity,
                       language=args.language, decoder_offload=args.decoder_offload,
                       decoder_subgraphs=args.decoder_subgraphs, load_options=_encoder_options(args))
    print(report.to_json() if args.json else report.format())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .tools.doctor import format_checklist, format_report, run_doctor

    report = run_doctor(dla=args.dla, model=args.model, decoder_subgraphs=args.decoder_subgraphs,
                        decoder_offload=args.decoder_offload, onnx_model=args.onnx)
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2))
    elif args.checklist:
        print(format_checklist(report))
    else:
        print(format_report(report))
    return 1 if report.failed else 0


def _cmd_mel(args: argparse.Namespace) -> int:
    from .tools.device_files import write_mel_files

    paths = write_mel_files(args.audio, args.output_dir, n_mels=args.n_mels, dtype=args.dtype, scale=args.scale,
                            zero_point=args.zero_point, layout=args.layout)
    for p in paths:
        print(p)
    return 0


WORD_OPTIONS = ("highlight_words", "max_line_count", "max_line_width", "max_words_per_line")  # the writers'


def _note(message: str) -> None:
    print(f"whisper-genio: note: {message}", file=sys.stderr)


def _temperatures(args: argparse.Namespace) -> tuple[float, ...]:
    """openai-whisper's schedule: --temperature, then up to 1.0 by the increment."""
    step = args.temperature_increment_on_fallback
    if step is None:
        return (args.temperature,)
    if not (math.isfinite(step) and step > 0):
        raise InvalidOptionError(f"--temperature_increment_on_fallback must be a number > 0 or None, got {step!r}")
    # An empty schedule (a first temperature above 1.0, or NaN) leaves the first temperature alone,
    # for the decoder's own check to judge.
    temps = tuple(round(t, 6) for t in _frange(args.temperature, 1.0 + 1e-6, step))
    return temps or (args.temperature,)


def _transcribe_options(args: argparse.Namespace) -> dict:
    """transcribe()'s keyword arguments; checked (TranscribeOptions) before any work."""
    from .tokenizer import normalize_language
    from .transcription.options import split_transcribe_kwargs

    if args.language is not None:
        try:
            normalize_language(args.language)
        except InvalidOptionError as e:
            raise InvalidOptionError(f"--language: {e}") from None
    options = dict(
        verbose=None if args.quiet else args.verbose, language=args.language, task=args.task,
        temperature=_temperatures(args), best_of=args.best_of, beam_size=args.beam_size, patience=args.patience,
        length_penalty=args.length_penalty, suppress_tokens=args.suppress_tokens,
        initial_prompt=args.initial_prompt, carry_initial_prompt=args.carry_initial_prompt,
        condition_on_previous_text=args.condition_on_previous_text,
        compression_ratio_threshold=args.compression_ratio_threshold,
        logprob_threshold=args.logprob_threshold, no_speech_threshold=args.no_speech_threshold,
        clip_timestamps=args.clip_timestamps, word_timestamps=args.word_timestamps,
        prepend_punctuations=args.prepend_punctuations, append_punctuations=args.append_punctuations,
        hallucination_silence_threshold=args.hallucination_silence_threshold, vad_filter=args.vad_filter,
        vad_parameters=args.vad_parameters, repetition_cutoff=args.repetition_cutoff,
        no_repeat_ngram_size=args.no_repeat_ngram_size, repetition_penalty=args.repetition_penalty,
        trim_window=args.trim_window)
    split_transcribe_kwargs(options)  # raises InvalidOptionError naming the option
    return options


def _check_word_options(args: argparse.Namespace) -> dict:
    """The writers' options, with openai-whisper's rules: they need word timestamps."""
    if not args.word_timestamps:
        for name in WORD_OPTIONS:
            if getattr(args, name):
                raise InvalidOptionError(f"--{name} requires --word_timestamps True")
        if args.hallucination_silence_threshold is not None:
            _note("--hallucination_silence_threshold has no effect without --word_timestamps True")
    for name in ("max_line_width", "max_line_count", "max_words_per_line"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise InvalidOptionError(f"--{name} must be a positive integer or None, got {value}")
    if args.max_line_count and not args.max_line_width:
        _note("--max_line_count has no effect without --max_line_width")
    if args.max_words_per_line and args.max_line_width:
        _note("--max_words_per_line has no effect with --max_line_width")
    return {name: getattr(args, name) for name in WORD_OPTIONS}


def _model_name(args: argparse.Namespace) -> str:
    """--model, or its openai-whisper checkpoint in --model_dir (DIR/NAME.pt, as openai-whisper saves it)."""
    if args.model_dir is None:
        return args.model
    from .checkpoints.locate import ALIASES

    if not os.path.isdir(args.model_dir):
        raise InvalidOptionError(f"--model_dir {args.model_dir!r} is not a directory")
    candidate = os.path.join(args.model_dir, f"{ALIASES.get(args.model, args.model)}.pt")
    return candidate if os.path.isfile(candidate) else args.model


def _prepare_output_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidOptionError(f"--output_dir {path!r} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise InvalidOptionError(f"--output_dir {path!r} can't be created: {e.strerror or e}") from None


def output_stems(paths: Sequence[str]) -> list[str]:
    """The output file name (without extension) of each input: its base name without extension,
    except that an input whose name an earlier input already has (a/clip.wav, b/clip.mp3) gets
    NAME-2, NAME-3, ...: the first free one that no input is named. Compared without case, for
    the file systems that ignore it."""
    bases = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    reserved = {b.casefold() for b in bases}
    taken: set[str] = set()
    stems = []
    for base in bases:
        stem = base
        if stem.casefold() in taken:
            n = 2
            while f"{base}-{n}".casefold() in reserved or f"{base}-{n}".casefold() in taken:
                n += 1
            stem = f"{base}-{n}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def _message(error: BaseException, path: Optional[str] = None) -> str:
    """The error for the user: an OSError without its errno, and the path once."""
    if isinstance(error, OSError) and error.strerror:
        message = error.strerror
        if error.filename is not None and str(error.filename) not in message:
            message = f"{error.filename}: {message}"
    else:
        message = str(error) or type(error).__name__
    if path is not None and path not in message:
        message = f"{path}: {message}"
    return message


def _failure(args: argparse.Namespace, path: Optional[str], error: BaseException) -> None:
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    print(f"whisper-genio: error: {_message(error, path)} (skipped)", file=sys.stderr)


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from . import load_model
    from .audio import load_audio

    if not args.audio and not args.encoder_output:
        raise InvalidOptionError("give audio files to transcribe, or --encoder-output files to replay")
    if args.encoder_output and len(args.audio) > 1:
        raise InvalidOptionError("replay takes at most one audio file: the recording the --encoder-output files encode")
    # Every option is checked before any file is read or the model loaded.
    options = _transcribe_options(args)
    writer_options = _check_word_options(args)
    if args.device != "cpu":
        _note(f"--device {args.device} does not apply: whisper_genio decodes on the CPU and runs the encoder "
              f"on --backend ({args.backend}); continuing")
    if args.fp16 is not None:
        _note("--fp16 does not apply: the precision is --compute-type (auto = float32; float16, int8, ...)")
    name = _model_name(args)
    _prepare_output_dir(args.output_dir)
    writer = get_writer(args.output_format, args.output_dir)
    paths: list[Optional[str]] = list(args.audio) or [None]
    stems = output_stems([p if p is not None else args.encoder_output[0] for p in paths])
    for path, stem in zip(paths, stems):
        if path is not None and stem != os.path.splitext(os.path.basename(path))[0]:
            _note(f"{path} has the name of an earlier input: its files are {os.path.join(args.output_dir, stem)}.*")

    model = None
    failed = 0
    for path, stem in zip(paths, stems):
        try:
            samples = None if path is None else load_audio(path)
        except (WhisperGenioError, OSError) as e:
            _failure(args, path, e)
            failed += 1
            continue
        if model is None:  # loaded once the first input is read: a batch of bad inputs fails fast
            model = load_model(name, backend=args.backend, compute_type=args.compute_type,
                               threads=args.threads or None, cpu_affinity=args.cpu_affinity,
                               decoder_offload=args.decoder_offload, decoder_subgraphs=args.decoder_subgraphs,
                               **_encoder_options(args))
        try:
            try:
                result = model.transcribe(samples, **options)
            except TranscriptionInterrupted as stop:  # keep the windows that finished, then stop
                _keep_partial(stop.partial, path or args.encoder_output[0], stem, writer, writer_options)
                raise
            writer(result, path or args.encoder_output[0], output_name=stem, **writer_options)
        except (WhisperGenioError, OSError) as e:
            _failure(args, path, e)
            failed += 1
            continue
        if model.pipeline.window_count >= 0 and not args.quiet:  # a backend replaying a device's outputs
            _print_window_report(args, model, path)
    if failed:
        print(f"whisper-genio: {failed} of {len(paths)} input(s) failed", file=sys.stderr)
        return 2
    return 0


def _keep_partial(partial: dict, source: str, stem: str, writer, writer_options: dict) -> None:
    """Ctrl-C in a long recording: its finished segments are written (whole: each writer writes
    a temporary file, then renames it), and stderr says up to where."""
    segments = partial.get("segments") or []
    if not segments:
        return
    try:
        writer(partial, source, output_name=stem, **writer_options)
    except OSError as e:
        print(f"whisper-genio: {source}: the finished segments could not be written: {e}", file=sys.stderr)
        return
    print(f"whisper-genio: {source}: kept the {len(segments)} finished segment(s), up to "
          f"{format_timestamp(segments[-1]['end'])}", file=sys.stderr)


def _print_window_report(args: argparse.Namespace, model, audio: Optional[str]) -> None:
    """Each replayed window's file and span; with the audio, its cosine against the CPU encoder."""
    from . import load_model
    from .tools.device_files import compare_windows

    reference = None
    if audio is not None:
        reference = load_model(_model_name(args), backend="cpu", threads=args.threads or None, cpu_affinity=args.cpu_affinity)
    for w in compare_windows(model, audio, reference):
        line = f"window {w['window']} ({w['file']}): {format_timestamp(w['start'])} --> {format_timestamp(w['end'])}"
        if "cosine" in w:
            verdict = "matches" if w["cosine"] >= 0.99 else "DIFFERS FROM"
            line += (f", cosine {w['cosine']:.5f} vs the CPU encoder ({verdict} it; max |diff| "
                     f"{w['max_abs_diff']:.3g}; mel convention: {w['mel_convention']})")
        print(line, file=sys.stderr)


def _frange(start: float, stop: float, step: float):
    value = start
    while value < stop:
        yield value
        value += step


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (WhisperGenioError, FileNotFoundError) as e:
        if args.debug:
            raise
        print(f"whisper-genio: error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what finished is written (whole); the rest is not started
        print("whisper-genio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
