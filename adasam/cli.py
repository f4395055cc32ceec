"""``python -m adasam``: the ML core's command line, one subcommand per module.

Every command lives in its own module (see :mod:`adasam.commands` for the shape) and is listed
once in ``COMMANDS`` below. User errors (bad file, bad bundle, bad argument, bad environment)
exit with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from adasam.commands import (
    bench,
    compare,
    domain_fit,
    evaluate,
    fit_classifier,
    phantoms,
    predict,
    pretrain_sam,
    propagate_bench,
    segex,
    train,
    train_clicks,
)
from adasam.errors import AdaSamError
from adasam.settings import Settings
from learning import finetune_command, models_command, simulate_command

EXIT_USAGE = 2

# The one registration list: add a command module here (order = order in --help). The learning
# loop's commands live in the ``learning`` package (they need storage, which the ML core does
# not import); their modules import nothing heavy at load time.
COMMANDS: list[ModuleType] = [
    predict,
    phantoms,
    train,
    train_clicks,
    evaluate,
    pretrain_sam,
    compare,
    domain_fit,
    fit_classifier,
    bench,
    segex,
    propagate_bench,
    finetune_command,
    models_command,
    simulate_command,
]


def command_name(module: ModuleType) -> str:
    return getattr(module, "NAME", module.__name__.rsplit(".", 1)[-1].replace("_", "-"))


def command_help(module: ModuleType) -> str:
    return getattr(module, "HELP", None) or (module.__doc__ or "").strip().splitlines()[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adasam",
        description="ADA-SAM command line: one subcommand per task (COMMAND --help for its flags).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        help_text = command_help(module)
        p = sub.add_parser(
            command_name(module),
            help=help_text,
            description=module.__doc__ or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    module: ModuleType = args._module
    args.argv = argv  # as given, for commands that record how they were run (compare)
    user_errors = (AdaSamError, *getattr(module, "USER_ERRORS", ()))
    try:
        settings = Settings.from_env()
        return module.run(args, settings)
    except user_errors as exc:
        return _fail(str(exc))
