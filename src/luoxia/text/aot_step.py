"""The one-token decode step compiled ahead of time (AOTInductor): built by `--aot` (`TextModel.load(aot=True)`),
then used by default whenever the same model and quantization load on the same machine.

`--compile` (`text.compiled`) compiles in every process (about 8 s with a warm cache) and checks
Dynamo's guards before every token. Here `torch.export` traces the step once and AOTInductor
compiles it into a package (a shared library and the packed weights) kept beside the model's cached
conversion; later processes load it in about 0.15 s and call it without Python in between. On the
project's 2-core CPU the embedded model's int4 step decodes at about twice the eager speed
(`benchmarks/text_decode_aot.py`); the first build takes about a minute.

The write position is a tensor (keys and values are written with `index_copy_`), and the mask's length
says how many columns of the cache attention reads: the written ones. Batch size, token count (1 to
MAX_TOKENS), cache length and mask length are dynamic, so one package serves every generation up to the
model's context, speculative decoding's draft checks included. (Format 3 read the whole preallocated
cache through a mask, like the CUDA graph: at a 4096-column cache, 128 tokens after a 32-token prompt
decoded at 33 tokens/s against 116 now, 1.08x faster at 160 columns. Format 4 took one token: a
nine-token draft check of the embedded int4 model ran eagerly, 33.6 ms against 25.2 ms through this
package, whose one-token steps decode 128 tokens at 135.0 tokens/s against format 4's 137.1, median
of 9 alternating runs.) What the package cannot serve runs the
eager model: prompts (from the first position, or longer than MAX_TOKENS), caches that are views (not
contiguous).

The package holds code, not weights: it is built without its constants and, when loaded, given the
loaded model's own tensors (AOTInductor's user-managed constants), so it costs 4 MB on disk and no
second copy of the weights in memory (embedded, they took 156 MB on disk and about 300 MB of resident
memory beside the model's). Nor does it fold the weights' transposes (`weights_stay_views`): Inductor
turns each `w.t()` of a constant into a transposed copy, made at the first call, with the same strides as
the view, so the same speed, and 148 MB more resident memory for the embedded int4 model's two packages
(all its int8 matrices). A new package is checked against the eager step before it is kept.

An int4 model gets two packages: one for fewer than `quant.BATCH_ROWS` rows, through the int4 kernel,
and one for batches of that many rows or more, through each layer's w8a8 copy (`quant.takes_the_copy`:
a 16-row step takes 21.4 ms that way against 36.5 ms through the kernel). Other modes compute every batch
size alike and get one. A build keeps about one core busy, so with two cores or more the two are built at
once, the batch package by a second Python (`build_int4_packages`: SmolLM2's took 148 s in turn, 86-106 s
side by side on 2 cores).

A package is specific to the model file, the quantization layout, the torch version and the CPU's
vector instructions, all in its name; one that fails to build, check or load is reported in one
line and the model decodes eagerly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from luoxia.core.compile import error_line, note
from luoxia.core.device import cpu_flags
from luoxia.text import decode_attention, int8_matmul
from luoxia.text.formats import cache
from luoxia.text.generate import padding_mask
from luoxia.text.kv_cache import KVCache
from luoxia.text.model import Transformer
from luoxia.text.model_config import TransformerConfig
from luoxia.text.quant import BATCH_ROWS, GROUP, LAYOUT_VERSION, Int4Linear, quantize

MAX_ROWS = 1024  # the largest batch a package takes (larger ones decode eagerly)
MAX_TOKENS = 16  # the most tokens per row a call takes: a step, or a speculative check of up to 15 drafted tokens
# Part of the package's name. 2: the package takes the model's own weights at load (1 embedded a copy);
# 3: the caches it takes are float32 in a bfloat16 model (`Transformer.cache_dtype`); 4: the mask covers
# only the written columns, and attention reads only those; 5: up to MAX_TOKENS tokens a call; 6: int4 models
# get a second package for batches (`batch_rows`); 7: no transposed copies of the weights (`weights_stay_views`);
# 8: attention through `text.decode_attention`'s kernel where it builds; 9: a bfloat16 model's caches are bfloat16;
# 10: int8 products through `text.int8_matmul`'s AMX kernel where it builds; 11: through its AVX-512 VNNI kernel
# on CPUs without AMX; 12: through its AVX-VNNI or AVX2 kernel on CPUs without AVX-512 VNNI.
PACKAGE_FORMAT = 12
# How far a new package's logits may be from the eager step's, as a fraction of the eager logits' range:
# the package keeps float32 between fused operations where the eager bfloat16 model rounds (SmolLM2 int4 on
# text: 0.018). The check feeds random tokens, whose odd activations int8 products round far more: SmolLM2
# int4 over 6 seeds gave up to 0.061 through its first package and 0.140 through the batch one (0.080 at
# the check's seed). Wrong weights or a miscompiled kernel are off by the whole range; the other int4 path
# with the copies' scales halved, 0.566.
CHECK_TOLERANCE = 0.25
# A build takes minutes: temporary files of a build older than this are a killed build's (`sweep_leftovers`).
LEFTOVER_AGE_S = 3600


class FlatStep(nn.Module):
    """The model's one-token forward with the caches as flat tensors (k0, v0, k1, v1, ...), as export needs."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, tokens, positions, start, mask, *kv):
        caches = [KVCache.of(k, v) for k, v in zip(kv[0::2], kv[1::2])]
        return self.model(tokens, caches, start, positions, mask)


def cpu_tag() -> str:
    """The CPU's vector instructions as a package built here may use them ("avx512-vnni"): a package
    is compiled for the machine it was built on. (Inductor's own check compiles a test program: 1 s.)"""
    tag = torch.backends.cpu.get_cpu_capability().lower()
    flags = cpu_flags()
    return tag + "".join(f"-{name}" for name in ("vnni", "amx")
                         if any(flag.startswith(name) or f"_{name}" in flag for flag in flags))


def package_path(directory: Path, mode: str, package_format: int = PACKAGE_FORMAT, batch: bool = False) -> Path:
    """Where the package of a model quantized as `mode` lives, in its cache `directory` (`batch`: the int4
    package for batches)."""
    kind = "decode-batch" if batch else "decode"
    return directory / f"{kind}.{mode}.v{LAYOUT_VERSION}.p{package_format}.torch-{torch.__version__}.{cpu_tag()}.pt2"


def outdated_packages(directory: Path, mode: str) -> list[Path]:
    """Packages of `mode` in `directory` this luoxia cannot use: another layout, format, torch or CPU."""
    current = {package_path(directory, mode), package_path(directory, mode, batch=True)}
    return [p for kind in ("decode", "decode-batch") for p in sorted(directory.glob(f"{kind}.{mode}.*.pt2"))
            if p not in current]


def superseded(package: Path) -> bool:
    """Whether a package this luoxia cannot use is one it replaces: an older layout or format for this torch and
    CPU. Other torch versions' and CPUs' packages stay, and a newer luoxia's, for the environments that may share
    the folder (an older luoxia deleting a newer one's package, and that one rebuilding it, would never end)."""
    versions = re.search(r"\.v(\d+)\.p(\d+)\.torch-", package.name)
    return (package.name.endswith(f".torch-{torch.__version__}.{cpu_tag()}.pt2") and versions is not None
            and int(versions[1]) <= LAYOUT_VERSION and int(versions[2]) <= PACKAGE_FORMAT)


def batch_rows(model: Transformer) -> int | None:
    """The fewest rows the batch package takes: BATCH_ROWS for a model with int4 layers (whose layers decide
    by rows, `quant.takes_the_copy`), None for the rest (one package serves every batch size)."""
    return BATCH_ROWS if any(isinstance(m, Int4Linear) for m in model.modules()) else None


def row_range(model: Transformer, batch: bool) -> tuple[int, int]:
    """The batch sizes a package takes: (fewest, most)."""
    split = batch_rows(model)
    if split is None:
        return 1, MAX_ROWS
    return (split, MAX_ROWS) if batch else (1, split - 1)


def cache_limit(model: Transformer) -> int:
    """The longest cache the package is exported for: the model's context (at least 4, export's minimum)."""
    return max(model.config.max_seq_len, 4)


def example_inputs(model: Transformer, rows: int, tokens: int, length: int, start: int) -> tuple[torch.Tensor, ...]:
    """FlatStep's inputs for `rows` rows of `tokens` tokens writing from column `start` of `length`-long caches."""
    c = model.config
    dtype = model.cache_dtype
    kv = [torch.zeros(rows, c.n_kv_heads, length, c.head_dim, dtype=dtype) for _ in range(2 * c.n_layers)]
    causal = padding_mask(torch.ones(rows, start + tokens, dtype=torch.bool), start, start + tokens)
    return (torch.zeros(rows, tokens, dtype=torch.long), torch.zeros(rows, tokens, dtype=torch.long),
            torch.tensor([start]), causal, *kv)


@contextlib.contextmanager
def weights_stay_views():
    """While building, keep Inductor from folding a transpose of a constant (`w.t()` before a matmul) into a
    copy of that constant: the package then reads the model's own weights through the view (module notes)."""
    from torch._inductor import constant_folding

    permute = torch.ops.aten.permute.default
    constant_folding.add_dont_constant_fold(permute)
    try:
        yield
    finally:
        constant_folding._dont_constant_fold.remove(permute)  # only ours; the module offers clear-all only


def build_package(model: Transformer, path: Path, batch: bool = False) -> None:
    """Export the step with dynamic batch (`row_range`), token count and cache length, compile it into `path`
    without its weights, and check it against the eager step; `path` is written whole or not at all."""
    decode_attention.KERNEL.load()  # the step calls the kernels where they build (a package needs a compiler anyway)
    int8_matmul.load()
    int8_matmul.int_mm_is_exact()  # asked now: the exported step cannot run the check
    rows = row_range(model, batch)
    example = example_inputs(model, rows=min(rows[0] + 1, rows[1]), tokens=2, length=64, start=3)
    batch_size = torch.export.Dim("batch", min=rows[0], max=rows[1])
    tokens = torch.export.Dim("tokens", min=1, max=MAX_TOKENS)
    columns = torch.export.Dim("cache", min=2, max=cache_limit(model))
    kv = example[4:]
    seen = torch.export.Dim("seen", min=2, max=cache_limit(model))
    shapes = ({0: batch_size, 1: tokens}, {0: batch_size, 1: tokens}, None, {0: batch_size, 2: tokens, 3: seen},
              tuple({0: batch_size, 2: columns} for _ in kv))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.pt2")  # the packager wants the .pt2 suffix
    try:
        # PyTorch's own deprecation warnings (its tree specs, pickled by the packager) are not the user's.
        with (torch.no_grad(), warnings.catch_warnings(), weights_stay_views(),
              torch._inductor.config.patch({"aot_inductor.package_constants_in_so": False,
                                            "aot_inductor.use_runtime_constant_folding": True})):
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(FlatStep(model), example, dynamic_shapes=shapes)
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        check_package(model, Package(tmp, model), rows=example[0].shape[0])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def sweep_leftovers(directory: Path) -> None:
    """Remove what builds killed outright left in `directory`: temporary packages and handed-over weights older
    than LEFTOVER_AGE_S (a build still running is younger)."""
    cutoff = time.time() - LEFTOVER_AGE_S
    for leftover in [*directory.glob(".build-*"), *directory.glob(".decode*.pt2")]:
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


def build_int4_packages(model: Transformer, path: Path, batch_path: Path) -> None:
    """Build an int4 model's two packages, at once where there are two cores (module notes): the batch package
    in a second Python (`python -m luoxia.text.aot_step`, a fresh interpreter: multiprocessing's spawn would
    run the caller's script again) that reads the weights from a safetensors file. The main package is moved
    into place last, so that its presence means both were built."""
    staged = path.with_name(f".{path.stem}.staged.pt2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=path.parent) as work:
        child = start_batch_build(model, Path(work), batch_path) if usable_cpus() >= 2 else None
        if child is None:
            build_package(model, batch_path, batch=True)
            build_package(model, path)
            return
        try:
            build_package(model, staged)
        except BaseException:
            child.kill()
            child.wait()
            raise
        child.wait()
        if child.returncode != 0:
            lines = (Path(work) / "child.log").read_text(errors="replace").strip().splitlines()
            staged.unlink(missing_ok=True)
            raise RuntimeError(f"the batch package's build failed: {lines[-1] if lines else child.returncode}")
        os.replace(staged, path)


def start_batch_build(model: Transformer, work: Path, batch_path: Path) -> subprocess.Popen | None:
    """A second Python building `model`'s batch package into `batch_path` (its output in `work`/child.log), or
    None where it cannot start."""
    weights = work / "model.safetensors"
    save_file({name: t.contiguous() for name, t in model.state_dict().items()}, weights)
    env = dict(os.environ)  # luoxia importable there as it is here (a checkout on sys.path, say)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "luoxia.text.aot_step", json.dumps(model.config.to_dict()), str(weights),
               str(batch_path)]
    try:
        with open(work / "child.log", "wb") as log:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    except OSError:
        return None


def build_batch_package(config: TransformerConfig, weights: Path, path: Path) -> None:
    """The second Python's work: the int4 model of `config` with `weights` (its state dict), and its batch
    package in `path`."""
    with torch.device("meta"):
        model = quantize(Transformer(config), "int4", empty=True)
    model.load_state_dict(cache.load_aligned(weights), assign=True, strict=True)
    build_package(model.eval(), path, batch=True)


def check_package(model: Transformer, package: Package, rows: int = 3) -> None:
    """Raise unless a one-token and a three-token call of `package` for `rows` rows give the eager model's
    logits (within CHECK_TOLERANCE). `package` serves either side of `batch_rows`: the one being built."""
    check_step(model, AotDecodeStep(model, package, package), rows)


def check_step(model: Transformer, step: Callable[..., torch.Tensor], rows: int = 3,
               counts: tuple[int, ...] = (1, 3)) -> None:
    """Raise unless `step` (a one-token forward, as `decode_steps` takes) called for `rows` rows of each of
    `counts` tokens, after a 5-token prompt, gives the eager model's logits (within CHECK_TOLERANCE)."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(model.config.vocab_size, (rows, 5 + max(counts)), generator=generator)
    caches = model.new_caches(rows, 16)
    with torch.inference_mode():
        model(tokens[:, :5], caches, 0)
        saved = [(c.k.clone(), c.v.clone()) for c in caches]
        for count in counts:
            new = tokens[:, 5:5 + count]
            ours = step(new, caches, 5).float()
            for cache, (k, v) in zip(caches, saved):
                cache.k.copy_(k)
                cache.v.copy_(v)
            theirs = model(new, caches, 5).float()
            gap = float((ours - theirs).abs().max() / (theirs.max() - theirs.min()).clamp(min=1e-6))
            if not gap <= CHECK_TOLERANCE:  # also catches NaN
                raise RuntimeError(f"the compiled step's logits are {gap:.3f} of their range away from the eager "
                                   f"step's ({count} tokens a row)")


def shared_constants(model: Transformer, names: list[str]) -> dict[str, torch.Tensor]:
    """The package's constants, by name, as the model's own tensors (no copies). Left out: any Inductor folded
    from the weights (computed at load; `weights_stay_views` keeps the transposes out) and any it made that
    this cannot supply (the load then fails, naming it)."""
    own = FlatStep(model).state_dict(keep_vars=True)
    int4 = any(isinstance(m, Int4Linear) for m in model.modules())
    constants = {}
    for name in names:
        if name in own:
            constants[name] = own[name].detach()
        elif name.startswith("constant") and int4:
            # Inductor's CPU int4 lowering passes the group size as an unnamed int64 scalar constant.
            constants[name] = torch.tensor(GROUP)
    return constants


class MissingKernelError(RuntimeError):
    """A package calls one of luoxia's kernels that is not registered in this process (it did not build)."""


class Package:
    """A loaded package, given `model`'s tensors as its constants, called with its flat tensors.
    PyTorch's loader is used directly: the wrapper `torch._inductor.aoti_load_package` imports Inductor
    (1 s) and parses the call spec on every call."""

    def __init__(self, path: Path, model: Transformer):
        decode_attention.KERNEL.load()  # the ops a package built with them calls must be registered first
        int8_matmul.load()
        try:
            self.loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        except RuntimeError as e:  # PyTorch says "Could not find schema for luoxia::<op>."
            missing = re.search(r"schema for (luoxia::\w+)", str(e))
            if missing is None:
                raise
            raise MissingKernelError(f"the package calls the kernel {missing[1]}, which did not build here; "
                                     f"delete {path} and run with --aot to rebuild it without") from e
        # user_managed: the package reads these tensors where they are (they live as long as `model`);
        # check_full_update: every constant not folded at load must be given.
        self.loader.load_constants(shared_constants(model, self.loader.get_constant_fqns()), use_inactive=False,
                                   check_full_update=True, user_managed=True)

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.loader.boxed_run(list(tensors))[0]


class AotDecodeStep:
    """The model's forward for decode steps and draft checks (`decode_steps`' `one_token_forward`) through a
    loaded package (and, for an int4 model's batches of `batch_rows` rows or more, `batch_package`); what
    the packages cannot serve (see the module notes) runs `model`."""

    def __init__(self, model: Transformer, package: Callable[..., torch.Tensor],
                 batch_package: Callable[..., torch.Tensor] | None = None):
        self.model, self.package, self.batch_package = model, package, batch_package
        self.max_cache = cache_limit(model)
        self.batch_rows = batch_rows(model) or MAX_ROWS + 1

    def __call__(self, tokens: torch.Tensor, caches: list[KVCache], start: int,
                 positions: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = caches[0].max_len
        rows, count = tokens.shape
        package = self.package if rows < self.batch_rows else self.batch_package
        if (package is None or not 1 <= count <= MAX_TOKENS or not isinstance(start, int) or start < 1
                or not 2 <= length <= self.max_cache or rows > MAX_ROWS
                or not all(c.k.is_contiguous() and c.v.is_contiguous() for c in caches)):
            return self.model(tokens, caches, start, positions, mask)
        if positions is None:
            positions = (start + torch.arange(count)).expand(rows, count)
        if mask is None:  # causal, no padding: every written column
            mask = padding_mask(torch.ones(rows, start + count, dtype=torch.bool), start, start + count)
        kv = [t for cache in caches for t in (cache.k, cache.v)]
        # The package reads its inputs with the strides of contiguous tensors.
        return package(tokens.contiguous(), positions.contiguous(), torch.tensor([start]), mask.contiguous(), *kv)


def aot_decode_step(model: Transformer, directory: Path, mode: str, build: bool = True,
                    log: Callable[[str], None] = note) -> AotDecodeStep | None:
    """The packaged step of `model` (quantized as `mode`), built into `directory` on first use (with
    `build`; without, None when there is no package yet); None, with a note, where building or
    loading fails (the caller then decodes eagerly). An int4 model's main package is kept last, so that its
    presence means both were built."""
    try:
        path = package_path(directory, mode)
        batch_path = package_path(directory, mode, batch=True) if batch_rows(model) else None
        if not path.exists():
            if not build:
                if outdated_packages(directory, mode):  # the user built one before: say why it is not used
                    log("note: the ahead-of-time decode step was built for another luoxia, torch or CPU; "
                        "run once with --aot to rebuild it (a minute or two); decoding eagerly")
                return None
            log("building the ahead-of-time decode step (once for this model and quantization: about a minute, "
                "two for int4) ...")
            t0 = time.perf_counter()
            sweep_leftovers(directory)
            if batch_path is not None:
                build_int4_packages(model, path, batch_path)
            else:
                build_package(model, path)
            log(f"built it in {time.perf_counter() - t0:.0f} s; later runs load it, with or without --aot")
            for old in outdated_packages(directory, mode):
                if superseded(old):
                    old.unlink(missing_ok=True)
        # A batch package deleted by hand leaves batches to the eager model.
        batch = Package(batch_path, model) if batch_path is not None and batch_path.exists() else None
        return AotDecodeStep(model, Package(path, model), batch)
    except Exception as e:  # noqa: BLE001 (no compiler, an unsupported op, a damaged package)
        why = str(e) if isinstance(e, MissingKernelError) else error_line(e)  # the whole path: the fix names it
        log(f"note: the ahead-of-time decode step is unavailable ({why}); decoding eagerly")
        return None


if __name__ == "__main__":  # the second Python of `build_int4_packages`: CONFIG_JSON WEIGHTS PACKAGE
    try:
        build_batch_package(TransformerConfig.from_dict(json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3]))
    except Exception as e:  # noqa: BLE001 (one line for the parent's note)
        sys.exit(error_line(e))
