"""Model dimensions: the ten numbers that fix a Whisper checkpoint's shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import _core
from .errors import InvalidOptionError

# Sizes of the released checkpoints, as (n_mels, audio state/head/layer, vocab, text state/head/layer).
# n_audio_ctx is 1500 and n_text_ctx 448 for every one of them.
KNOWN_SIZES: dict[str, tuple[int, int, int, int, int, int, int, int]] = {
    "tiny.en": (80, 384, 6, 4, 51864, 384, 6, 4),
    "tiny": (80, 384, 6, 4, 51865, 384, 6, 4),
    "base.en": (80, 512, 8, 6, 51864, 512, 8, 6),
    "base": (80, 512, 8, 6, 51865, 512, 8, 6),
    "small.en": (80, 768, 12, 12, 51864, 768, 12, 12),
    "small": (80, 768, 12, 12, 51865, 768, 12, 12),
    "medium.en": (80, 1024, 16, 24, 51864, 1024, 16, 24),
    "medium": (80, 1024, 16, 24, 51865, 1024, 16, 24),
    "large-v1": (80, 1280, 20, 32, 51865, 1280, 20, 32),
    "large-v2": (80, 1280, 20, 32, 51865, 1280, 20, 32),
    "large-v3": (128, 1280, 20, 32, 51866, 1280, 20, 32),
    "large-v3-turbo": (128, 1280, 20, 32, 51866, 1280, 20, 4),
}


# The cross-attention heads of each released checkpoint whose weights follow the spoken words, as
# (decoder layer, head): what word timestamps read. OpenAI's .pt files do not carry them; Hugging
# Face and CTranslate2 configs do ("alignment_heads").
ALIGNMENT_HEADS: dict[str, tuple[tuple[int, int], ...]] = {
    "tiny.en": ((1, 0), (2, 0), (2, 5), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)),
    "tiny": ((2, 2), (3, 0), (3, 2), (3, 3), (3, 4), (3, 5)),
    "base.en": ((3, 3), (4, 7), (5, 1), (5, 5), (5, 7)),
    "base": ((3, 1), (4, 2), (4, 3), (4, 7), (5, 1), (5, 2), (5, 4), (5, 6)),
    "small.en": ((6, 6), (7, 0), (7, 3), (7, 8), (8, 2), (8, 5), (8, 7), (9, 0), (9, 4), (9, 8), (9, 10), (10, 0),
                 (10, 1), (10, 2), (10, 3), (10, 6), (10, 11), (11, 2), (11, 4)),
    "small": ((5, 3), (5, 9), (8, 0), (8, 4), (8, 7), (8, 8), (9, 0), (9, 7), (9, 9), (10, 5)),
    "medium.en": ((11, 4), (14, 1), (14, 12), (14, 14), (15, 4), (16, 0), (16, 4), (16, 9), (17, 12), (17, 14),
                  (18, 7), (18, 10), (18, 15), (20, 0), (20, 3), (20, 9), (20, 14), (21, 12)),
    "medium": ((13, 15), (15, 4), (15, 15), (16, 1), (20, 0), (23, 4)),
    "large-v1": ((9, 19), (11, 2), (11, 4), (11, 17), (22, 7), (22, 11), (22, 17), (23, 2), (23, 15)),
    "large-v2": ((10, 12), (13, 17), (16, 11), (16, 12), (16, 13), (17, 15), (17, 16), (18, 4), (18, 11), (18, 19),
                 (19, 11), (21, 2), (21, 3), (22, 3), (22, 9), (22, 12), (23, 5), (23, 7), (23, 13), (25, 5), (26, 1),
                 (26, 12), (27, 15)),
    "large-v3": ((7, 0), (10, 17), (12, 18), (13, 12), (16, 1), (17, 14), (19, 11), (21, 4), (24, 1), (25, 6)),
    "large-v3-turbo": ((2, 4), (2, 11), (3, 3), (3, 6), (3, 11), (3, 14)),
}


@dataclass(frozen=True)
class ModelDims:
    """Same fields and meaning as openai-whisper's ``ModelDimensions``."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    def __post_init__(self) -> None:
        _core.check_dims(asdict(self))  # the one validator (csrc/src/model/model_dims.cc)

    @property
    def is_multilingual(self) -> bool:
        return self.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        return self.n_vocab - 51765 - int(self.is_multilingual)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def for_size(cls, name: str) -> "ModelDims":
        """Dimensions of a released checkpoint by name (``tiny`` ... ``large-v3-turbo``)."""
        try:
            n_mels, a_state, a_head, a_layer, vocab, t_state, t_head, t_layer = KNOWN_SIZES[name]
        except KeyError:
            raise InvalidOptionError(f"unknown Whisper size {name!r}; known: {', '.join(KNOWN_SIZES)}") from None
        return cls(n_mels, 1500, a_state, a_head, a_layer, vocab, 448, t_state, t_head, t_layer)

    def alignment_heads(self, name: str = "") -> tuple[tuple[int, int], ...]:
        """The alignment heads of the released checkpoint these dims (and, where two sizes share them,
        the name: large-v1 / large-v2) say this is; else openai-whisper's fallback, every head of the
        second half of the decoder's layers."""
        sizes = [n for n in ALIGNMENT_HEADS if ModelDims.for_size(n) == self]
        named = [n for n in sizes if n in name]
        if len(sizes) == 1 or len(named) == 1:
            return ALIGNMENT_HEADS[(named or sizes)[0]]
        return tuple((layer, head) for layer in range(self.n_text_layer // 2, self.n_text_layer)
                     for head in range(self.n_text_head))
