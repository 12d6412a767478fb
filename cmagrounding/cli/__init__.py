"""The ``cmagrounding`` command line.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``cmagrounding --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "localize": ("cmagrounding.cli.localize", "find the moment a sentence describes in a video"),
    "info": ("cmagrounding.cli.info", "describe a pretrained model folder or hub id"),
    "demo": ("cmagrounding.cli.demo", "generate a video, localize its sentences, score them"),
    "extract-features": ("cmagrounding.cli.extract_features", "extract clip features from videos"),
    "convert-i3d": ("cmagrounding.cli.convert_i3d", "convert DeepMind's Kinetics-400 I3D to safetensors"),
    "train": ("cmagrounding.cli.train", "train a CMA model from a recipe"),
    "evaluate": ("cmagrounding.cli.evaluate", "evaluate a model on a dataset"),
    "data-stats": ("cmagrounding.cli.data_stats", "print dataset statistics and annotation quirks"),
    "pack-features": ("cmagrounding.cli.pack_features", "pack feature files into one memory-mapped store for training"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmagrounding", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen command's module is imported
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    for stream in (sys.stdout, sys.stderr):  # a path or query with an invalid UTF-8 byte prints escaped, not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    module = importlib.import_module(COMMANDS[args.command][0])
    from cmagrounding.errors import CMAGroundingError

    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CMAGroundingError as e:  # bad data or files: one line naming them, never a traceback
        message = str(e)
        if "Original Traceback" in message:  # re-raised from a DataLoader worker: its last line is the error
            message = message.strip().splitlines()[-1].split(": ", 1)[-1]
        print(f"cmagrounding {args.command}: error: {message}", file=sys.stderr)
        return 1
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # a Rust panic (tokenizers) derives from BaseException
            raise
        print(f"cmagrounding {args.command}: error: a native library panicked: {e}", file=sys.stderr)
        return 1
