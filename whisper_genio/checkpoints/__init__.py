"""Whisper checkpoints from three on-disk formats, in one canonical form, without torch.

Formats: openai-whisper ``.pt`` (and any torch.save'd state dict), Hugging Face folders
(safetensors or pytorch_model.bin) and CTranslate2 folders (``model.bin``, possibly split in
parts). Every reader returns a :class:`Checkpoint` whose tensors carry openai-whisper's
``state_dict()`` names and shapes, checked against the model dimensions before it is returned.
"""

from __future__ import annotations

from .canonical import Checkpoint, expected_shapes, sinusoids, validate_tensors
from .locate import ALIASES, find_tokenizer, load_checkpoint, resolve

__all__ = [
    "ALIASES",
    "Checkpoint",
    "expected_shapes",
    "find_tokenizer",
    "load_checkpoint",
    "resolve",
    "sinusoids",
    "validate_tensors",
]
