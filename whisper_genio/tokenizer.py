"""Whisper's byte-level BPE tokenizer with the special-token layout of the Whisper checkpoints.

Two vocabulary sources are supported:

* ``tokenizer.json`` (Hugging Face / CTranslate2 model folders), encoded with the ``tokenizers``
  library;
* an OpenAI ``*.tiktoken`` rank file (``gpt2.tiktoken`` / ``multilingual.tiktoken``), encoded
  with the optional ``tiktoken`` library.

Only the ordinary BPE vocabulary is taken from the file. Special-token ids are derived from the
layout every Whisper checkpoint shares (``<|endoftext|>``, ``<|startoftranscript|>``, one token per
language, task and control tokens, then 1501 timestamps), so the ids are right for every model size
whatever names or extra tokens a particular file carries. Decoding is done here from an
id -> bytes table, which makes both backends render text (including invalid UTF-8 and special
tokens) exactly like openai-whisper's tiktoken-based tokenizer.

The observable behaviour matches ``whisper.tokenizer.Tokenizer`` as produced by
``whisper.tokenizer.get_tokenizer``, with two deliberate differences:

* ``encode`` treats text that looks like a special token (``"<|endoftext|>"``) as ordinary text
  instead of raising, so a user prompt can never inject control tokens;
* ``all_language_tokens`` / ``all_language_codes`` are in id order (openai's order depends on
  set iteration and is not stable between runs).
"""

from __future__ import annotations

import base64
import difflib
import functools
import json
import os
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .errors import InvalidOptionError, ModelLoadError, TokenizerNotFoundError

# --------------------------------------------------------------------------------------------
# Language tables (facts from openai-whisper; the order fixes the language-token ids).
# --------------------------------------------------------------------------------------------

LANGUAGES: dict[str, str] = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ko": "korean",
    "fr": "french",
    "ja": "japanese",
    "pt": "portuguese",
    "tr": "turkish",
    "pl": "polish",
    "ca": "catalan",
    "nl": "dutch",
    "ar": "arabic",
    "sv": "swedish",
    "it": "italian",
    "id": "indonesian",
    "hi": "hindi",
    "fi": "finnish",
    "vi": "vietnamese",
    "he": "hebrew",
    "uk": "ukrainian",
    "el": "greek",
    "ms": "malay",
    "cs": "czech",
    "ro": "romanian",
    "da": "danish",
    "hu": "hungarian",
    "ta": "tamil",
    "no": "norwegian",
    "th": "thai",
    "ur": "urdu",
    "hr": "croatian",
    "bg": "bulgarian",
    "lt": "lithuanian",
    "la": "latin",
    "mi": "maori",
    "ml": "malayalam",
    "cy": "welsh",
    "sk": "slovak",
    "te": "telugu",
    "fa": "persian",
    "lv": "latvian",
    "bn": "bengali",
    "sr": "serbian",
    "az": "azerbaijani",
    "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian",
    "mk": "macedonian",
    "br": "breton",
    "eu": "basque",
    "is": "icelandic",
    "hy": "armenian",
    "ne": "nepali",
    "mn": "mongolian",
    "bs": "bosnian",
    "kk": "kazakh",
    "sq": "albanian",
    "sw": "swahili",
    "gl": "galician",
    "mr": "marathi",
    "pa": "punjabi",
    "si": "sinhala",
    "km": "khmer",
    "sn": "shona",
    "yo": "yoruba",
    "so": "somali",
    "af": "afrikaans",
    "oc": "occitan",
    "ka": "georgian",
    "be": "belarusian",
    "tg": "tajik",
    "sd": "sindhi",
    "gu": "gujarati",
    "am": "amharic",
    "yi": "yiddish",
    "lo": "lao",
    "uz": "uzbek",
    "fo": "faroese",
    "ht": "haitian creole",
    "ps": "pashto",
    "tk": "turkmen",
    "nn": "nynorsk",
    "mt": "maltese",
    "sa": "sanskrit",
    "lb": "luxembourgish",
    "my": "myanmar",
    "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy",
    "as": "assamese",
    "tt": "tatar",
    "haw": "hawaiian",
    "ln": "lingala",
    "ha": "hausa",
    "ba": "bashkir",
    "jw": "javanese",
    "su": "sundanese",
    "yue": "cantonese",
}

_LANGUAGE_ALIASES: dict[str, str] = {
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
}

#: Language name (or alias) -> code.
TO_LANGUAGE_CODE: dict[str, str] = {name: code for code, name in LANGUAGES.items()}
TO_LANGUAGE_CODE.update(_LANGUAGE_ALIASES)

TASKS: tuple[str, ...] = ("transcribe", "translate")

# Languages written without spaces between words: words are split at unicode boundaries.
_SPACELESS_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})

N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s


def normalize_language(value: str) -> str:
    """Return the language code for a code or a language name/alias (case-insensitive).

    >>> normalize_language("German"), normalize_language("de"), normalize_language("Mandarin")
    ('de', 'de', 'zh')
    """
    if not isinstance(value, str):
        raise InvalidOptionError(f"language must be a string, got {type(value).__name__}")
    key = value.strip().lower()
    if key in LANGUAGES:
        return key
    if key in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[key]
    hint = difflib.get_close_matches(key, list(LANGUAGES) + list(TO_LANGUAGE_CODE), n=3, cutoff=0.75)
    suggestion = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
    raise InvalidOptionError(
        f"unsupported language {value!r}{suggestion}; expected a language code such as 'en' "
        f"or a language name such as 'english'"
    )


def _normalize_task(task: str | None) -> str | None:
    if task is None or task in TASKS:
        return task
    raise InvalidOptionError(f"invalid task {task!r}; expected 'transcribe' or 'translate'")


# --------------------------------------------------------------------------------------------
# Special-token layout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Ids of the special tokens, fixed by (multilingual, num_languages)."""

    multilingual: bool
    num_languages: int

    @property
    def eot(self) -> int:
        return 50257 if self.multilingual else 50256

    @property
    def sot(self) -> int:
        return self.eot + 1

    @property
    def translate(self) -> int:
        return self.sot + 1 + self.num_languages

    # The remaining ids follow <|translate|> in this fixed order.
    @property
    def transcribe(self) -> int:
        return self.translate + 1

    @property
    def sot_lm(self) -> int:
        return self.translate + 2

    @property
    def sot_prev(self) -> int:
        return self.translate + 3

    @property
    def no_speech(self) -> int:
        return self.translate + 4

    @property
    def no_timestamps(self) -> int:
        return self.translate + 5

    @property
    def timestamp_begin(self) -> int:
        return self.translate + 6

    @property
    def n_vocab(self) -> int:
        return self.timestamp_begin + N_TIMESTAMPS

    @property
    def language_codes(self) -> tuple[str, ...]:
        return tuple(LANGUAGES)[: self.num_languages]

    def special_names(self) -> list[str]:
        """``<|...|>`` strings of ids eot, eot+1, ..., n_vocab-1."""
        names = ["<|endoftext|>", "<|startoftranscript|>"]
        names += [f"<|{code}|>" for code in self.language_codes]
        names += [
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nospeech|>",
            "<|notimestamps|>",
        ]
        # Same float formatting as openai-whisper, so e.g. id for 0.07 s prints "<|0.07|>".
        names += [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]
        return names


# --------------------------------------------------------------------------------------------
# Backends: an encoder function plus the bytes of each ordinary token
# --------------------------------------------------------------------------------------------


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2 byte-level alphabet, inverted: printable character -> the byte it stands for.

    Bytes that are visible Latin-1 characters stand for themselves; the other 68 bytes are
    mapped, in increasing order, onto code points 256, 257, ...
    """
    visible = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    visible_set = set(visible)
    char_to_byte = {chr(b): b for b in visible}
    extra = 0
    for b in range(256):
        if b not in visible_set:
            char_to_byte[chr(256 + extra)] = b
            extra += 1
    return char_to_byte


@dataclass
class _Backend:
    """Everything loaded from a vocabulary file; shared by all Tokenizer copies made from it."""

    source: str
    kind: str  # "tokenizers" or "tiktoken"
    encode: Callable[[str], list[int]]
    token_bytes: list[bytes]  # bytes of ids 0 .. eot-1
    # Per-layout derived data (id -> bytes table, special-token names, non-speech ids), so
    # with_options() copies cost nothing.
    cache: dict[Any, Any] = field(default_factory=dict)


def _check_regular_ids(ids_to_bytes: dict[int, bytes], eot: int, path: str) -> list[bytes]:
    """The ordinary vocabulary must be exactly ids 0 .. eot-1 for the declared layout."""
    missing = eot - sum(1 for i in ids_to_bytes if 0 <= i < eot)
    if missing or len(ids_to_bytes) != eot:
        kind = "multilingual" if eot == 50257 else "English-only"
        raise ModelLoadError(
            f"tokenizer {path} has {len(ids_to_bytes)} ordinary tokens (max id "
            f"{max(ids_to_bytes, default=-1)}), but the {kind} Whisper layout expects ids "
            f"0..{eot - 1}; is the multilingual flag right for this model?"
        )
    return [ids_to_bytes[i] for i in range(eot)]


def _check_vocab_and_merges(vocab: dict[Any, Any], merges: Any, path: str) -> None:
    """Types of a tokenizer.json BPE model: vocab maps strings to non-negative ints, merges are
    "a b" strings or [a, b] string pairs. Checked up front so a wrong type is named, not met
    later as a TypeError deep inside the merge repair."""
    for token, idx in vocab.items():
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise ModelLoadError(f"tokenizer file {path}: vocab entry {token!r:.60} has id {idx!r:.60}, "
                                 "expected a non-negative integer")
    if not isinstance(merges, list):
        raise ModelLoadError(f"tokenizer file {path}: model.merges is a {type(merges).__name__}, expected a list")
    for i, m in enumerate(merges):
        pair = isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m)
        if not (isinstance(m, str) or pair):
            raise ModelLoadError(f"tokenizer file {path}: model.merges[{i}] is {m!r:.60}, "
                                 "expected an \"a b\" string or an [a, b] pair of strings")


def _repair_merges(merges: Any, vocab: dict[str, int], eot: int) -> list[str]:
    """Return the BPE merges as "a b" strings, adding any a vocabulary token needs.

    Whisper's tokenizer.json files (Hugging Face, CTranslate2) lack the very first GPT-2 merge,
    "Ġ t" (apparently dropped as if it were merges.txt's "#version" header line), so "Ġt" and every token built on it
    (" the", " to", ...) could never be produced and prompts would encode differently from
    openai-whisper. In the GPT-2 layout the merge that makes token id 256+k is the k-th merge,
    so a token with no merge gets one inserted at its place in id order.
    """
    if not isinstance(merges, list):
        raise ModelLoadError("tokenizer.json has no BPE merge list")
    pairs: list[tuple[str, str]] = []
    for m in merges:
        if isinstance(m, str):
            a, sep, b = m.partition(" ")
        else:
            a, b = m
            sep = " "
        if not sep:
            raise ModelLoadError(f"malformed BPE merge {m!r} in tokenizer.json")
        pairs.append((a, b))

    made = [vocab.get(a + b, -1) for a, b in pairs]
    in_id_order = all(x < y for x, y in zip(made, made[1:]))
    alphabet_first = all(len(t) == 1 for t, i in vocab.items() if i < 256)
    if in_id_order and alphabet_first:
        have = set(made)
        id_to_token = {i: t for t, i in vocab.items() if i < eot}
        extra: list[tuple[int, tuple[str, str]]] = []
        for idx in range(256, eot):
            token = id_to_token.get(idx)
            if idx in have or not token or len(token) < 2:
                continue
            splits = [
                (max(vocab[token[:k]], vocab[token[k:]]), (token[:k], token[k:]))
                for k in range(1, len(token))
                if vocab.get(token[:k], eot) < idx and vocab.get(token[k:], eot) < idx
            ]
            if splits:
                extra.append((idx, min(splits)[1]))
        if extra:
            ordered = sorted([*zip(made, pairs), *extra], key=lambda item: item[0])
            pairs = [pair for _, pair in ordered]
    return [f"{a} {b}" for a, b in pairs]


# The pre-tokenizer regex of GPT-2 / Whisper, as openai-whisper gives it to tiktoken. The
# tokenizers backend gets the same split from its ByteLevel pre-tokenizer with use_regex=True.
_PRETOKENIZE_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _load_tokenizers_json(path: str, eot: int) -> _Backend:
    try:
        import tokenizers
    except ImportError as exc:  # a declared dependency, but be explicit
        raise TokenizerNotFoundError(
            f"reading {path} needs the 'tokenizers' package (pip install tokenizers)"
        ) from exc

    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot parse tokenizer file {path}: {exc}") from exc
    except RecursionError:
        raise ModelLoadError(f"cannot parse tokenizer file {path}: JSON nested too deeply") from None
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict):
        raise ModelLoadError(f"tokenizer file {path} has no 'model' object")
    vocab = model.get("vocab")
    if model.get("type", "BPE") != "BPE" or not isinstance(vocab, dict):
        raise ModelLoadError(f"tokenizer file {path} does not hold a byte-level BPE model")
    _check_vocab_and_merges(vocab, model.get("merges"), path)

    alphabet = _byte_level_alphabet()
    ids_to_bytes: dict[int, bytes] = {}
    for token, idx in vocab.items():
        if idx >= eot:
            # Past the ordinary vocabulary only special-looking entries may appear (files often
            # list <|endoftext|> in the model vocab); anything else means a layout mismatch.
            if token == "" or not (token.startswith("<|") and token.endswith("|>")):
                ids_to_bytes[idx] = b""  # counted, so the size check below reports it
            continue
        try:
            ids_to_bytes[idx] = bytes(alphabet[c] for c in token)
        except KeyError:
            raise ModelLoadError(
                f"tokenizer file {path}: token {token!r} is not in the byte-level alphabet"
            ) from None
    token_bytes = _check_regular_ids(ids_to_bytes, eot, path)

    merges = _repair_merges(model.get("merges"), vocab, eot)

    # Rebuild a plain BPE pipeline: no added/special tokens (so "<|en|>" in a prompt is just
    # text), no normalizer or post-processor (which would add <|startoftranscript|> etc.), and
    # the GPT-2 byte-level pre-tokenizer whatever the file says.
    model = dict(model)
    model["merges"] = merges
    model["dropout"] = None
    if "ignore_merges" in model:
        model["ignore_merges"] = False
    plain = {
        "version": spec.get("version", "1.0"),
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        },
        "post_processor": None,
        "decoder": None,
        "model": model,
    }
    try:
        hf = tokenizers.Tokenizer.from_str(json.dumps(plain))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise ModelLoadError(f"cannot load tokenizer file {path}: {exc}") from exc

    def encode(text: str) -> list[int]:
        return hf.encode(text, add_special_tokens=False).ids

    return _Backend(path, "tokenizers", encode, token_bytes)


def _load_tiktoken_ranks(path: str, eot: int) -> _Backend:
    try:
        import tiktoken
    except ImportError as exc:
        raise TokenizerNotFoundError(
            f"reading {path} needs the 'tiktoken' package (pip install 'whisper_genio[tiktoken]')"
        ) from exc

    ranks: dict[bytes, int] = {}
    ids_to_bytes: dict[int, bytes] = {}
    lineno = 0
    try:
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                token_b64, rank_text = line.split()
                token, rank = base64.b64decode(token_b64), int(rank_text)
                if token in ranks:  # tiktoken panics (a BaseException) on a duplicate
                    raise ValueError(f"token {token!r:.40} is listed twice")
                if rank in ids_to_bytes:
                    raise ValueError(f"rank {rank} is given to two tokens")
                ranks[token] = rank
                ids_to_bytes[rank] = token
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot parse tiktoken rank file {path} (line {lineno}): {exc}") from exc
    token_bytes = _check_regular_ids(ids_to_bytes, eot, path)
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:  # byte-level BPE starts from single bytes; tiktoken panics on one it lacks
        raise ModelLoadError(f"tiktoken rank file {path} lacks the single-byte token {bytes([missing[0]])!r} "
                             f"(and {len(missing) - 1} more): not a byte-level BPE vocabulary")

    # No special tokens are registered: the encoder then never produces one, and text that
    # looks like a special token is encoded as ordinary text.
    try:
        encoding = tiktoken.Encoding(
            name=os.path.basename(path),
            pat_str=_PRETOKENIZE_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={},
        )
    except Exception as exc:  # tiktoken's own checks (duplicate ranks ...) raise plain errors
        raise ModelLoadError(f"cannot load tiktoken rank file {path}: {exc}") from exc

    def encode(text: str) -> list[int]:
        return encoding.encode_ordinary(text)

    return _Backend(path, "tiktoken", encode, token_bytes)


@functools.lru_cache(maxsize=8)
def _load_backend(path: str, eot: int, _stamp: tuple[int, int]) -> _Backend:
    # _stamp (size, mtime) makes the cache notice a file replaced in place.
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    if path.endswith(".json") or head.startswith(b"{"):
        return _load_tokenizers_json(path, eot)
    return _load_tiktoken_ranks(path, eot)


def _resolve_tokenizer_path(path: str | os.PathLike[str]) -> str:
    p = os.fspath(path)
    if os.path.isdir(p):
        candidate = os.path.join(p, "tokenizer.json")
        if os.path.isfile(candidate):
            return candidate
        raise TokenizerNotFoundError(f"no tokenizer.json in model folder {p}")
    if not os.path.isfile(p):
        raise TokenizerNotFoundError(f"tokenizer file not found: {p}")
    return p


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

_KEEP: Any = object()  # "argument not given" marker for with_options


class Tokenizer:
    """Whisper tokenizer; see the module docstring.

    Build it with :meth:`from_file`; derive variants with :meth:`with_options`.
    """

    def __init__(
        self,
        backend: _Backend,
        layout: _Layout,
        language: str | None,
        task: str | None,
    ) -> None:
        # Same defaults as openai-whisper's get_tokenizer(): multilingual models default to
        # English transcription; English-only models have neither language nor task tokens.
        task = _normalize_task(task)
        if language is not None:
            language = normalize_language(language)
        if layout.multilingual:
            language = language or "en"
            task = task or "transcribe"
            if language not in layout.language_codes:
                raise InvalidOptionError(
                    f"language {language!r} ({LANGUAGES[language]}) is not supported by this "
                    f"model, which knows {layout.num_languages} languages"
                )
        else:
            language = None
            task = None

        self._backend = backend
        self._layout = layout
        self.language: str | None = language
        self.task: str | None = task
        self.multilingual: bool = layout.multilingual
        self.num_languages: int = layout.num_languages

        key = ("tables", layout)
        if key not in backend.cache:
            names = layout.special_names()
            # One table for every id, so decode is a single join.
            backend.cache[key] = (names, backend.token_bytes + [n.encode("ascii") for n in names])
        self._special_names: list[str]
        self._id_bytes: list[bytes]
        self._special_names, self._id_bytes = backend.cache[key]

        seq = [layout.sot]
        if language is not None:
            seq.append(self.to_language_token(language))
        if task is not None:
            seq.append(layout.transcribe if task == "transcribe" else layout.translate)
        self.sot_sequence: tuple[int, ...] = tuple(seq)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        multilingual: bool,
        num_languages: int,
        language: str | None = None,
        task: str | None = None,
    ) -> "Tokenizer":
        """Load ``tokenizer.json`` (or a folder holding one) or an OpenAI ``*.tiktoken`` file.

        ``multilingual`` and ``num_languages`` come from the model (see ``ModelDims``) and fix
        the special-token ids.
        """
        if not isinstance(num_languages, int) or not 1 <= num_languages <= len(LANGUAGES):
            raise InvalidOptionError(
                f"num_languages must be between 1 and {len(LANGUAGES)}, got {num_languages!r}"
            )
        layout = _Layout(bool(multilingual), num_languages)
        resolved = os.path.abspath(_resolve_tokenizer_path(path))
        st = os.stat(resolved)
        backend = _load_backend(resolved, layout.eot, (st.st_size, st.st_mtime_ns))
        return cls(backend, layout, language, task)

    def with_options(self, *, language: str | None = _KEEP, task: str | None = _KEEP) -> "Tokenizer":
        """A copy with another language and/or task (the vocabulary is shared, not reloaded)."""
        return Tokenizer(
            self._backend,
            self._layout,
            self.language if language is _KEEP else language,
            self.task if task is _KEEP else task,
        )

    def __repr__(self) -> str:
        return (
            f"Tokenizer(source={self._backend.source!r}, backend={self._backend.kind!r}, "
            f"multilingual={self.multilingual}, num_languages={self.num_languages}, "
            f"language={self.language!r}, task={self.task!r})"
        )

    # -- encode / decode ----------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return self._layout.n_vocab

    @property
    def special_tokens(self) -> dict[str, int]:
        """``"<|...|>"`` -> id for every special token, timestamps included (a fresh dict)."""
        eot = self._layout.eot
        return {name: eot + i for i, name in enumerate(self._special_names)}

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text``; never produces special tokens."""
        return self._backend.encode(text)

    def _bytes_of(self, ids: list[int]) -> bytes:
        table = self._id_bytes
        if ids and (min(ids) < 0 or max(ids) >= len(table)):
            bad = [i for i in ids if not 0 <= i < len(table)]
            raise ValueError(f"token ids out of range [0, {len(table)}): {bad[:5]}")
        return b"".join([table[i] for i in ids])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; timestamp tokens are dropped, other special tokens shown as ``<|..|>``."""
        ts = self._layout.timestamp_begin
        return self._bytes_of([i for i in _as_int_list(ids) if i < ts]).decode("utf-8", "replace")

    def decode_with_timestamps(self, ids: Sequence[int]) -> str:
        """Like :meth:`decode` but timestamps are kept, rendered as e.g. ``<|1.08|>``."""
        return self._bytes_of(_as_int_list(ids)).decode("utf-8", "replace")

    # -- special tokens -----------------------------------------------------------------------

    @property
    def eot(self) -> int:
        return self._layout.eot

    @property
    def sot(self) -> int:
        return self._layout.sot

    @property
    def sot_prev(self) -> int:
        return self._layout.sot_prev

    @property
    def sot_lm(self) -> int:
        return self._layout.sot_lm

    @property
    def no_speech(self) -> int:
        return self._layout.no_speech

    @property
    def no_timestamps(self) -> int:
        return self._layout.no_timestamps

    @property
    def timestamp_begin(self) -> int:
        return self._layout.timestamp_begin

    @property
    def transcribe(self) -> int:
        return self._layout.transcribe

    @property
    def translate(self) -> int:
        return self._layout.translate

    @property
    def language_token(self) -> int:
        """Id of this tokenizer's language token."""
        if self.language is None:
            raise InvalidOptionError("this tokenizer has no language (English-only model)")
        return self.to_language_token(self.language)

    def to_language_token(self, language: str) -> int:
        """Id of ``<|language|>``; ``KeyError`` if the model has no such language (as openai)."""
        try:
            index = self._layout.language_codes.index(language)
        except ValueError:
            raise KeyError(f"Language {language} not found in tokenizer.") from None
        return self._layout.sot + 1 + index

    @property
    def all_language_tokens(self) -> tuple[int, ...]:
        first = self._layout.sot + 1
        return tuple(range(first, first + self.num_languages))

    @property
    def all_language_codes(self) -> tuple[str, ...]:
        return self._layout.language_codes

    @property
    def sot_sequence_including_notimestamps(self) -> tuple[int, ...]:
        return self.sot_sequence + (self.no_timestamps,)

    @property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Ids to suppress so the model does not emit speaker tags or non-speech annotations
        (``♪♪♪``, ``( SPEAKING FOREIGN LANGUAGE )``, ``[DAVID]``), while basic punctuation stays
        allowed. Same set as openai-whisper's ``Tokenizer.non_speech_tokens``."""
        cache = self._backend.cache
        key = ("non_speech", self._layout.eot)
        if key not in cache:
            cache[key] = self._compute_non_speech_tokens()
        return cache[key]

    def _compute_non_speech_tokens(self) -> tuple[int, ...]:
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        # Musical symbols (U+2640..U+267F block): when one takes several tokens its first token
        # is suppressed anyway; in UTF-8 they all share their first two bytes.
        music = "♩♪♫♬♭♮♯"
        enc = self.encode
        # "-" and "'" stay allowed inside words, only their word-initial forms are suppressed.
        found = {enc(" -")[0], enc(" '")[0]}
        for symbol in symbols + list(music):
            for ids in (enc(symbol), enc(" " + symbol)):
                if len(ids) == 1 or symbol in music:
                    found.add(ids[0])
        return tuple(sorted(found))

    # -- word splitting (used for word-level timestamps) ---------------------------------------

    def split_to_word_tokens(self, tokens: Sequence[int]) -> tuple[list[str], list[list[int]]]:
        """Split ``tokens`` into words: at unicode boundaries for languages written without
        spaces (zh, ja, th, lo, my, yue), else at spaces and punctuation."""
        tokens = _as_int_list(tokens)
        if self.language in _SPACELESS_LANGUAGES:
            return self._split_on_unicode(tokens)
        return self._split_on_spaces(tokens)

    def _split_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        # A group of tokens ends where its text decodes to whole characters: either no U+FFFD
        # appears, or the first U+FFFD is also present in the full decoding (a genuinely
        # undecodable byte, not a character cut in half).
        full = self.decode_with_timestamps(tokens)
        words: list[str] = []
        groups: list[list[int]] = []
        pending: list[int] = []
        offset = 0
        for token in tokens:
            pending.append(token)
            text = self.decode_with_timestamps(pending)
            bad = text.find("\ufffd")
            if bad < 0 or (offset + bad < len(full) and full[offset + bad] == "\ufffd"):
                words.append(text)
                groups.append(pending)
                pending = []
                offset += len(text)
        return words, groups

    def _split_on_spaces(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        words: list[str] = []
        groups: list[list[int]] = []
        for text, group in zip(*self._split_on_unicode(tokens)):
            # A subword starts a new word if it is special, begins with a space, or is
            # punctuation. Punctuation is openai's substring test against string.punctuation,
            # so "" and runs like "()" count too.
            starts_word = (
                group[0] >= self.eot
                or text.startswith(" ")
                or text.strip() in string.punctuation
                or not words
            )
            if starts_word:
                words.append(text)
                groups.append(group)
            else:
                words[-1] += text
                groups[-1].extend(group)
        return words, groups


def _as_int_list(ids: Sequence[int] | Any) -> list[int]:
    """Accept lists, tuples, numpy arrays and torch tensors of ids."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return [int(i) for i in ids]


__all__ = [
    "LANGUAGES",
    "TO_LANGUAGE_CODE",
    "TASKS",
    "Tokenizer",
    "normalize_language",
]
