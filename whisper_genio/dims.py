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
