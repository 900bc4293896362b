#!/usr/bin/env bash
# Wheels that bench/gpu_check.sh needs on the lent GPU machine and its image lacks (PyAV: the
# frame store and the synthetic videos), for its Python 3.12, downloaded here into .whl/ (kept
# out of git). gpu_check.sh installs .whl/*.whl into /tmp/site when the folder is there; the
# device call names .whl in `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
AV=${AV_VERSION:-$(python3 -c 'import av; print(av.__version__)' 2>/dev/null || echo 18.1.0)}
exclude=$(git rev-parse --git-path info/exclude)
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "av==$AV"
ls -l .whl
