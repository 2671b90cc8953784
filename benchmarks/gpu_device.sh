#!/usr/bin/env bash
# The GPU figures of issue #10 on a lent device machine (an H200 with its own python3, torch and
# transformers; no network, and at most 64 MiB travel with each call, of which the repository takes 27).
# The embedded model's GGUF (94 MB) cannot travel in one call, so `prepare` cuts it into parts that
# travel one call each, back to back: the machine stays warm 30 s between calls, but each call's tree
# replaces the folders an earlier call carried, so each call copies its part out of the checkout.
#
#   bash benchmarks/gpu_device.sh prepare       # here: .device/ holds the parts, the gguf wheel, checksums
#
# then three device calls, back to back:
#   carry [".device/base", ".device/part-00"]   command "bash benchmarks/gpu_device.sh parts"
#   carry [".device/part-01"]                   command "bash benchmarks/gpu_device.sh parts"
#   carry [".device/part-02"]                   command "bash benchmarks/gpu_device.sh run"   (timeout_s 540)
#
# Each call copies its part to /tmp/luoxia-gpu/parts there. `run` joins and checks the model, runs the CUDA
# tests of the graphed decode step and bursts (TESTS picks pytest arguments, SKIP_TESTS=1 skips them; a failure
# is reported and the benchmark runs anyway), then benchmarks/text_decode_gpu.py (--repeats 2 by default:
# REPEATS=3 for the full run; GPU_ARGS adds flags: GPU_ARGS="--variants compile+graphs,compile+bursts,fused+graphs,
# fused+bursts" compares the fused step in a short run), and leaves its log and JSON in $OUT. Locally,
# `PYTHON=.venv/bin/python GPU_ARGS="--device cpu --variants eager,graphs --new-tokens 16 --skip-batch"
# bash benchmarks/gpu_device.sh run` tries the same steps on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PART_BYTES=$((32 * 1024 * 1024))

keep_parts() {  # out of the checkout, where a later call's tree cannot remove them
    mkdir -p /tmp/luoxia-gpu/parts && cp -r .device/. /tmp/luoxia-gpu/parts/
}

case "${1:-}" in
prepare)
    gguf=$(.venv/bin/python -c "from luoxia.core import registry; print(registry.resolve('smollm2'))")
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.device/' >> .git/info/exclude; }
    rm -rf .device && mkdir -p .device/base
    split -b "$PART_BYTES" -d -a 2 "$gguf" .device/part-
    for part in .device/part-*; do  # each part in a folder of its own: one carry path per call
        mv "$part" "$part.bin" && mkdir "$part" && mv "$part.bin" "$part/"
    done
    (cd .device && sha256sum part-*/part-*.bin > base/parts.sha256 && sha256sum < "$gguf" > base/model.sha256)
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp -d .device/base "gguf==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("gguf"))')"
    du -sh .device/*
    ;;
parts)  # also copies the parts outside the checkout, in case a later call's tree replaces .device
    nvidia-smi -L 2>/dev/null || true
    keep_parts
    ls -l /tmp/luoxia-gpu/parts/*/
    ;;
run)
    out=${OUT:-/tmp/luoxia-gpu}
    mkdir -p "$out" /tmp/luoxia-gpu
    keep_parts
    parts=/tmp/luoxia-gpu/parts
    (cd $parts && sha256sum -c --quiet base/parts.sha256) || { echo "a part is missing or damaged: carry it again"; exit 1; }
    model=/tmp/luoxia-gpu/SmolLM2-135M-Instruct.Q4_1.gguf
    cat $parts/part-*/part-*.bin > "$model.tmp" && mv "$model.tmp" "$model"
    [ "$(sha256sum < "$model")" = "$(cat $parts/base/model.sha256)" ] || { echo "the joined model differs"; exit 1; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/luoxia-gpu/site \
        $parts/base/*.whl
    export PYTHONPATH=$PWD/src:/tmp/luoxia-gpu/site PYTHONUNBUFFERED=1 LUOXIA_HOME=/tmp/luoxia-gpu/home
    "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.cuda.is_available())"
    # shellcheck disable=SC2086  (TESTS: pytest arguments)
    [ -n "${SKIP_TESTS:-}" ] || "$PYTHON" -m pytest -q -p no:cacheprovider \
        ${TESTS:-tests/text/test_cuda_graph.py tests/text/test_graph_bursts.py} 2>&1 | tee "$out/test_cuda_graph.log" || echo "a CUDA test failed (above); the benchmark runs anyway"
    # shellcheck disable=SC2086  (GPU_ARGS is a list of flags)
    "$PYTHON" benchmarks/text_decode_gpu.py --model "$model" --repeats "${REPEATS:-2}" ${GPU_ARGS:-} \
        --output "$out/text_decode_gpu.json" 2>&1 | tee "$out/text_decode_gpu.log"
    ;;
*)
    echo "usage: bash benchmarks/gpu_device.sh prepare|parts|run (see the comments at the top)" >&2
    exit 2
    ;;
esac
