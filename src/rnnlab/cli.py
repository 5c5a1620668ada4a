"""The ``rnnlab`` command line. Heavy imports (torch) happen inside the commands, so that
``rnnlab --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UserError


def cmd_data_import(args) -> int:
    from .bundle import import_all

    stats = import_all(Path(args.src), Path(args.dst))
    print(json.dumps(stats, indent=2))
    print(f"wrote {args.dst}/ (see {args.dst}/SOURCES.md)")
    return 0


def cmd_data_summary(args) -> int:
    from .bundle import default_data_dir, summary

    info = summary(Path(args.data) if args.data else default_data_dir())
    names = info.pop("names")
    print(f"data folder: {info['data']}")
    print(f"names: {len(names)} languages, {sum(names.values()):,} non-empty lines")
    for label, n in names.items():
        print(f"  {label:<12} {n:>6,}")
    print(f"poems: {info.get('poems', 0):,} Tang poems (simplified)")
    print(f"sentiment: {', '.join(info['sentiment']) or 'none'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent networks from their equations: train, compare and inspect RNN, LSTM and GRU.",
    )
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="import or summarise the bundled data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    imp = dsub.add_parser("import", help="turn the raw sets into the project's data/ folder (deterministic)")
    imp.add_argument("--from", dest="src", default="../shared/data", help="raw data folder (default: %(default)s)")
    imp.add_argument("--to", dest="dst", default="data", help="output folder (default: %(default)s)")
    imp.set_defaults(func=cmd_data_import)
    summ = dsub.add_parser("summary", help="print what the bundled data holds")
    summ.add_argument("--data", help="data folder (default: the bundled one)")
    summ.set_defaults(func=cmd_data_summary)
    data.set_defaults(func=lambda a: (data.print_help(), 0)[1])
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
