#!/bin/sh
# Long fuzzing run of one parser harness: fuzz/run.sh <target> <seconds> [extra libFuzzer flags]
# Targets: safetensors torch_zip tokenizer_json tiktoken manifest ctranslate2 device_output
# Uses atheris (pip install atheris) when it is importable, else the seeded mutation loop of
# fuzz/harnesses.py. The corpus grows in fuzz/corpus/<target> (not committed); crashes are
# written by libFuzzer as crash-* files in the current folder.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${1:?usage: fuzz/run.sh <target> <seconds> [libFuzzer flags]}
seconds=${2:?usage: fuzz/run.sh <target> <seconds> [libFuzzer flags]}
shift 2
python=${PYTHON:-python3}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
if "$python" -c "import atheris" 2>/dev/null; then
  mkdir -p "$here/corpus/$target"
  exec "$python" "$here/atheris_main.py" "$target" -max_total_time="$seconds" -rss_limit_mb=4096 \
    -timeout=20 "$@" "$here/corpus/$target"
fi
echo "atheris is not installed: running the plain mutation loop instead" >&2
exec "$python" -c "
import sys; sys.path.insert(0, '$here')
import harnesses
n = harnesses.run_mutations('$target', 10**12, float('$seconds'), seed=int('${SEED:-0}'))
print(f'$target: {n} inputs, no escape')
"
