"""The ``crossnet-fast`` command line.

Each sub-command lives in ``crossnet_fast/commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``; this file only
discovers them, so adding a command never touches it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from safetensors import SafetensorError

from . import commands as _commands


def _command_modules():
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{_commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossnet-fast",
        description="Reference-based super-resolution (CrossNet) on fused warp ops.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sp = module.add_parser(sub)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, OSError, RuntimeError, SafetensorError) as exc:
        # Bad input (and a full disk or a read-only folder: OSError, or SafetensorError from a
        # safetensors write) reaches the user as one clear line, not a traceback.
        print(f"crossnet-fast {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return 1


def error_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line. An exception re-raised from a DataLoader worker carries
    the worker's whole traceback in its message: only its last line (the original error) is kept."""
    text = str(exc).strip()
    if "Traceback (most recent call last)" in text:
        last = text.splitlines()[-1].strip()
        name = f"{type(exc).__name__}: "
        text = last[len(name) :] if last.startswith(name) else last
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
