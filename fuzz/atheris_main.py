"""atheris (coverage-guided) driver for one harness of fuzz/harnesses.py; see fuzz/README.md.

    python fuzz/atheris_main.py <target> [libFuzzer flags: -max_total_time=S -runs=N corpus_dir ...]

The seed corpus is written by the harness module itself into the corpus folder when it is empty.
"""

from __future__ import annotations

import pathlib
import sys

import atheris

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

# The parsers are imported here, inside the block, so their bytecode is instrumented for coverage
# (the harnesses import them lazily).
with atheris.instrument_imports(include=["whisper_genio", "zipfile", "json", "base64"]):
    import harnesses
    import whisper_genio.backends.bundle  # noqa: F401
    import whisper_genio.checkpoints.ctranslate2  # noqa: F401
    import whisper_genio.checkpoints.safetensors  # noqa: F401
    import whisper_genio.checkpoints.torch_zip  # noqa: F401
    import whisper_genio.tokenizer  # noqa: F401
    import whisper_genio.tools.validate  # noqa: F401


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in harnesses.HARNESSES:
        sys.exit(f"usage: {sys.argv[0]} <{'|'.join(harnesses.HARNESSES)}> [libFuzzer flags] [corpus dir]")
    target = sys.argv.pop(1)
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    for folder in corpus[:1]:
        path = pathlib.Path(folder)
        if path.is_file():  # a crash file to reproduce, not a corpus
            break
        path.mkdir(parents=True, exist_ok=True)
        if not any(path.iterdir()):
            for i, seed in enumerate(harnesses.SEEDS[target]()):
                (path / f"seed-{i}").write_bytes(seed)
    atheris.Setup(sys.argv, harnesses.HARNESSES[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
