"""The `luoxia` command: one entry point, one subcommand per task.

    luoxia generate "Once upon a time" --max-new-tokens 40
    luoxia chat --system "You answer in one sentence."
    luoxia models

This module builds the parser and dispatches; each command group lives in its own module and
imports torch and the models inside its command function, so `luoxia --help` stays fast.
A user error (a `LuoxiaError`, or a bad flag) is printed as one line and exits with 2; Ctrl-C
exits with 130. A traceback means a bug in luoxia.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

import luoxia
from luoxia.cli import data, error_line, generate, image, models, music, safety, serve, train, video
from luoxia.cli import eval as evaluate  # not `eval`: keep the builtin visible
from luoxia.core.errors import LuoxiaError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE


class Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line, like every other error of the CLI."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"luoxia: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="luoxia", allow_abbrev=False,
                    description="落霞 luoxia: offline AI-generated content, labelled as such.")
    parser.add_argument("--version", action="version", version=f"luoxia {luoxia.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    generate.register(commands)
    image.register(commands)
    music.register(commands)
    video.register(commands)  # luoxia video and luoxia video-edit
    models.register(commands)
    data.register(commands)
    train.register(commands)
    safety.register(commands)
    evaluate.register(commands)
    serve.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `luoxia` with `argv` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors have printed their text
        return e.code if isinstance(e.code, int) else EXIT_USER_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    try:
        return args.run(args)
    except LuoxiaError as e:
        print(error_line(e), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the line the ^C was echoed on
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`luoxia generate ... | head -1`): stop quietly, and point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
