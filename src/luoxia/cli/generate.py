"""`luoxia generate` (one prompt, streamed) and `luoxia chat` (a conversation at a prompt line).

Both take the model flags (--model, --device, --dtype, --quant, --truncate, --threads) and the decoding flags, which
map one to one onto `GenerationConfig` fields. Every flag defaults to "not given" and only the
flags given are passed on, so GenerationConfig's defaults are the only defaults. The parameters are
validated before the model loads, so a bad flag fails at once.

Generated text goes to stdout, clean enough to pipe; the AI-generated notice, statistics and
messages go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from luoxia.cli import THREADS_HELP, error_line, use_threads
from luoxia.core import registry
from luoxia.core.artifact import TEXT_NOTICE, sidecar_path
from luoxia.core.errors import InputEncodingError, InvalidParameterError, LuoxiaError, UserFileError
from luoxia.core.registry import DEFAULT_TEXT_MODEL
from luoxia.text.generation_config import DRAFT_TOKENS, check_draft_tokens

if TYPE_CHECKING:
    from luoxia.core.background import Loader
    from luoxia.text.chat import Message
    from luoxia.text.pipeline import GenerationResult, TextModel

# Sampling parameters: giving any of them turns sampling on, unless --greedy says otherwise.
SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p")
EARLY_STOPPING = {"true": True, "false": False, "never": "never"}


@dataclasses.dataclass
class ModelChoice:
    """Which model to load and where; None leaves the choice to `TextModel.load`."""

    name: str | None
    device: str | None
    dtype: str | None
    quant: str | None
    compile: bool = False
    aot: bool | None = None  # None: a step built before by --aot, if there is one
    draft: str | None = None  # a draft model for speculative decoding (text.draft_model)
    draft_quant: str | None = None
    draft_tokens: int | None = None


# --- flags ---------------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "generate", help="continue a prompt, streaming the text",
        description="Generate text from a prompt and stream it to stdout; the AI-generated notice and "
                    "statistics go to stderr.",
    )
    p.add_argument("prompt", nargs="?", metavar="PROMPT", help='the prompt; "-" reads it from stdin')
    p.add_argument("--prompt-file", type=Path, metavar="FILE", help="read the prompt from FILE (UTF-8)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--chat", dest="chat", action="store_const", const=True,
                      help="put the prompt through the model's chat template as a user message "
                           "(the default when the model has a chat template)")
    mode.add_argument("--raw", dest="chat", action="store_const", const=False,
                      help="continue the prompt as plain text, without the chat template")
    p.add_argument("--system", metavar="TEXT", help="system prompt (implies --chat)")
    _add_model_flags(p)
    _add_draft_flags(p)
    p.add_argument("--no-head-start", dest="head_start", action="store_false",
                   help="load the model before the first token. By default a greedy run of a cached GGUF model shows "
                        "its first 8 tokens from a NumPy float32 copy while torch loads (text.head_start), so "
                        "the two answers differ where float32 and the quantized model pick different tokens")
    _add_decoding_flags(p)
    _add_safety_flags(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", dest="as_json", action="store_true",
                     help="print the whole result (text, token ids, provenance) as JSON instead of streaming")
    out.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="also save the text with its AI-generated notice, and FILE.aigc.json with its provenance")
    p.set_defaults(run=lambda args: generate(
        prompt=args.prompt, prompt_file=args.prompt_file, model=_model_choice(args), params=decoding_params(args),
        chat=args.chat, system=args.system, truncate=args.truncate, as_json=args.as_json, output=args.output,
        safety=safety_config(args), head_start=args.head_start,
    ))

    c = commands.add_parser(
        "chat", help="talk with a chat model",
        description="An interactive conversation with a chat model. Commands: /reset, /system TEXT, /help, "
                    "/exit (or Ctrl-D). Ctrl-C stops an answer; at the prompt line it quits.",
    )
    c.add_argument("--system", metavar="TEXT", help="system prompt (default: the model's own)")
    _add_model_flags(c)
    _add_draft_flags(c)
    _add_decoding_flags(c)
    _add_safety_flags(c)
    c.set_defaults(run=lambda args: chat(model=_model_choice(args), params=decoding_params(args),
                                         system=args.system, truncate=args.truncate, safety=safety_config(args)))


def _add_safety_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("safety", "On by default: a content filter on the prompt and the output, PII counted in "
                                       "the prompt and redacted in the output; all recorded in the provenance.")
    g.add_argument("--no-safety", action="store_true", help="turn the filter and PII checks off (recorded)")
    g.add_argument("--filter-terms", type=Path, metavar="FILE",
                   help='add your own filter terms: JSON or TOML {"category": ["term", ...]}')
    g.add_argument("--pii-input", choices=["warn", "redact", "off"], help="PII in the prompt: count it (warn, the "
                                                                         "default), redact it, or ignore it")


def safety_config(args: argparse.Namespace):
    """The SafetyConfig the flags ask for."""
    from luoxia.safety.filter import ContentFilter
    from luoxia.safety.policy import SafetyConfig

    if args.no_safety:
        return SafetyConfig(enabled=False, disabled_by="--no-safety")
    content_filter = ContentFilter.from_file(args.filter_terms) if args.filter_terms else ContentFilter()
    return SafetyConfig(content_filter=content_filter, pii_input=args.pii_input or "warn")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME|PATH",
                   help=f"registry name, .gguf file or Hugging Face folder (default: {DEFAULT_TEXT_MODEL}; "
                        "see `luoxia models`)")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    g.add_argument("--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on GPU)")
    g.add_argument("--quant", choices=["auto", "none", "int8", "int4", "w8a8"],
                   help="weight quantization on the CPU (default auto: a 4-bit GGUF runs as int4, an 8-bit one "
                        "as int8, float weights unquantized); none computes in --dtype and matches transformers; "
                        "w8a8 quantizes activations too and is the fastest for batches of prompts")
    g.add_argument("--compile", action="store_true",
                   help="compile the decode step with torch.compile (a quantized model then runs as w8a8 unless "
                        "--quant says otherwise): 1.5-1.8x the eager CPU decode speed, after a compile of about "
                        "8 s (cached) to minutes (first ever); for long outputs and servers")
    aot = g.add_mutually_exclusive_group()
    aot.add_argument("--aot", action="store_const", const=True,
                     help="build the decode step compiled ahead of time (CPU) if it is not built yet, and decode "
                          "through it: about 2x the eager int4 speed; built once per model and --quant (about a "
                          "minute), loaded in 0.15 s, and used from then on by default")
    aot.add_argument("--no-aot", dest="aot", action="store_const", const=False,
                     help="decode eagerly even where a step compiled ahead of time is built")
    g.add_argument("--truncate", action="store_true",
                   help="drop the oldest prompt tokens when the prompt does not fit the context window")
    g.add_argument("--threads", type=int, metavar="N",
                   help=f"{THREADS_HELP} (on a 2-core Xeon, 2 threads decoded 1.65x as fast as 1)")


def _add_draft_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("draft model", "Speculative decoding with a cheaper model of the same tokenizer: it "
                             "drafts a few tokens, the model checks them in one forward and keeps what it agrees with, "
                             "so the text is the model's own (text.draft_model)")
    g.add_argument("--draft-model", dest="draft", metavar="NAME|PATH",
                   help="the draft model, e.g. the embedded smollm2 (int4) for --model smollm2 --quant none, or "
                        "for a larger SmolLM2")
    g.add_argument("--draft-quant", choices=["auto", "none", "int8", "int4", "w8a8"],
                   help="the draft model's quantization (default auto, as --quant)")
    g.add_argument("--draft-tokens", type=int, metavar="N", help=f"the longest draft (default {DRAFT_TOKENS})")


def _add_decoding_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding", "Unset flags keep the defaults of "
                                         "luoxia.text.generation_config.GenerationConfig "
                                         "(greedy decoding, named as in transformers).")
    g.add_argument("--max-new-tokens", type=int, metavar="N", help="generate at most N tokens")
    g.add_argument("--min-new-tokens", type=int, metavar="N", help="forbid end-of-sequence before N new tokens")
    g.add_argument("--max-length", type=int, metavar="N", help="prompt + new tokens at most N (overrides "
                                                                "--max-new-tokens)")
    how = g.add_mutually_exclusive_group()
    how.add_argument("--sample", dest="do_sample", action="store_const", const=True,
                     help="sample (switched on by --temperature, --top-k, --top-p or --min-p)")
    how.add_argument("--greedy", dest="do_sample", action="store_const", const=False,
                     help="always pick the most likely token")
    g.add_argument("--temperature", type=float, metavar="T", help="sampling temperature; 0 means greedy")
    g.add_argument("--top-k", type=int, metavar="K", help="sample from the K most likely tokens")
    g.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling: the smallest set with probability P")
    g.add_argument("--min-p", type=float, metavar="P", help="drop tokens below P times the top probability")
    g.add_argument("--repetition-penalty", type=float, metavar="X", help="penalise tokens already present (> 1)")
    g.add_argument("--frequency-penalty", type=float, metavar="X",
                   help="OpenAI's: subtract X per earlier occurrence of a generated token ([-2, 2])")
    g.add_argument("--presence-penalty", type=float, metavar="X",
                   help="OpenAI's: subtract X once from every token generated so far ([-2, 2])")
    g.add_argument("--no-repeat-ngram-size", type=int, metavar="N", help="never repeat an N-gram")
    g.add_argument("--num-beams", type=int, metavar="N", help="beam search with N beams (greedy only)")
    g.add_argument("--length-penalty", type=float, metavar="X", help="beam score exponent on length")
    g.add_argument("--early-stopping", choices=list(EARLY_STOPPING), help="when beam search stops")
    g.add_argument("--stop", action="append", metavar="STR", help="stop before STR (repeatable)")
    g.add_argument("--seed", type=int, help="random seed for sampling (recorded in the provenance)")
    g.add_argument("--ignore-eos", action="store_const", const=True, help="keep going past end-of-sequence")
    g.add_argument("--prompt-lookup", dest="prompt_lookup_num_tokens", type=int, metavar="N",
                   help="speculative decoding: draft up to N tokens copied from earlier text, checked in one step "
                        "(e.g. 8; with --quant w8a8 1.4-3.7x faster when the answer restates the prompt)")
    g.add_argument("--prediction", type=Path, metavar="FILE",
                   help="text the answer will largely repeat (the file being edited): drafted from, as OpenAI's "
                        "predicted outputs; the answer stays the same, only faster")
    w = p.add_argument_group("watermark", "A green-list watermark (Kirchenbauer et al. 2023) that `luoxia detect "
                                          "FILE --key KEY` finds; the provenance records gamma, delta and a key id.")
    w.add_argument("--watermark", metavar="KEY", help="watermark the text with this secret key")
    w.add_argument("--watermark-gamma", type=float, metavar="G", help="green-list fraction (default 0.25)")
    w.add_argument("--watermark-delta", type=float, metavar="D", help="logit bias of green tokens (default 2.0)")


def decoding_params(args: argparse.Namespace) -> dict:
    """The GenerationConfig fields the user gave, and only those."""
    fields = ("max_new_tokens", "min_new_tokens", "max_length", "do_sample", "temperature", "top_k", "top_p", "min_p",
              "repetition_penalty", "frequency_penalty", "presence_penalty", "no_repeat_ngram_size", "num_beams",
              "length_penalty", "seed", "ignore_eos", "prompt_lookup_num_tokens")
    params = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    if args.early_stopping is not None:
        params["early_stopping"] = EARLY_STOPPING[args.early_stopping]
    if args.stop:
        params["stop"] = tuple(args.stop)
    if "do_sample" not in params and any(f in params for f in SAMPLING_FIELDS):
        params["do_sample"] = True
    watermark = _watermark(args)
    if watermark is not None:
        params["watermark"] = watermark
    if getattr(args, "prediction", None) is not None:
        params["prediction"] = _read_text(args.prediction, "--prediction")
    return params


def _read_text(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserFileError(f"cannot read {flag} {path}: {e.strerror}; check the path") from None
    except UnicodeDecodeError:
        raise InputEncodingError(f"{flag} {path} is not UTF-8 text; convert it to UTF-8") from None


def _watermark(args: argparse.Namespace):
    """A WatermarkConfig from --watermark KEY (and its gamma/delta flags), or None."""
    gamma, delta = getattr(args, "watermark_gamma", None), getattr(args, "watermark_delta", None)
    if getattr(args, "watermark", None) is None:
        if gamma is not None or delta is not None:
            raise InvalidParameterError("--watermark-gamma/--watermark-delta need --watermark KEY")
        return None
    from luoxia.safety.watermark import WatermarkConfig  # torch: only when asked for

    given = {k: v for k, v in (("gamma", gamma), ("delta", delta)) if v is not None}
    return WatermarkConfig(key=args.watermark, **given)


def _model_choice(args: argparse.Namespace) -> ModelChoice:
    """The model flags, checked; --threads takes effect here, before anything loads."""
    use_threads(args.threads)
    choice = ModelChoice(args.model, args.device, args.dtype, args.quant, args.compile, args.aot,
                         getattr(args, "draft", None), getattr(args, "draft_quant", None),
                         getattr(args, "draft_tokens", None))
    if choice.draft is None and (choice.draft_quant is not None or choice.draft_tokens is not None):
        raise InvalidParameterError("--draft-quant and --draft-tokens set up a draft model; add --draft-model NAME")
    if choice.draft_tokens is not None:
        check_draft_tokens(choice.draft_tokens)
    return choice


# --- generate ------------------------------------------------------------------------------------


def generate(*, prompt: str | None, prompt_file: Path | None, model: ModelChoice, params: dict, chat: bool | None,
             system: str | None, truncate: bool, as_json: bool, output: Path | None, safety=None,
             head_start: bool = True) -> int:
    """Generate from one prompt: stream it to stdout (or print JSON), optionally save it labelled. With
    `head_start`, a greedy run of a cached model streams its first tokens before torch loads."""
    from luoxia.text.prompting import as_text

    _check_params(params)
    if system is not None and chat is False:
        raise InvalidParameterError("--system needs chat mode; drop --raw")
    text = as_text(read_prompt(prompt, prompt_file))
    if output is not None and output.is_dir():
        raise InvalidParameterError(f"-o {output} is a folder; give a file name")
    head = _head_start(model) if head_start and not as_json else None
    text_model = None if head is not None else load_model(model, safety)
    chat = use_chat(head or text_model, chat, system)
    kwargs = dict(chat=chat, system=system, truncate=truncate, **params)
    row = head.begin(text, safety=safety, **kwargs) if head is not None else None
    if as_json:
        result = text_model.generate(text, **kwargs)
        print(json.dumps({**result.to_dict(), "notice": TEXT_NOTICE}, ensure_ascii=False, indent=2))
    else:
        if row is not None:
            stream = head.stream(row, lambda: load_model(model, safety))
        else:
            stream = (text_model or load_model(model, safety)).stream(text, **kwargs)
        try:
            for piece in stream:
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:  # what was shown is generated text too: label it, then stop
            sys.stdout.write("\n")
            print(TEXT_NOTICE, file=sys.stderr)
            raise
        finally:
            stream.close()
        sys.stdout.write("\n")
        sys.stdout.flush()
        result = stream.result
    if output is not None:
        _save(result, output)
    print(TEXT_NOTICE, file=sys.stderr)
    print(stats_line(result), file=sys.stderr)
    return 0


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str | bytes:
    """The prompt from the argument, from stdin ("-") or from a file (as bytes, checked as UTF-8 later)."""
    if prompt is not None and prompt_file is not None:
        raise InvalidParameterError("give the prompt as an argument or with --prompt-file, not both")
    if prompt_file is not None:
        try:
            return prompt_file.read_bytes()
        except OSError as e:
            reason = f"cannot read --prompt-file {prompt_file}: {e.strerror}"
            raise UserFileError(f"{reason}; check the path") from None
    if prompt is None:
        raise InvalidParameterError('no prompt; give one (luoxia generate "Once upon a time"), '
                                    'or --prompt-file FILE, or "-" to read stdin')
    if prompt == "-":
        return sys.stdin.buffer.read()
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:  # argv bytes that were not UTF-8 (kept as surrogates): report them as such
        return os.fsencode(prompt)
    return prompt


def _save(result: GenerationResult, output: Path) -> None:
    try:
        path = result.artifact.save(output)
    except OSError as e:
        raise UserFileError(f"cannot write -o {output}: {e.strerror}; choose another path") from None
    side = sidecar_path(path)
    print(f"saved {path} and {side}" if side.exists() else f"saved {path} (labels inside)", file=sys.stderr)


# --- chat ----------------------------------------------------------------------------------------

CHAT_HELP = """commands:
  /reset         forget the conversation
  /system TEXT   set the system prompt (/system alone: back to the model's own)
  /help          this list
  /exit          quit (also Ctrl-D; Ctrl-C stops an answer, and quits at the prompt line)"""


def chat(*, model: ModelChoice, params: dict, system: str | None, truncate: bool, safety=None) -> int:
    """Talk with the model: read lines from stdin, stream each answer, keep the history.

    At a terminal the prompt line shows at once and the model loads behind it (torch and the weights take a
    second and more) while the first message is typed. With input from a pipe, or with --compile or --aot
    (whose compiles report their progress), the model loads first, so a problem is reported before anything else."""
    from luoxia.core.background import Loader

    _check_params(params)
    name = model.name or DEFAULT_TEXT_MODEL
    registry.resolve(name)  # a mistyped name or path fails here, before the prompt line
    interactive = sys.stdin.isatty()

    def load() -> TextModel:
        loaded = load_model(model, safety)
        use_chat(loaded, True, system)
        return loaded

    loader: Loader[TextModel] = Loader(load)
    loader.start()
    if not interactive or model.compile or model.aot:  # --aot may build first
        loader.result()
    session = ChatSession(loader, params, system, truncate)
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    print(f"chatting with {name}; /help for commands, /exit or Ctrl-D to quit", file=sys.stderr)
    print(TEXT_NOTICE, file=sys.stderr)
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            line = ""
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 0
        if not line:  # end of input
            if interactive:
                print(file=sys.stderr)
            return 0
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not session.command(line):
                return 0
            continue
        session.ask(line)


class ChatSession:
    """A conversation: its messages, its system prompt and the decoding parameters; the model comes from a
    `Loader`, which may still be loading it."""

    def __init__(self, loader: Loader[TextModel], params: dict, system: str | None, truncate: bool):
        self.loader, self.params, self.system, self.truncate = loader, params, system, truncate
        self.history: list[Message] = []

    @property
    def model(self) -> TextModel:
        """The loaded model, waiting for it if need be (a load error is raised here: the chat ends with it)."""
        if not self.loader.ready:
            _note("(loading the model ...)")
        return self.loader.result()

    def command(self, line: str) -> bool:
        """Run a /command; False means quit."""
        name, _, rest = line.partition(" ")
        if name in ("/exit", "/quit"):
            return False
        if name == "/reset":
            self.history.clear()
            _note("conversation cleared")
        elif name == "/system":
            self.system = rest.strip() or None
            _note(f"system prompt set to {self.system!r}" if self.system else "system prompt: the model's own")
        elif name == "/help":
            _note(CHAT_HELP)
        else:
            _note(f"unknown command {name}; /help lists the commands")
        return True

    def ask(self, text: str) -> None:
        """Stream the answer to `text`; Ctrl-C stops it, and the part shown stays in the history. Ctrl-C while
        the model is still loading drops the message and goes back to the prompt line (loading goes on)."""
        out = sys.stdout
        try:
            model = self.model
        except KeyboardInterrupt:
            _note("\n(message dropped: the model is still loading)")
            return
        self.history.append({"role": "user", "content": text})
        try:
            stream = model.stream_chat(self.history, self.system, self.truncate, **self.params)
        except LuoxiaError as e:
            self.history.pop()
            print(error_line(e) + " (/reset clears the conversation)", file=sys.stderr)
            return
        pieces: list[str] = []
        try:
            for piece in stream:
                pieces.append(piece)
                out.write(piece)
                out.flush()
        except KeyboardInterrupt:
            pass  # the answer stops here; the result says "interrupted"
        finally:
            stream.close()
        out.write("\n")
        out.flush()
        self.history.append({"role": "assistant", "content": "".join(pieces)})
        if stream.result is not None:
            print(stats_line(stream.result), file=sys.stderr)


def _note(text: str) -> None:
    print(text, file=sys.stderr)


# --- shared --------------------------------------------------------------------------------------


def _check_params(params: dict) -> None:
    from luoxia.text.generation_config import GenerationConfig

    GenerationConfig(**params).validate()


def _head_start(choice: ModelChoice):
    """The NumPy head start (`text.head_start`) for this model, or None: only for a model as loaded by default
    on the CPU (no --dtype, --device, --compile or --aot, which have their own checks, builds and warm-up)
    whose converted weights are cached. (A step --aot built before loads with the model, behind the head start.)"""
    from luoxia.text.head_start import HeadStart

    if (choice.dtype is not None or choice.device not in (None, "cpu") or choice.compile or choice.aot
            or choice.draft is not None):
        return None
    return HeadStart.open(choice.name or DEFAULT_TEXT_MODEL)


def load_model(choice: ModelChoice, safety=None) -> TextModel:
    """Check the device and dtype (fast), then load the model (slow), with `safety` if given."""
    from luoxia.core.device import pick_device, pick_dtype
    from luoxia.text.pipeline import TextModel

    pick_dtype(choice.dtype, pick_device(choice.device))
    given = {"name_or_path": choice.name, "device": choice.device, "dtype": choice.dtype, "quant": choice.quant}
    loaded = TextModel.load(**{k: v for k, v in given.items() if v is not None}, compile=choice.compile,
                            aot=choice.aot)
    if safety is not None:
        loaded.safety = safety
    if choice.draft is not None:
        loaded.use_draft(choice.draft, tokens=choice.draft_tokens or DRAFT_TOKENS, quant=choice.draft_quant or "auto")
    if choice.compile:  # now, so that the first answer's speed is its own and not the compiler's
        print("compiling the decode step ...", end=" ", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        loaded.warm_up(batches=False)
        print(f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return loaded


def use_chat(model: TextModel, chat: bool | None, system: str | None) -> bool:
    """Chat mode: as asked, else whenever the model has a chat template (or a system prompt is given)."""
    has_template = model.has_chat_template
    if chat is None:
        chat = has_template or system is not None
    if chat and not has_template:
        raise InvalidParameterError(f"the model {model.name} has no chat template, so it cannot chat; "
                                    "use `luoxia generate --raw` without --system")
    return chat


def stats_line(result: GenerationResult) -> str:
    """One line of counts and timings: `[8 tokens · prompt 31 · first token 0.11 s · 35.2 tok/s · ...]`."""
    s = result.provenance.stats
    rate = s.get("decode_tokens_per_s")
    parts = [f"{s['new_tokens']} tokens", f"prompt {s['prompt_tokens']}",
             f"first token {s['time_to_first_token_s']:.2f} s", f"{rate:.1f} tok/s" if rate else "- tok/s",
             f"finish: {s['finish_reason']}",
             *([_speculation_note(s["speculation"])] if s.get("speculation") else []),
             *([_head_start_note(s)] if s.get("head_start_tokens") else []),
             " ".join([s["device"], s["dtype"], *([s["quant"]] if s.get("quant", "none") != "none" else []),
                       *(["aot" if s.get("aot") else "compiled"] if s.get("compiled") else [])])]
    return "[" + " · ".join(parts) + "]"


def _head_start_note(stats: dict) -> str:
    after = stats.get("tokens_per_s_after_head_start")
    return f"head start: {stats['head_start_tokens']} from NumPy" + (f", then {after:.1f} tok/s" if after else "")


def _speculation_note(speculation: dict) -> str:
    rate = speculation["acceptance_rate"]
    kept = f"{speculation['accepted']}/{speculation['drafted']} drafted kept" if rate is not None else "no drafts"
    drafter = speculation.get("drafter", "lookup")
    return f"{'lookup' if drafter == 'lookup' else 'draft ' + drafter}: {kept} in {speculation['forwards']} steps"
