"""The decode step compiled ahead of time (`TextModel.load(aot=True)`, `--aot`): built once into the model's
cache folder, reused by later loads, gives the eager model's tokens and logits, hands to the eager model
what it cannot serve, and a package that cannot load costs a note, not the run."""

from __future__ import annotations

import shutil

import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.text.aot_step import MAX_TOKENS, AotDecodeStep, check_step, package_path
from luoxia.text.kv_cache import KVCache


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("luoxia-home")


@pytest.fixture(scope="module")
def packaged(home, tiny_llama_dir):
    """The tiny Llama in float32 with its packaged step, built once for this module (about half a minute)."""
    from luoxia.text.pipeline import TextModel

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LUOXIA_HOME", str(home))
        return TextModel.load(str(tiny_llama_dir), quant="none", aot=True)


def test_packaged_step_gives_the_eager_tokens(packaged, tiny_llama_dir, home, monkeypatch):
    from luoxia.text.pipeline import TextModel

    monkeypatch.setenv("LUOXIA_HOME", str(home))
    assert packaged.load_info["aot"] and isinstance(packaged.decode_step, AotDecodeStep)
    eager = TextModel.load(str(tiny_llama_dir), quant="none", aot=False)
    prompts = ["hello world", "the cat sat on the mat and"]
    for prompt, new in zip(prompts, (12, 5)):  # batch 1, two cache lengths
        a = eager.generate(prompt, max_new_tokens=new, ignore_eos=True)
        b = packaged.generate(prompt, max_new_tokens=new, ignore_eos=True)
        assert a.token_ids == b.token_ids
        assert b.provenance.stats["aot"]
    for rows in (prompts, [*prompts, "a"]):  # left-padded batches: positions and a mask per row
        batch_a = eager.generate(rows, max_new_tokens=6, ignore_eos=True)
        batch_b = packaged.generate(rows, max_new_tokens=6, ignore_eos=True)
        assert [r.token_ids for r in batch_a] == [r.token_ids for r in batch_b]


def test_packaged_logits_match_the_model(packaged):
    """At the longest cache the package takes (the model's context), reading only the written columns: NaN in
    the others (attention over them through a mask gives NaN) must not reach the logits."""
    model = packaged.model
    caches = model.new_caches(2, model.config.max_seq_len)
    with torch.inference_mode():
        model(torch.tensor([[5, 9, 14, 3], [7, 7, 2, 8]]), caches, 0)
        for cache in caches:
            cache.k[:, :, 5:] = cache.v[:, :, 5:] = float("nan")
        reference = [(c.k.clone(), c.v.clone()) for c in caches]
        ours = packaged.decode_step(torch.tensor([[4], [6]]), caches, 4)
        for cache, (k, v) in zip(caches, reference):
            cache.k.copy_(k)
            cache.v.copy_(v)
        theirs = model(torch.tensor([[4], [6]]), caches, 4)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_draft_checks_go_through_the_package(packaged):
    """Several tokens after cached ones (a speculative check: the newest token and a draft) with the causal mask
    speculative decoding passes, or none, give the eager model's logits; prompt lookup gives the eager tokens."""
    from luoxia.text.generate import GenerationConfig, decode_steps
    from luoxia.text.speculative import SpeculationStats, speculative_steps

    model = packaged.model
    calls = []
    package = packaged.decode_step.package
    step = AotDecodeStep(model, lambda *tensors: calls.append(tensors[0].shape) or package(*tensors))
    caches = model.new_caches(2, 24)
    new = torch.tensor([[4, 8, 1, 6], [6, 2, 2, 9]])
    causal = torch.ones(4, 9, dtype=torch.bool).tril(5).expand(2, 1, 4, 9)
    with torch.inference_mode():
        model(torch.tensor([[5, 9, 14, 3, 2], [7, 7, 2, 8, 1]]), caches, 0)
        saved = [(c.k.clone(), c.v.clone()) for c in caches]
        for mask in (causal, None):
            ours = step(new, caches, 5, None, mask)
            for cache, (k, v) in zip(caches, saved):
                cache.k.copy_(k)
                cache.v.copy_(v)
            torch.testing.assert_close(ours, model(new, caches, 5, None, mask), atol=1e-4, rtol=1e-4)
    assert calls == [(2, 4), (2, 4)]

    ids = packaged.tokenizer.encode("the cat sat on the mat")
    plain = [int(t[0]) for t in decode_steps(model, [ids], GenerationConfig(max_new_tokens=16, ignore_eos=True), [], 0)]
    config = GenerationConfig(max_new_tokens=16, ignore_eos=True, prompt_lookup_num_tokens=6)
    stats = SpeculationStats()
    calls.clear()
    with torch.inference_mode():  # the answer as the prediction: drafts that the model keeps
        through = list(speculative_steps(model, ids, config, [], stats=stats, one_token_forward=step, prediction=plain))
    assert through == plain
    assert stats.drafted and any(shape[1] > 1 for shape in calls)  # drafts were checked by the package


def test_later_loads_reuse_the_package(packaged, tiny_llama_dir, home, monkeypatch, capfd):
    from luoxia.text.pipeline import TextModel

    monkeypatch.setenv("LUOXIA_HOME", str(home))
    path = package_path(home / "weights" / packaged.sha256, "none")
    assert path.is_file() and not list(path.parent.glob(".*.pt2"))  # no temporary file left
    built = path.stat().st_mtime_ns
    again = TextModel.load(str(tiny_llama_dir), quant="none", aot=True)
    assert again.load_info["aot"] and path.stat().st_mtime_ns == built
    assert "building" not in capfd.readouterr().err


def test_a_built_package_is_used_by_default_and_never_built_by_default(packaged, tiny_llama_dir, home, tmp_path,
                                                                       monkeypatch, capfd):
    from luoxia.text.pipeline import TextModel

    monkeypatch.setenv("LUOXIA_HOME", str(home))
    capfd.readouterr()
    default = TextModel.load(str(tiny_llama_dir), quant="none")
    assert default.load_info["aot"] and isinstance(default.decode_step, AotDecodeStep)
    assert TextModel.load(str(tiny_llama_dir), quant="none", aot=False).decode_step is None
    assert TextModel.load(str(tiny_llama_dir), quant="none", compile=True).load_info["aot"] is False
    assert TextModel.load(str(tiny_llama_dir), quant="none", use_cache=False).decode_step is None
    other = TextModel.load(str(tiny_llama_dir), quant="int8")  # no package for this quantization yet
    assert not other.load_info["aot"] and not package_path(home / "weights" / packaged.sha256, "int8").exists()
    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path))  # a home with no package: the default builds none
    fresh = TextModel.load(str(tiny_llama_dir), quant="none")
    assert fresh.decode_step is None and not list(tmp_path.rglob("*.pt2"))
    assert "ahead-of-time" not in capfd.readouterr().err


def test_an_outdated_package_is_named_then_replaced(packaged, tiny_llama_dir, home, tmp_path, monkeypatch, capfd):
    """After an upgrade the default load says why the old package is not used; a build removes it, and every
    other outdated package of that mode for this torch and CPU (a batch package, an older weight layout), but
    not those of another torch, CPU or a newer luoxia, which another environment may share the folder with."""
    from luoxia.text import aot_step
    from luoxia.text.pipeline import TextModel

    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path))
    directory = tmp_path / "weights" / packaged.sha256
    directory.mkdir(parents=True)
    outdated = package_path(directory, "none", aot_step.PACKAGE_FORMAT - 1)
    older = [outdated, package_path(directory, "none", aot_step.PACKAGE_FORMAT - 1, batch=True),
             outdated.with_name(outdated.name.replace(f".v{aot_step.LAYOUT_VERSION}.", ".v1."))]
    others = [outdated.with_name(outdated.name.replace(f"torch-{torch.__version__}", "torch-2.0.0")),
              outdated.with_name(outdated.name.replace(aot_step.cpu_tag(), "another-cpu")),
              package_path(directory, "int8", aot_step.PACKAGE_FORMAT - 1),
              package_path(directory, "none", aot_step.PACKAGE_FORMAT + 1)]
    for path in older + others:
        path.write_bytes(b"a package of the format before")
    capfd.readouterr()
    assert TextModel.load(str(tiny_llama_dir), quant="none").decode_step is None
    assert "run once with --aot to rebuild it" in capfd.readouterr().err
    built = package_path(home / "weights" / packaged.sha256, "none")
    monkeypatch.setattr(aot_step, "build_package", lambda model, path: shutil.copy(built, path))  # no second build
    rebuilt = TextModel.load(str(tiny_llama_dir), quant="none", aot=True)
    assert rebuilt.load_info["aot"]
    assert not any(path.exists() for path in older) and all(path.exists() for path in others)


def test_what_the_package_cannot_serve_runs_eagerly(packaged):
    model = packaged.model

    def refuse(*tensors):
        raise AssertionError("the package was called")

    step = AotDecodeStep(model, refuse)
    caches = model.new_caches(1, 8)
    with torch.inference_mode():
        step(torch.tensor([[1]]), caches, 0)  # the first position
        step(torch.tensor([[1, 2, 3]]), caches, 0)  # a prompt
        long = model.new_caches(1, MAX_TOKENS + 4)  # more tokens at once than the package takes
        step(torch.arange(MAX_TOKENS + 1)[None], long, 1)
        views = [KVCache.of(c.k[:, :, ::2], c.v[:, :, ::2]) for c in caches]  # views of larger caches
        step(torch.tensor([[4]]), views, 3)
        longer = model.new_caches(1, model.config.max_seq_len + 8)  # past the lengths it was exported for
        step(torch.tensor([[4]]), longer, 3)


def test_a_damaged_package_costs_a_note_not_the_run(packaged, tiny_llama_dir, home, monkeypatch, capfd):
    from luoxia.text.pipeline import TextModel

    monkeypatch.setenv("LUOXIA_HOME", str(home))
    path = package_path(home / "weights" / packaged.sha256, "none")
    saved = path.read_bytes()
    try:
        path.write_bytes(b"not a package")
        loaded = TextModel.load(str(tiny_llama_dir), quant="none", aot=True)
        assert not loaded.load_info["aot"] and loaded.decode_step is None
        assert "note: the ahead-of-time decode step is unavailable" in capfd.readouterr().err
        assert len(loaded.generate("hello", max_new_tokens=3, ignore_eos=True).token_ids) == 3
    finally:
        path.write_bytes(saved)


def test_a_package_whose_kernel_did_not_build_here_says_which_and_the_fix(packaged, tiny_llama_dir, home,
                                                                            monkeypatch, capfd):
    from luoxia.text.pipeline import TextModel

    def loader_without_the_kernel(*args):  # what PyTorch raises for a package calling an unregistered op
        raise RuntimeError("Could not find schema for luoxia::int8_matmul_vnni.")

    monkeypatch.setenv("LUOXIA_HOME", str(home))
    monkeypatch.setattr(torch._C._aoti, "AOTIModelPackageLoader", loader_without_the_kernel)
    loaded = TextModel.load(str(tiny_llama_dir), quant="none", aot=True)
    assert not loaded.load_info["aot"]
    path = package_path(home / "weights" / packaged.sha256, "none")
    note = capfd.readouterr().err
    assert (f"the package calls the kernel luoxia::int8_matmul_vnni, which did not build here; delete {path} and run "
            "with --aot to rebuild it without); decoding eagerly") in note
    assert path.exists()  # nothing deleted behind the user's back


def test_an_int4_package_shares_the_models_weights(tiny_llama_dir, tmp_path, monkeypatch):
    # Inductor's int4 lowering adds unnamed constants (the group size) that the loader must supply.
    from luoxia.text.pipeline import TextModel
    from luoxia.text.quant import BATCH_ROWS, Int4Linear

    monkeypatch.setenv("LUOXIA_HOME", str(tmp_path))
    packaged = TextModel.load(str(tiny_llama_dir), quant="int4", aot=True)
    assert packaged.load_info["aot"] and packaged.load_info["quant"] == "int4"
    eager = TextModel.load(str(tiny_llama_dir), quant="int4", aot=False)
    a = eager.generate("hello world", max_new_tokens=8, ignore_eos=True)
    b = packaged.generate("hello world", max_new_tokens=8, ignore_eos=True)
    assert a.token_ids == b.token_ids
    model, step = packaged.model, packaged.decode_step

    # Batches of BATCH_ROWS rows or more go through the second package (int8 products), smaller ones the first.
    assert step.batch_package is not None and step.batch_rows == BATCH_ROWS
    used = []
    for name in ("package", "batch_package"):
        run = getattr(step, name)
        monkeypatch.setattr(step, name, lambda *tensors, run=run, name=name: used.append(name) or run(*tensors))
    # The copies' scales halved (the package reads the model's tensors): only calls through the copy change.
    copies = [m.prefill.scales for m in model.modules() if isinstance(m, Int4Linear)]
    saved_scales = [t.clone() for t in copies]
    for t in copies:
        t.mul_(0.5)
    for rows in (BATCH_ROWS - 1, BATCH_ROWS + 1):
        # Eager takes the kernel below BATCH_ROWS, else the copy. The package keeps float32 between fused
        # operations where eager rounds to bfloat16, and int8 activations amplify that in a random model (3% of
        # the range here); wrong weights, or the other path, are off by far more than CHECK_TOLERANCE.
        check_step(model, step, rows, counts=(1,))
        assert used == ["package" if rows < BATCH_ROWS else "batch_package"], rows
        used.clear()
    for t, original in zip(copies, saved_scales):
        t.copy_(original)
    caches = model.new_caches(1, 8)
    with torch.inference_mode():
        model(torch.tensor([[5, 9, 14]]), caches, 0)
        before = step(torch.tensor([[4]]), caches, 3)
        model.layers[0].attention.wqkv.scales_and_zeros.zero_()  # the model's tensor, changed in place ...
        after = step(torch.tensor([[4]]), caches, 3)
    assert not torch.allclose(before, after)  # ... is the package's: it holds no copy of the weights
    assert_reads_in_place(model, step, model.layers[1].feed_forward.w_in.prefill.weight, rows=BATCH_ROWS)


def assert_reads_in_place(model, step, weight: torch.Tensor, rows: int) -> None:
    """`step` reads `weight` where it is, even after earlier calls: a package that had folded its transpose
    into a copy (made at the first call) would not see it change. `weight` is restored."""
    caches = model.new_caches(rows, 8)
    saved = weight.clone()
    with torch.inference_mode():
        model(torch.tensor([[5, 9, 14]]).expand(rows, 3), caches, 0)
        before = step(torch.full((rows, 1), 4), caches, 3)
        weight.zero_()
        after = step(torch.full((rows, 1), 4), caches, 3)
        weight.copy_(saved)
    assert not torch.allclose(before, after)


def test_the_package_reads_the_weights_not_transposed_copies(packaged):
    assert_reads_in_place(packaged.model, packaged.decode_step, packaged.model.layers[1].feed_forward.w_out.weight,
                          rows=2)


def test_an_int4_models_packages_are_kept_both_or_neither(tiny_llama_dir, tmp_path, monkeypatch):
    """The batch package builds in a second Python while this one builds the main package; when that fails, the
    main package is not kept (its presence says both were built) and the error reaches the caller, in one line."""
    from luoxia.text import aot_step
    from luoxia.text.pipeline import TextModel

    model = TextModel.load(str(tiny_llama_dir), quant="int4", aot=False).model
    monkeypatch.setattr(aot_step, "usable_cpus", lambda: 2)
    monkeypatch.setattr(aot_step, "build_package", lambda model, path, batch=False: path.write_bytes(b"main"))
    blocker = tmp_path / "a file"
    blocker.write_text("")
    # The second Python's real build cannot make its folder: a file is in the way.
    with pytest.raises(RuntimeError, match="the batch package's build failed: (FileExistsError|NotADirectoryError)"):
        aot_step.build_int4_packages(model, tmp_path / "decode.pt2", blocker / "decode-batch.pt2")
    assert list(tmp_path.iterdir()) == [blocker]  # nor the staged package, nor the weights handed over


def test_a_build_sweeps_what_killed_builds_left(tmp_path):
    import os
    import time

    from luoxia.text import aot_step

    old = [tmp_path / ".build-abc", tmp_path / ".decode.int4.v3.p7.1234.pt2", tmp_path / ".decode.int4.staged.pt2"]
    young = [tmp_path / ".build-def", tmp_path / ".decode.int4.v3.p7.5678.pt2"]  # a build running now
    kept = [tmp_path / "decode.int4.v3.p7.pt2", tmp_path / "model.safetensors"]
    for path in old + young:
        path.mkdir() if path.name.startswith(".build-") else path.write_bytes(b"part")
    (old[0] / "model.safetensors").write_bytes(b"weights")
    for path in kept:
        path.write_bytes(b"kept")
    long_ago = time.time() - aot_step.LEFTOVER_AGE_S - 60
    for path in old + kept:
        os.utime(path, (long_ago, long_ago))
    aot_step.sweep_leftovers(tmp_path)
    assert sorted(tmp_path.iterdir()) == sorted(young + kept)


@pytest.mark.parametrize("cpus", [1, 2], ids=["one cpu", "no second python"])
def test_int4_packages_build_in_turn_without_a_second_core_or_process(tmp_path, monkeypatch, cpus):
    from luoxia.text import aot_step

    built = []
    monkeypatch.setattr(aot_step, "usable_cpus", lambda: cpus)
    # With one CPU no second Python is asked for; with two it cannot start (no `sys.executable`, say).
    monkeypatch.setattr(aot_step, "start_batch_build",
                        lambda *args: pytest.fail("a second Python for one CPU") if cpus == 1 else None)
    monkeypatch.setattr(aot_step, "build_package", lambda model, path, batch=False: built.append((path.name, batch)))
    aot_step.build_int4_packages(None, tmp_path / "decode.pt2", tmp_path / "decode-batch.pt2")
    assert built == [("decode-batch.pt2", True), ("decode.pt2", False)]  # the main package last


def test_a_package_that_disagrees_with_the_eager_step_is_refused(packaged):
    from luoxia.text.aot_step import check_package

    vocab = packaged.model.config.vocab_size
    with pytest.raises(RuntimeError, match="of their range away"):
        check_package(packaged.model, lambda tokens, *rest: torch.zeros(tokens.shape[0], 1, vocab))


def test_compile_and_aot_are_alternatives(tiny_llama_dir):
    from luoxia.text.pipeline import TextModel

    with pytest.raises(InvalidParameterError, match="pick one"):
        TextModel.load(str(tiny_llama_dir), quant="none", compile=True, aot=True)


def test_continuous_batching_through_the_package(packaged):
    # The server's batch (`text.batching`): rows join mid-way, the cache grows; each row gets its solo tokens.
    from luoxia.text.batching import RunningBatch
    from luoxia.text.generate import GenerationConfig, decode_steps

    def alone(ids: list[int], n: int) -> list[int]:
        config = GenerationConfig(max_new_tokens=n, ignore_eos=True)
        return [int(t[0]) for t in decode_steps(packaged.model, [ids], config, [], 0)]

    calls = []
    package = packaged.decode_step.package
    step = AotDecodeStep(packaged.model, lambda *tensors: calls.append(1) or package(*tensors))
    batch = RunningBatch(packaged.model, GenerationConfig(), pad_id=0, one_token_forward=step)
    schedule = {0: ["hello world", "the cat sat on the mat and"], 3: ["a much longer prompt than the others here"]}
    jobs, got = {}, {}
    for i in range(12):
        for prompt in schedule.get(i, []):
            (row,) = batch.add([packaged.tokenizer.encode(prompt)], [8])
            jobs[row], got[prompt] = prompt, []
        if not batch.live_rows:
            continue
        for row, token in batch.step().items():
            got[jobs[row]].append(token)
            if len(got[jobs[row]]) == 8:
                batch.free(row)
        batch.advance()
    for prompt, tokens in got.items():
        assert tokens == alone(packaged.tokenizer.encode(prompt), 8), prompt
    assert calls  # the package ran the steps
