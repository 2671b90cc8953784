"""Text decoding speed: luoxia against transformers on the same weights, same prompt, same run.

Both engines load the embedded SmolLM2-135M-Instruct Q4_1 GGUF: transformers dequantizes it to
float32; ours runs in several variants (--variants): float32 (dequantized, the transformers-parity
path), int8 and int4 (the file's own 4-bit grid, the default on the CPU), w8a8 (int8 weights and
activations, smoothed; see luoxia.text.quant), eagerly or compiled. The default row is int4 through
the step compiled ahead of time (`int4+aot`), which a load uses by default once it is built. All
get the same 32 prompt token ids and decode 128 new tokens greedily, batch 1, on the CPU, with
the same number of torch threads. Measured per engine:

    prefill tok/s   32 / (time from the generate call to the first new token)
    decode tok/s    127 / (time from the first new token to the last)
                    median of --repeats runs after one warm-up; the engines' runs alternate (llama.cpp's
                    in a child process that stays loaded), so background load hits them alike
    TTFT cold s     wall time from starting a fresh Python process (imports included) to its
                    first new token; ours with an empty $LUOXIA_HOME, so the GGUF is dequantized
                    (not for +aot rows: the package is built once, by --aot, never by a default load)
    TTFT warm s     the same with our converted-weights cache filled (transformers has no such
                    cache: it loads the GGUF again); median of --repeats processes
    luoxia generate the default row only: the command as a user runs it, warm cache, 32 tokens: spawn
                    to the first and to the last byte of generated text, with its NumPy head start
                    (the default) and with --no-head-start, beside a bare `import torch` (the
                    target is judged on the default); and `luoxia chat` at a pseudo-terminal: spawn
                    to its prompt line
    load s          the load call alone in those processes (model and tokenizer)
    peak RSS MB     the child process's own ru_maxrss at its first token

`--variants float32,bfloat16,int8,int4,int4+compile,int8+compile` picks our rows (`+compile`:
`TextModel.load(compile=True)`, the decode step compiled by torch.compile; its warm-up run
includes the compile; `+aot`: `TextModel.load(aot=True)`, the step compiled ahead of time
(`text.aot_step`), its warm-up including the package's build; for both, the perplexity is that of
the model they compile, run eagerly). For every row the script also measures, beside speed: perplexity on two
held-out Debian license texts (1024 tokens each) as a ratio to the float32 model's, and, for the
quantized rows, the total decode tokens/s of 16 prompts decoded as one batch (--batch-tokens
each). When llama-cpp-python is importable (`pip install 'luoxia[llamacpp]'`) a llama.cpp row runs
the same GGUF file, still quantized, in a child process whose runs alternate with ours; its ratio is
printed twice: of the medians, and the median of the run-by-run ratios.

    .venv/bin/python benchmarks/text_decode.py [--repeats 3] [--variants float32,int8,int4] [--skip-cold]

Prints the machine, a Markdown table, the ratios and whether the targets are met: decode >= 1.5x
transformers' and warm TTFT <= 1 s for the default variant; decode >= 1.0x llama.cpp for the
default and the fastest row; batch 16 >= 6x batch 1 (per row, and best batch row against the fastest
batch-1 row); perplexity within 3% of float32's. Writes
benchmarks/results/text_decode.json.
Only the standard library is imported at the top: a child process pays for its own imports.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT_TOKENS = 32
PROMPT_TEXT = (
    "The old lighthouse keeper climbed the spiral stairs every evening at dusk. From the lamp room he "
    "could see the fishing boats returning to the harbour, the gulls circling over the nets, and the "
    "storm clouds gathering far out at sea. That night, something was different."
)
RESULTS = Path(__file__).resolve().parent / "results" / "text_decode.json"
TARGET_DECODE_RATIO = 1.5
TARGET_WARM_TTFT_S = 1.0
CLI_TOKENS = 32  # tokens per `luoxia generate` run in the first-output measurement
CHILD_MARK = "@@luoxia-bench "
OURS, HF, LLAMA = "luoxia", "transformers", "llamacpp"
# llama.cpp built for this CPU's AVX-512 but without its AMX path (a segfault in ggml_backend_amx_mul_mat on the
# Q4_1 file, llama-cpp-python 0.3.36, Intel Xeon with AMX, 2026-12-05)
NO_AMX = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON "
          "-DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON")
TARGET_LLAMACPP_RATIO = 1.0
TARGET_BATCH_RATIO = 6.0
TARGET_PERPLEXITY_RATIO = 1.03
BATCH = 16
# Held-out English prose that ships with Debian (base-files), for the perplexity check.
HELD_OUT = [Path("/usr/share/common-licenses/GPL-3"), Path("/usr/share/common-licenses/Apache-2.0")]
HELD_OUT_TOKENS = 1024
# Our variants: row label -> keyword arguments of TextModel.load. The eager rows say aot=False: by default a
# load uses the ahead-of-time step when one is built, and the +aot rows build it into the same LUOXIA_HOME.
EAGER = dict(aot=False)
VARIANTS = {"float32": dict(dtype="float32", quant="none", **EAGER),
            "bfloat16": dict(dtype="bfloat16", quant="none", **EAGER),
            "int8": dict(quant="int8", **EAGER), "int4": dict(quant="int4", **EAGER),
            "w8a8": dict(quant="w8a8", **EAGER), "int4+compile": dict(quant="int4", compile=True),
            "int8+compile": dict(quant="int8", compile=True), "w8a8+compile": dict(quant="w8a8", compile=True),
            "int4+aot": dict(quant="int4", aot=True), "w8a8+aot": dict(quant="w8a8", aot=True)}

DEFAULT_ROWS = ("float32", "int8", "int4", "w8a8", "int4+compile", "w8a8+compile", "int4+aot")


def default_variant() -> str:
    """What a user runs on this CPU for a Q4_1 GGUF once `make demo` (or any --aot run) has built the step:
    `quant.choose_quant`'s pick (int4; w8a8 where int8 products are faster: no AVX-512, luoxia's AVX2 kernel) through
    the ahead-of-time package. Before that build the default is its eager row."""
    import torch

    from luoxia.text.quant import choose_quant

    return f"{choose_quant(None, 'Q4_1', torch.device('cpu'))}+aot"


# --- one generation per engine: (prefill s, decode s, new token ids) ----------------------------

def ours_generate(loaded, ids: list[int] | list[list[int]], new_tokens: int) -> tuple[float, float, list[int]]:
    """One prompt (batch 1) or a list of equally long prompts decoded as one batch; tokens of the first row."""
    from luoxia.text.generate import GenerationConfig, decode_steps

    config = GenerationConfig(max_new_tokens=new_tokens, ignore_eos=True)
    prompts = ids if isinstance(ids[0], list) else [ids]
    tokens, stamps = [], []
    t0 = time.perf_counter()
    # eos_ids and pad_id are never used: EOS is ignored and unpadded rows never finish early.
    for step in decode_steps(loaded.model, prompts, config, eos_ids=[], pad_id=0,
                             one_token_forward=loaded.decode_step):
        tokens.append(int(step[0]))
        stamps.append(time.perf_counter())
    return stamps[0] - t0, stamps[-1] - stamps[0], tokens


def perplexity_ratios(loaded: dict, texts: list[str]) -> dict[str, dict[str, list[float]]]:
    """Perplexity of each variant's model on the held-out texts (the first HELD_OUT_TOKENS tokens of
    each; `luoxia.eval.fluency`), and its ratio to the float32 model's."""
    from luoxia.eval.fluency import perplexity_of_ids

    tokenizer = next(iter(loaded.values())).tokenizer
    held_out = [tokenizer.encode(t, add_special_tokens=False)[:HELD_OUT_TOKENS] for t in texts]
    ppl = {name: perplexity_of_ids(m, [[]] * len(held_out), held_out).per_text for name, m in loaded.items()}
    return {name: {"perplexity": values, "ratio_to_float32": [v / r for v, r in zip(values, ppl["float32"])]}
            for name, values in ppl.items()}


def hf_generate(model, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Stamps(BaseStreamer):
        """Times each new token as generate hands it over (the first `put` is the prompt)."""

        def __init__(self):
            self.puts: list[float] = []

        def put(self, value):
            self.puts.append(time.perf_counter())

        def end(self):
            pass

    stamps = Stamps()
    input_ids = torch.tensor([ids])
    t0 = time.perf_counter()
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, streamer=stamps,
                         pad_token_id=model.generation_config.pad_token_id)
    first, last = stamps.puts[1], stamps.puts[-1]
    return first - t0, last - first, out[0, len(ids):].tolist()


def llama_generate(llm, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
    llm.reset()  # otherwise generate reuses the cached prompt prefix and skips the prefill
    tokens, stamps = [], []
    t0 = time.perf_counter()
    for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        tokens.append(int(token))
        stamps.append(time.perf_counter())
        if len(tokens) == new_tokens:
            break
    return stamps[0] - t0, stamps[-1] - stamps[0], tokens


class LlamaCppChild:
    """llama.cpp loaded once in a child process (possibly another Python: --llamacpp-python) that decodes
    on request, so its timed runs alternate with ours like an engine of this process."""

    def __init__(self, args: argparse.Namespace, model: str, python: str):
        cmd = [python, str(Path(__file__).resolve()), "--child", LLAMA, "--serve", "--model", model,
               "--threads", str(args.threads), "--new-tokens", str(args.new_tokens), "--ids", "0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # stderr: ours
        self.read()  # the load report

    def generate(self, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
        self.proc.stdin.write(json.dumps({"ids": ids, "new_tokens": new_tokens}) + "\n")
        self.proc.stdin.flush()
        return tuple(self.read())  # (prefill s, decode s, new token ids)

    def read(self):
        for line in self.proc.stdout:
            if line.startswith(CHILD_MARK):
                return json.loads(line.removeprefix(CHILD_MARK))
        from luoxia.core.device import cpu_flags

        code = self.proc.wait()
        hint = (f" (llama-cpp-python 0.3.36's AMX path crashes on this CPU: reinstall it with CMAKE_ARGS='{NO_AMX}')"
                if code == -signal.SIGSEGV and "amx_int8" in cpu_flags() else "")
        raise ChildProcessError(f"its child process stopped (exit {code}){hint}; its error output is above")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# --- child processes: load, first token, report -------------------------------------------------

def child_main(args: argparse.Namespace) -> None:
    """Runs in a fresh process: import, load, produce one token; print timings as one JSON line."""
    ids = [int(i) for i in args.ids.split(",")]
    report: dict = {}
    if args.child == LLAMA:
        from llama_cpp import Llama

        t_imported = time.time()
        # A serving child gets the placeholder id 0 and the prompts later: room for a benchmark prompt then.
        llm = Llama(model_path=args.model, n_threads=args.threads, n_threads_batch=args.threads,
                    n_ctx=max(len(ids), PROMPT_TOKENS) + args.new_tokens + 16, verbose=False)
        t_loaded = time.time()
        if args.serve:  # one JSON request per line on stdin, one report line per request; EOF ends it
            print(CHILD_MARK + json.dumps({"loaded_s": t_loaded - t_imported}), flush=True)
            for line in sys.stdin:
                request = json.loads(line)
                print(CHILD_MARK + json.dumps(llama_generate(llm, request["ids"], request["new_tokens"])), flush=True)
            return
        llm.reset()
        first = int(next(llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)))
    else:
        import torch

        torch.set_num_threads(args.threads)
        if args.child == OURS:
            from luoxia.text.generate import GenerationConfig, decode_steps
            from luoxia.text.pipeline import TextModel

            t_imported = time.time()
            loaded = TextModel.load(args.model, device="cpu", **VARIANTS[args.variant])
            t_loaded = time.time()
            report["from_cache"] = loaded.load_info["from_cache"]
            steps = decode_steps(loaded.model, [ids], GenerationConfig(max_new_tokens=1, ignore_eos=True),
                                 eos_ids=[], pad_id=0)
            first = int(next(steps)[0])
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            t_imported = time.time()
            path = Path(args.model)
            where = dict(gguf_file=path.name) if path.is_file() else {}
            folder = path.parent if path.is_file() else path
            AutoTokenizer.from_pretrained(folder, **where)  # a user needs it; it is part of the load
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **where).eval()
            t_loaded = time.time()
            first = hf_generate(model, ids, 1)[2][0]
    t_first = time.time()
    report.update(t_imported=t_imported, t_loaded=t_loaded, t_first=t_first, first_token=first,
                  peak_rss_mb=peak_rss_mb())
    print(CHILD_MARK + json.dumps(report), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM counts this program's pages only: ru_maxrss also
    counts the parent's pages that the child held between fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_child(engine: str, args: argparse.Namespace, ids: list[int], model: str, home: Path | None,
              python: str = sys.executable, variant: str = "float32", tag: str = "") -> dict:
    """Start this script as a child; return its report with ttft_s and load_s as seen from outside."""
    cmd = [python, str(Path(__file__).resolve()), "--child", engine, "--model", model, "--variant", variant,
           "--threads", str(args.threads), "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats),
           "--ids", ",".join(map(str, ids))]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    env.pop("TQDM_DISABLE", None)  # children show what a user sees
    if home is not None:
        env["LUOXIA_HOME"] = str(home)
    t_spawn = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(CHILD_MARK)]
    if proc.returncode != 0 or not lines:
        sys.exit(f"the {engine} child process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(lines[-1].removeprefix(CHILD_MARK))
    report["ttft_s"] = report["t_first"] - t_spawn
    report["load_s"] = report["t_loaded"] - report["t_imported"]
    report["startup_import_s"] = report["t_imported"] - t_spawn
    print(f"  {engine}{'' if engine == LLAMA else ' ' + variant} {tag} process: "
          f"TTFT {report['ttft_s']:.2f} s = start+import {report['startup_import_s']:.2f} + "
          f"load {report['load_s']:.2f} + first token {report['t_first'] - report['t_loaded']:.2f}", flush=True)
    return report


def cold_and_warm(engine: str, args: argparse.Namespace, ids: list[int], model: str, work: Path,
                  warm_home: Path | None, cold: bool = True, **kw) -> dict:
    """TTFT, load time and peak RSS of fresh processes: one cold (unless skipped), --repeats warm."""
    out: dict = {}
    if cold and not args.skip_cold:
        cold_home = Path(tempfile.mkdtemp(prefix="cold-", dir=work)) if warm_home is not None else None
        cold = run_child(engine, args, ids, model, cold_home, tag="cold", **kw)
        if cold.get("from_cache"):
            sys.exit("the cold run found converted weights in an empty LUOXIA_HOME; the benchmark is broken")
        out.update(ttft_cold_s=cold["ttft_s"], load_cold_s=cold["load_s"], peak_rss_cold_mb=cold["peak_rss_mb"],
                   cold_run=cold)
    warm = [run_child(engine, args, ids, model, warm_home, tag="warm", **kw) for _ in range(args.repeats)]
    if warm_home is not None and not all(w.get("from_cache") for w in warm):
        sys.exit("a warm run of ours did not load from the converted-weights cache; the benchmark is broken")
    out.update(ttft_warm_s=statistics.median(w["ttft_s"] for w in warm),
               load_warm_s=statistics.median(w["load_s"] for w in warm),
               peak_rss_warm_mb=max(w["peak_rss_mb"] for w in warm), warm_runs=warm)
    return out


def cli_first_output(args: argparse.Namespace, home: Path) -> dict:
    """`luoxia generate` as a user runs it, warm cache, CLI_TOKENS tokens: seconds from spawning the command
    to the first byte of generated text on its stdout and to the last, with the NumPy head start (the
    default: text.head_start) and without it (--no-head-start), the two alternating; medians of --repeats,
    beside a fresh `import torch` alone."""
    exe = Path(sys.executable).with_name("luoxia")
    env = {**os.environ, "LUOXIA_HOME": str(home)}
    cmd = [str(exe), "generate", PROMPT_TEXT, "--max-new-tokens", str(CLI_TOKENS), "--ignore-eos"]
    times: dict[str, list[tuple[float, float]]] = {"head_start": [], "no_head_start": []}
    import_torch = []
    for _ in range(args.repeats):
        for mode, extra in (("head_start", []), ("no_head_start", ["--no-head-start"])):
            t0 = time.time()
            proc = subprocess.Popen(cmd + extra, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            got = proc.stdout.read(1)
            first = time.time() - t0
            proc.stdout.read()
            times[mode].append((first, time.time() - t0))
            if proc.wait() != 0 or not got:
                sys.exit(f"{' '.join(cmd[:2])} failed (exit {proc.returncode})")
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        import_torch.append(time.time() - t0)
    out = {"import_torch_s": statistics.median(import_torch)}
    for mode, pairs in times.items():
        suffix = "" if mode == "head_start" else "_no_head_start"
        out[f"cli_ttft_warm_s{suffix}"] = statistics.median(f for f, _ in pairs)
        out[f"cli_last_byte_s{suffix}"] = statistics.median(last for _, last in pairs)
    print(f"  luoxia generate, {CLI_TOKENS} tokens: first output after {out['cli_ttft_warm_s']:.2f} s, last after "
          f"{out['cli_last_byte_s']:.2f} s; with --no-head-start {out['cli_ttft_warm_s_no_head_start']:.2f} and "
          f"{out['cli_last_byte_s_no_head_start']:.2f} s; python -c 'import torch' alone "
          f"{out['import_torch_s']:.2f} s", flush=True)
    return out


def chat_prompt_line(args: argparse.Namespace, home: Path) -> dict:
    """`luoxia chat` at a terminal (a pseudo-terminal), warm cache: seconds from spawning it to its prompt
    line ("> "), median of --repeats; it then gets /exit."""
    import pty
    import select

    exe = Path(sys.executable).with_name("luoxia")
    env = {**os.environ, "LUOXIA_HOME": str(home)}
    waits = []
    for _ in range(args.repeats):
        leader, follower = pty.openpty()
        t0 = time.time()
        proc = subprocess.Popen([str(exe), "chat"], stdin=follower, stdout=follower, stderr=subprocess.DEVNULL,
                                env=env)
        os.close(follower)
        shown = b""
        while b"> " not in shown and time.time() - t0 < 120 and proc.poll() is None:
            if select.select([leader], [], [], 0.01)[0]:
                shown += os.read(leader, 4096)
        waits.append(time.time() - t0)
        if b"> " in shown:
            os.write(leader, b"/exit\n")
        code = proc.wait(timeout=60)
        os.close(leader)
        if code != 0 or b"> " not in shown:
            sys.exit(f"luoxia chat failed (exit {code}) before its prompt line")
    out = {"chat_prompt_line_s": statistics.median(waits)}
    print(f"  luoxia chat: prompt line after {out['chat_prompt_line_s']:.2f} s", flush=True)
    return out


# --- the benchmark ------------------------------------------------------------------------------

def machine_info(threads: int) -> dict:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def throughput(name: str, runs: list[tuple[float, float, list[int]]], new_tokens: int) -> dict:
    prefill = [PROMPT_TOKENS / p for p, _, _ in runs]
    decode = [(new_tokens - 1) / d for _, d, _ in runs]
    return {"engine": name, "prefill_tok_s": statistics.median(prefill), "decode_tok_s": statistics.median(decode),
            "prefill_best_tok_s": max(prefill), "decode_best_tok_s": max(decode),
            "decode_spread": max(decode) / min(decode), "prefill_runs_tok_s": prefill, "decode_runs_tok_s": decode,
            "tokens": runs[-1][2]}


def same_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def llamacpp_available(python: str) -> bool:
    return subprocess.run([python, "-c", "import llama_cpp"], capture_output=True).returncode == 0


def bench(args: argparse.Namespace) -> dict:
    import torch

    from luoxia.core import registry
    from luoxia.text.pipeline import TextModel

    torch.set_num_threads(args.threads)
    path = registry.resolve(args.model).resolve()
    work = Path(tempfile.mkdtemp(prefix="luoxia-bench-"))
    warm_home = work / "warm-home"
    os.environ["LUOXIA_HOME"] = str(warm_home)  # our loads below fill it; the warm children reuse it
    default_row = f"luoxia {default_variant()}"
    try:
        info = machine_info(args.threads)
        print(f"machine: {info['cpu']}, {info['cpu_count']} CPUs, {args.threads} threads, torch {info['torch']}, "
              f"transformers {info.get('transformers', '?')}", flush=True)

        print("loading ours (converting the GGUF into a temporary LUOXIA_HOME) ...", flush=True)
        engines, loaded, build_s = {}, {}, {}
        for variant in dict.fromkeys(["float32", *args.variants]):  # float32: the perplexity reference
            t = time.perf_counter()
            loaded[variant] = TextModel.load(args.model, device="cpu", **VARIANTS[variant])
            if "+aot" in variant:  # the load built the package (into the temporary LUOXIA_HOME)
                build_s[f"luoxia {variant}"] = time.perf_counter() - t
            if variant in args.variants:
                engines[f"luoxia {variant}"] = (ours_generate, loaded[variant])
        ours = loaded[args.variants[0]]
        ids = ours.tokenizer.encode(PROMPT_TEXT, add_special_tokens=False)[:PROMPT_TOKENS]
        assert len(ids) == PROMPT_TOKENS, "PROMPT_TEXT is too short for PROMPT_TOKENS"

        texts = [p.read_text(encoding="utf-8") for p in HELD_OUT if p.is_file()]
        quality = {}
        if texts:
            print(f"perplexity on {len(texts)} held-out texts ...", flush=True)
            # One model per quantization: a +compile or +aot row's full-sequence forward is its eager model's.
            by_quant: dict = {}
            for variant in sorted(loaded, key=lambda v: "+" in v):
                by_quant.setdefault(variant.split("+")[0], loaded[variant])
            quality = perplexity_ratios(by_quant, texts)

        print("loading transformers ...", flush=True)
        os.environ["TQDM_DISABLE"] = "1"  # the GGUF conversion bar; children still show theirs
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        where = dict(gguf_file=path.name) if path.is_file() else {}
        folder = path.parent if path.is_file() else path
        hf_tok = AutoTokenizer.from_pretrained(folder, **where)
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **where).eval()
        engines["transformers float32"] = (hf_generate, hf)
        hf_ids = hf_tok(PROMPT_TEXT, add_special_tokens=False)["input_ids"][:PROMPT_TOKENS]

        llama_python = args.llamacpp_python or sys.executable
        llama_note, llama = "not installed (pip install 'luoxia[llamacpp]')", None
        if path.suffix.lower() != ".gguf":
            llama_note = "skipped (the model is not a GGUF file)"
        elif llamacpp_available(llama_python):
            print("loading llama.cpp (in a child process) ...", flush=True)
            try:
                llama = LlamaCppChild(args, str(path), llama_python)
                llama.generate(ids, 2)  # fails fast where llama.cpp cannot decode on this CPU
                engines["llama.cpp Q4_1"] = (LlamaCppChild.generate, llama)
                llama_note = f"ran with {llama_python}, its runs alternating with ours"
            except ChildProcessError as e:
                llama_note, llama = f"left out: {e}", None
                print(f"llama.cpp {llama_note}", flush=True)

        # Alternate the engines run by run, so a burst of background load hits them alike.
        runs: dict[str, list] = {name: [] for name in engines}
        warm_up_s = {}
        for name, (generate, model) in engines.items():
            print(f"warm-up: {name}", flush=True)
            t = time.perf_counter()
            generate(model, ids, args.new_tokens)
            warm_up_s[name] = time.perf_counter() - t + build_s.get(name, 0)  # a compile, or a package build
        for r in range(args.repeats):
            for name, (generate, model) in engines.items():
                runs[name].append(generate(model, ids, args.new_tokens))
                p, d, _ = runs[name][-1]
                print(f"run {r + 1}/{args.repeats} {name}: prefill {PROMPT_TOKENS / p:.1f} tok/s, "
                      f"decode {(args.new_tokens - 1) / d:.1f} tok/s", flush=True)
        rows = {name: throughput(name, rs, args.new_tokens) for name, rs in runs.items()}
        for name, row in rows.items():
            row["warm_up_s"] = warm_up_s[name]
            variant = name.removeprefix("luoxia ")
            if variant in quality:
                row["quality"] = quality[variant]
            elif variant.split("+")[0] in quality:  # compiling changes no weights (full-sequence forward)
                row["quality"] = quality[variant.split("+")[0]]

        if not args.skip_batch:
            # BATCH different prompts (the prompt rotated), all PROMPT_TOKENS long: one unpadded batch.
            prompts = [ids[i:] + ids[:i] for i in range(BATCH)]
            for name in [n for n in engines if n.startswith("luoxia ") and "float" not in n]:
                loaded_variant = engines[name][1]
                print(f"batch {BATCH}: {name}", flush=True)
                ours_generate(loaded_variant, prompts, args.batch_tokens)  # warm-up (and compile)
                decode = [BATCH * (args.batch_tokens - 1) / ours_generate(loaded_variant, prompts, args.batch_tokens)[1]
                          for _ in range(args.repeats)]
                rows[name]["batch_decode_tok_s"] = statistics.median(decode)
                rows[name]["batch_ratio"] = rows[name]["batch_decode_tok_s"] / rows[name]["decode_tok_s"]
        if llama is not None:
            llama.close()
        del ours, hf, engines, model, loaded, llama  # free the memory before the child processes run
        gc.collect()

        print("fresh processes (time to first token) ...", flush=True)
        for variant in args.variants:
            if "+compile" in variant:  # prefill is eager, so its first token comes as without compile
                continue
            # +aot: warm only (the package is built by then); a cold process would build it, which a
            # default load never does.
            rows[f"luoxia {variant}"].update(cold_and_warm(OURS, args, ids, args.model, work, warm_home,
                                                           cold="+aot" not in variant, variant=variant))
        rows["transformers float32"].update(cold_and_warm(HF, args, ids, str(path), work, None))
        if default_row in rows and Path(sys.executable).with_name("luoxia").exists():
            rows[default_row].update(cli_first_output(args, warm_home))
            rows[default_row].update(chat_prompt_line(args, warm_home))

        if "llama.cpp Q4_1" in rows:
            rows["llama.cpp Q4_1"].update(cold_and_warm(LLAMA, args, ids, str(path), work, None, python=llama_python))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    reference = rows["transformers float32"]["tokens"]
    for row in rows.values():
        row["same_tokens_as_transformers"] = same_prefix(row["tokens"], reference)
    hf_row = rows["transformers float32"]
    ratios = {name: {"decode": r["decode_tok_s"] / hf_row["decode_tok_s"],
                     "prefill": r["prefill_tok_s"] / hf_row["prefill_tok_s"],
                     "decode_best": r["decode_best_tok_s"] / hf_row["decode_best_tok_s"],
                     "prefill_best": r["prefill_best_tok_s"] / hf_row["prefill_best_tok_s"]}
              for name, r in rows.items() if name != "transformers float32"}
    default = default_row if default_row in rows else f"luoxia {args.variants[0]}"
    ours_row = rows[default]
    fastest = max((n for n in rows if n.startswith("luoxia ")), key=lambda n: rows[n]["decode_tok_s"])
    targets = {"decode_ratio": {"target": TARGET_DECODE_RATIO, "value": ratios[default]["decode"], "row": default,
                                "met": ratios[default]["decode"] >= TARGET_DECODE_RATIO}}
    ttft = "cli_ttft_warm_s" if "cli_ttft_warm_s" in ours_row else "ttft_warm_s"  # the command, else the child
    if ttft in ours_row:
        targets["warm_ttft_s"] = {"target": TARGET_WARM_TTFT_S, "value": ours_row[ttft], "met":
                                  ours_row[ttft] <= TARGET_WARM_TTFT_S,
                                  "row": default + (" (luoxia generate)" if ttft.startswith("cli") else "")}
    if "llama.cpp Q4_1" in rows:
        llama_row = rows["llama.cpp Q4_1"]
        for name in dict.fromkeys([default, fastest]):
            ratio = rows[name]["decode_tok_s"] / llama_row["decode_tok_s"]
            ratios[name]["decode_vs_llamacpp"] = ratio
            # Run r of ours against run r of llama.cpp, back to back: what a burst of load touches it touches alike.
            ratios[name]["decode_vs_llamacpp_paired"] = statistics.median(
                o / t for o, t in zip(rows[name]["decode_runs_tok_s"], llama_row["decode_runs_tok_s"]))
            targets[f"llamacpp_ratio {name}"] = {"target": TARGET_LLAMACPP_RATIO, "value": ratio, "row": name,
                                                 "met": ratio >= TARGET_LLAMACPP_RATIO}
    batched = [n for n in rows if "batch_ratio" in rows[n]]
    best = max(batched, key=lambda n: rows[n]["batch_decode_tok_s"], default=None)
    if best is not None and best != fastest:  # the best batch against the best batch 1, from different rows
        ratio = rows[best]["batch_decode_tok_s"] / rows[fastest]["decode_tok_s"]
        targets["batch_ratio best batch vs fastest batch 1"] = {"target": TARGET_BATCH_RATIO, "value": ratio,
                                                                "row": f"{best} / {fastest}",
                                                                "met": ratio >= TARGET_BATCH_RATIO}
    for name, row in rows.items():
        if "batch_ratio" in row:
            targets[f"batch_ratio {name}"] = {"target": TARGET_BATCH_RATIO, "value": row["batch_ratio"], "row": name,
                                              "met": row["batch_ratio"] >= TARGET_BATCH_RATIO}
        if "quality" in row and "float32" not in name:
            worst = max(row["quality"]["ratio_to_float32"])
            targets[f"perplexity_ratio {name}"] = {"target": TARGET_PERPLEXITY_RATIO, "value": worst, "row": name,
                                                   "met": worst <= TARGET_PERPLEXITY_RATIO}
    compared = "luoxia float32" if "luoxia float32" in rows else default  # the float32 row, where it ran
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"machine": info, "model": args.model, "model_file": str(path), "prompt_text": PROMPT_TEXT,
            "prompt_ids": ids, "transformers_tokenizer_agrees": hf_ids == ids, "new_tokens": args.new_tokens,
            "repeats": args.repeats, "threads": args.threads, "rows": rows, "ratios": ratios, "targets": targets,
            "llamacpp": llama_note, "default_row": default,
            "tokens_compared": compared, "tokens_identical": rows[compared]["tokens"] == reference}


def fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report(result: dict) -> None:
    m = result["machine"]
    n = result["new_tokens"]
    print(f"\n## Text decoding, {result['model']}: {PROMPT_TOKENS}-token prompt, {n} new tokens, greedy, batch 1, CPU")
    print(f"\nmachine: {m['cpu']} ({m['cpu_count']} CPUs), {result['threads']} threads, torch {m['torch']}, "
          f"transformers {m.get('transformers', '?')}, Python {m['python']}; "
          f"median of {result['repeats']} runs after a warm-up")
    if "load_average_at_start" in m:
        print(f"load average (1, 5, 15 min) at start {m['load_average_at_start']}, at end "
              f"{m['load_average_at_end']} (this benchmark adds about {result['threads']}; "
              "more means other processes shared the CPUs)")
    print()
    print(f"| engine | prefill tok/s | decode tok/s | batch {BATCH} tok/s | perplexity vs float32 | warm-up s "
          "| TTFT cold s | TTFT warm s | load s warm / cold | peak RSS MB warm / cold |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in result["rows"].items():
        load = f"{fmt(r.get('load_warm_s'), 2)} / {fmt(r.get('load_cold_s'), 2)}"
        rss = f"{fmt(r.get('peak_rss_warm_mb'), 0)} / {fmt(r.get('peak_rss_cold_mb'), 0)}"
        quality = r.get("quality", {}).get("ratio_to_float32")
        quality = " / ".join(f"{q:.4f}" for q in quality) if quality else "—"
        print(f"| {name} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.1f} | {fmt(r.get('batch_decode_tok_s'), 1)} "
              f"| {quality} | {fmt(r.get('warm_up_s'), 1)} | {fmt(r.get('ttft_cold_s'), 2)} "
              f"| {fmt(r.get('ttft_warm_s'), 2)} | {load} | {rss} |")
    ratios, rows = result["ratios"], result["rows"]
    for name, r in rows.items():
        if "cli_ttft_warm_s" in r:
            print(f"\n`luoxia generate` ({name}, warm cache, {CLI_TOKENS} tokens): first output "
                  f"{r['cli_ttft_warm_s']:.2f} s after the command starts, last {r['cli_last_byte_s']:.2f} s (NumPy "
                  f"head start); with --no-head-start {r['cli_ttft_warm_s_no_head_start']:.2f} and "
                  f"{r['cli_last_byte_s_no_head_start']:.2f} s; a bare `python -c 'import torch'` takes "
                  f"{r['import_torch_s']:.2f} s" + (f"; `luoxia chat` shows its prompt line after "
                                                      f"{r['chat_prompt_line_s']:.2f} s" if "chat_prompt_line_s" in r
                                                      else ""))
    print()
    for name, r in ratios.items():
        vs_llama = (f", decode {r['decode_vs_llamacpp']:.2f}x llama.cpp (median of the run-by-run ratios "
                    f"{r['decode_vs_llamacpp_paired']:.2f}x)" if "decode_vs_llamacpp" in r else "")
        print(f"{name}/transformers: decode {r['decode']:.2f}x (best runs {r['decode_best']:.2f}x), "
              f"prefill {r['prefill']:.2f}x (best runs {r['prefill_best']:.2f}x){vs_llama}")
    noisy = [name for name, r in rows.items() if r["decode_spread"] > 1.5]
    if noisy:
        print(f"warning: decode speed varied more than 1.5x between runs ({', '.join(noisy)}): other work was "
              "sharing the CPUs; see decode_runs_tok_s in the JSON, and rerun on a quiet machine")
    compared = result["tokens_compared"]
    print(f"\ntokens identical ({compared} vs transformers, {n} greedy tokens): "
          f"{'yes' if result['tokens_identical'] else 'no'}")
    for name, r in rows.items():
        if name not in (compared, "transformers float32") or not result["tokens_identical"]:
            print(f"  {name}: first {r['same_tokens_as_transformers']}/{n} tokens as transformers'")
    if not result["transformers_tokenizer_agrees"]:
        print("note: transformers' tokenizer splits the prompt differently (both engines got our ids)")
    print(f"llama.cpp: {result['llamacpp']}")
    print(f"\ntargets (the default is {result['default_row']}):")
    what = {"decode_ratio": "decode >= {target}x transformers", "warm_ttft_s": "warm TTFT <= {target} s",
            "llamacpp_ratio": "decode >= {target}x llama.cpp", "batch_ratio": f"batch {BATCH} >= {{target}}x batch 1",
            "perplexity_ratio": "perplexity <= {target}x float32's"}
    for key, t in result["targets"].items():
        label = what[key.split()[0]].format(target=t["target"])
        print(f"  {t['row']}: {label}: {'met' if t['met'] else 'NOT met'} ({t['value']:.3f})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs (and warm processes) per engine (default 3)")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens to generate per run (default 128)")
    p.add_argument("--threads", type=int,
                   help="threads for every engine (default: luoxia's, which llama.cpp's matches: one per core, one "
                        "per performance core on CPUs with efficiency cores)")
    p.add_argument("--variants", type=lambda s: s.split(","), default=None,
                   help=f"our rows, comma-separated, from {', '.join(VARIANTS)} (default {','.join(DEFAULT_ROWS)}, "
                        "and w8a8+aot where that is the default)")
    p.add_argument("--variant", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--skip-cold", action="store_true", help="skip the cold-start processes (slow)")
    p.add_argument("--skip-batch", action="store_true", help=f"skip the batch-{BATCH} decode of the int rows")
    p.add_argument("--batch-tokens", type=int, default=64, help=f"new tokens per row at batch {BATCH} (default 64)")
    p.add_argument("--model", default="smollm2", help="registry name or GGUF file (default smollm2)")
    p.add_argument("--llamacpp-python", default=None,
                   help="a Python that can import llama_cpp, for the llama.cpp row (default: this one)")
    p.add_argument("--child", choices=(OURS, HF, LLAMA), help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variants is None:
        args.variants = list(DEFAULT_ROWS)
        default = None if args.child else default_variant()  # children are given their variant
        if default is not None and default not in DEFAULT_ROWS:
            args.variants.append(default)
    if args.threads is None:
        import torch

        from luoxia.core.threads import default_threads

        args.threads = default_threads() or torch.get_num_threads()
    if args.repeats < 1 or args.new_tokens < 2 or args.batch_tokens < 2 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1, --new-tokens and --batch-tokens >= 2")
    if not args.variants or set(args.variants) - set(VARIANTS):
        p.error(f"--variants takes names from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return
    t0 = time.perf_counter()
    result = bench(args)
    result["benchmark_wall_s"] = time.perf_counter() - t0
    report(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {RESULTS} ({result['benchmark_wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
