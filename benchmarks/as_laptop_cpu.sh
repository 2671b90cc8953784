#!/usr/bin/env bash
# Run a command as if on a laptop CPU without AVX-512 and AMX: AVX2 with AVX-VNNI (Intel since Alder Lake), or with
# NO_AVX_VNNI=1 plain AVX2 (AMD before Zen 4, Intel before Ice Lake). A stand-in on a server CPU: the memory, caches
# and clock stay the server's; only the instructions are taken away, in four places:
#   PyTorch's kernels      ATEN_CPU_CAPABILITY=avx2
#   oneDNN (torch._int_mm) ONEDNN_MAX_CPU_ISA=AVX2_VNNI (AVX2)
#   luoxia's CPU checks    a sitecustomize that drops avx512*, amx* (and avx_vnni) from core.device.cpu_flags as
#                          it is first imported (nothing imported at start-up: times to the first token hold)
#   compiled C++           a g++ wrapper adding -mno-avx512f -mno-amx-* (-mno-avxvnni) after Inductor's and luoxia's
#                          -march=native, with their own LUOXIA_HOME and Inductor cache (builds made for the real CPU
#                          are not reused)
# For llama.cpp alike, build llama-cpp-python without AVX-512 into a folder of its own and put it first with
# LLAMA_CPP_TARGET:
#   CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
#     -DGGML_AVX_VNNI=ON -DGGML_AVX512=OFF" pip install --no-deps --target /tmp/llama-avx2 llama-cpp-python==0.3.36
#
#   LLAMA_CPP_TARGET=/tmp/llama-avx2 bash benchmarks/as_laptop_cpu.sh \
#       .venv/bin/python benchmarks/text_decode.py --variants int4,w8a8,int4+aot,w8a8+aot --skip-cold
#   bash benchmarks/as_laptop_cpu.sh .venv/bin/python benchmarks/int8_matmul.py --kernels avx --rows 1,4,16
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: [NO_AVX_VNNI=1] [LLAMA_CPP_TARGET=DIR] bash benchmarks/as_laptop_cpu.sh COMMAND ..." >&2; exit 2; }
compiler=$(command -v "${CXX:-g++}") || { echo "no C++ compiler (${CXX:-g++}) on PATH" >&2; exit 1; }
dir=$(mktemp -d /tmp/luoxia-laptop.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/site"
drop="avx512 amx" no_flags="-mno-avx512f -mno-amx-tile -mno-amx-int8 -mno-amx-bf16" isa=AVX2_VNNI
if [ -n "${NO_AVX_VNNI:-}" ]; then
    drop="$drop avx_vnni" no_flags="$no_flags -mno-avxvnni" isa=AVX2
fi
printf '#!/bin/sh\nexec %s "$@" %s\n' "$compiler" "$no_flags" > "$dir/bin/g++"
chmod +x "$dir/bin/g++"
# Patches luoxia.core.device as it is first imported, rather than importing it (and torch) at start-up.
cat > "$dir/site/sitecustomize.py" <<EOF
import importlib.abc
import importlib.util
import sys


class _LaptopFlags(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "luoxia.core.device":
            return None
        sys.meta_path.remove(self)  # once: find the real module, and patch it as it loads
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            flags = frozenset(f for f in module.cpu_flags() if not f.startswith(tuple("$drop".split())))
            module.cpu_flags = lambda: flags

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _LaptopFlags())
EOF
export PATH="$dir/bin:$PATH" CXX="$dir/bin/g++" ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=$isa
export PYTHONPATH="$dir/site${LLAMA_CPP_TARGET:+:$LLAMA_CPP_TARGET}${PYTHONPATH:+:$PYTHONPATH}"
export LUOXIA_HOME="$dir/home" TORCHINDUCTOR_CACHE_DIR="$dir/inductor"
"$@"
