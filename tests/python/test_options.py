"""Every public option is defined once and rejected once: one validator, one message that names
the option, raised before any audio or weights are touched."""

from __future__ import annotations

import math

import pytest

import whisper_genio
from whisper_genio import _core
from whisper_genio.cli import main
from whisper_genio.errors import InvalidOptionError, ModelLoadError
from whisper_genio.transcription.options import NATIVE_FIELDS, DecodingOptions, TranscribeOptions

NO_AUDIO = "/nonexistent/whisper_genio/never-read.wav"

# (option, bad value): the decoding options the native loop reads.
NATIVE_BAD = [
    ("temperature", -0.1), ("temperature", math.inf), ("temperature", math.nan), ("temperature", "hot"),
    ("sample_len", 0), ("sample_len", 2**40), ("sample_len", 1.5),
    ("best_of", 0), ("best_of", 10**9),
    ("beam_size", 0), ("beam_size", 1000), ("beam_size", 2**31), ("beam_size", "5"),
    ("patience", 0.0), ("length_penalty", 2.0), ("length_penalty", "x"),
    ("suppress_blank", "yes"), ("without_timestamps", 1),
    ("max_initial_timestamp", -1.0), ("max_initial_timestamp", math.nan), ("max_initial_timestamp", math.inf),
    ("seed", -1), ("seed", 2**64), ("seed", 0.5),
    ("repetition_penalty", 0.0), ("repetition_penalty", -1.0), ("repetition_penalty", math.nan),
    ("repetition_penalty", 1e300), ("repetition_penalty", "x"),
    ("no_repeat_ngram_size", -1), ("no_repeat_ngram_size", 449), ("no_repeat_ngram_size", 1.5),
    ("repetition_cutoff", 1), ("repetition_cutoff", 449), ("repetition_cutoff", "x"),
]
# Options that only exist together with another (the combination names both).
COMBINED_BAD = [
    ({"beam_size": 5, "best_of": 5, "temperature": 0.0}, ("beam_size", "best_of")),
    ({"best_of": 2}, ("best_of",)),  # greedy (T=0) with best_of
    ({"patience": 2.0}, ("patience", "beam_size")),
    ({"beam_size": 5, "patience": math.inf}, ("patience",)),
    ({"beam_size": 5, "patience": 0.01}, ("patience",)),
    ({"beam_size": 5, "temperature": 0.5}, ("beam_size", "temperature")),
]
# The text options, defined in Python.
TEXT_BAD = [
    ("task", "summarize"), ("language", 42), ("prompt", 123), ("prompt", [1, "a"]), ("prefix", 1.5),
    ("suppress_tokens", "abc"), ("suppress_tokens", [1.5]), ("fp16", "no"),
]
# The long-form policy of transcribe().
TRANSCRIBE_BAD = [
    ("temperature", (0.0, "x")), ("temperature", ()), ("temperature", (0.0, math.inf)), ("temperature", "hot"),
    ("compression_ratio_threshold", "x"), ("logprob_threshold", "x"), ("logprob_threshold", math.nan),
    ("no_speech_threshold", "x"), ("condition_on_previous_text", "yes"), ("carry_initial_prompt", 1),
    ("initial_prompt", 123), ("clip_timestamps", "nan"), ("clip_timestamps", "inf"), ("clip_timestamps", 1e308),
    ("clip_timestamps", [[1]]), ("clip_timestamps", None), ("clip_timestamps", "-1"), ("clip_timestamps", ["1.5"]),
    ("clip_timestamps", [True]), ("clip_timestamps", [{"start": 1.0}]), ("clip_timestamps", [{"start": "1", "end": 2}]),
    ("clip_timestamps", [{"start": math.nan, "end": 2}]), ("clip_timestamps", [{"start": 0, "end": 5}, 7.0]),
    ("best_of", 0),
    ("verbose", "loud"),
]


def test_defaults_come_from_the_native_options():
    native = _core.DecodingOptions()
    ours = DecodingOptions()
    for name in NATIVE_FIELDS:
        assert getattr(ours, name) == getattr(native, name), name
    assert ours.beam_size is None and ours.max_initial_timestamp == 1.0  # openai-whisper's


@pytest.mark.parametrize("name,value", NATIVE_BAD, ids=[f"{n}={v!r}" for n, v in NATIVE_BAD])
def test_native_options_are_rejected_by_the_native_check_alone(name, value):
    with pytest.raises(InvalidOptionError) as ours:
        DecodingOptions(**{name: value})
    with pytest.raises(InvalidOptionError) as native:
        _core.DecodingOptions(**{name: value}).check()
    assert name in str(ours.value)
    assert str(ours.value) == str(native.value)  # one validator: the same message, word for word


@pytest.mark.parametrize("options,names", COMBINED_BAD, ids=[str(o) for o, _ in COMBINED_BAD])
def test_combinations_name_each_option(options, names):
    with pytest.raises(InvalidOptionError) as e:
        DecodingOptions(**options)
    assert all(n in str(e.value) for n in names), str(e.value)


@pytest.mark.parametrize("name,value", TEXT_BAD, ids=[f"{n}={v!r}" for n, v in TEXT_BAD])
def test_text_options(name, value):
    with pytest.raises(InvalidOptionError, match=name):
        DecodingOptions(**{name: value})


@pytest.mark.parametrize("name,value", TRANSCRIBE_BAD, ids=[f"{n}={v!r}" for n, v in TRANSCRIBE_BAD])
def test_transcribe_options(name, value):
    with pytest.raises(InvalidOptionError) as e:
        TranscribeOptions(**{name: value})
    assert name in str(e.value) or (name == "temperature" and "temperature" in str(e.value)), str(e.value)


def test_good_values_pass():
    DecodingOptions(temperature=0.5, best_of=3, sample_len=10, seed=2**64 - 1, max_initial_timestamp=None)
    DecodingOptions(beam_size=5, patience=1.5, length_penalty=0.0)
    TranscribeOptions(temperature=(0.0, 0.5), logprob_threshold=None, clip_timestamps=[0, 5.5], best_of=5)
    # openai-whisper's meaning: past the last timestamp (30 s) the limit no longer limits; the
    # native index is clamped before its cast (tests/cpp/test_logit_filters.cc).
    for seconds in (30.0, 42949672.0, 1e12, 1e308):
        DecodingOptions(max_initial_timestamp=seconds)


def test_clip_timestamps_forms():
    """openai-whisper's "s,e,..." and [s, e, ...], and faster-whisper's [{"start": s, "end": e}, ...]."""
    frames = [(100, 550), (700, 900)]
    for spec in ("1,5.5,7,9", [1, 5.5, 7, 9], (1.0, 5.5, 7.0, 9.0),
                 [{"start": 1, "end": 5.5}, {"start": 7.0, "end": 9.0}]):
        assert TranscribeOptions(clip_timestamps=spec).clip_frames(10**6) == frames, spec
    assert TranscribeOptions(clip_timestamps="3").clip_frames(1000) == [(300, 1000)]  # odd: to the end


BAD_FOR_TRANSCRIBE = [(n, v) for n, v in NATIVE_BAD + TEXT_BAD + TRANSCRIBE_BAD if n != "temperature" or
                      isinstance(v, tuple) or v == "hot"] + [("word_clock", True)]


@pytest.mark.parametrize("name,value", BAD_FOR_TRANSCRIBE, ids=[f"{n}={v!r}" for n, v in BAD_FOR_TRANSCRIBE])
def test_transcribe_rejects_before_reading_audio(base_model, name, value):
    """The audio file does not exist: an InvalidOptionError (not a missing-file error) proves the
    option was checked first."""
    with pytest.raises(InvalidOptionError) as e:
        base_model.transcribe(NO_AUDIO, **{name: value})
    assert name in str(e.value) or name == "temperature", str(e.value)


@pytest.mark.parametrize("kwargs,name", [
    ({"compute_type": "int4"}, "compute_type"), ({"compute_type": 8}, "compute_type"),
    ({"decoder_offload": "everything"}, "decoder_offload"), ({"threads": 0}, "threads"),
    ({"threads": 10**6}, "threads"), ({"threads": "2"}, "threads"), ({"cpu_affinity": "0"}, "cpu_affinity"),
    ({"cpu_affinity": [-1]}, "cpu_affinity"), ({"neuron_qos": "preference=fast"}, "preference"),
    ({"neuron_qos": {"boost": 101}}, "boost"), ({"neuron_qos": "priority"}, "neuron_qos"),
    ({"neuron_qos": {"color": "red"}}, "color"), ({"backend": "tpu"}, "tpu"),
], ids=lambda x: str(x))
def test_load_model_options(base_checkpoint, kwargs, name):
    with pytest.raises(InvalidOptionError) as e:
        whisper_genio.load_model("base", **kwargs)
    assert name in str(e.value), str(e.value)


def test_encoder_option_names_come_from_the_core(base_checkpoint, tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"\0" * 16)
    with pytest.raises(InvalidOptionError, match="neuron_api"):
        whisper_genio.load_model("base", encoder_options=whisper_genio.backends.EncoderOptions(neuron_api="v3"))
    with pytest.raises(InvalidOptionError, match="dtype"):
        whisper_genio.load_model("base", encoder_output=[out], encoder_output_format={"dtype": "int4"})
    assert _core.resolve_compute_type("auto") == "float32"
    assert set(_core.DECODER_OFFLOAD_MODES) == {"none", "linear", "layer", "auto"}


def test_dims_are_checked_by_the_core():
    dims = whisper_genio.ModelDims.for_size("tiny").to_dict()
    for field, value, fragment in [("n_mels", 81, "n_mels"), ("n_text_head", 5, "head count"),
                                   ("n_vocab", 0, "n_vocab"), ("n_audio_ctx", True, "n_audio_ctx"),
                                   ("n_text_layer", 2**40, "n_text_layer")]:
        with pytest.raises(ModelLoadError, match=fragment):
            whisper_genio.ModelDims(**dict(dims, **{field: value}))


@pytest.mark.parametrize("argv,fragment", [
    (["--compute-type", "int4"], "compute-type"), (["--decoder-offload", "all"], "decoder-offload"),
    (["--neuron-api", "v3"], "neuron-api"), (["--encoder-output-dtype", "int4"], "encoder-output-dtype"),
])
def test_cli_choices_are_the_cores(capsys, argv, fragment):
    with pytest.raises(SystemExit) as e:
        main(["transcribe", NO_AUDIO] + argv)
    assert e.value.code == 2 and fragment in capsys.readouterr().err
