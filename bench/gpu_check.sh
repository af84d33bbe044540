#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) on a machine with JAX (CUDA) and no network:
#
#   make gpu-wheels                 # where pip works: Keras & co. into .gpu-wheels/
#   bench/gpu_check.sh [ARGS...]    # on the GPU machine, from a copy of the repository
#
# The carried wheels are installed with `pip --no-index` into a folder of their own
# ($TLCORE_GPU_SITE, default /tmp/tlcore-gpu-site) put first on PYTHONPATH; the
# machine's own JAX, NumPy, h5py, Pillow and pandas are used as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${TLCORE_GPU_WHEELS:-.gpu-wheels}
SITE=${TLCORE_GPU_SITE:-/tmp/tlcore-gpu-site}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "no wheels in $WHEELS: using the installed Keras (run 'make gpu-wheels' to carry it)" >&2
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true PYTHONUNBUFFERED=1
exec "$PY" -m bench.gpu_check "$@"
