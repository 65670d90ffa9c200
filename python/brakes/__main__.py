"""Command line: `python -m brakes demo`."""

from __future__ import annotations

import argparse

from brakes import demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m brakes")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="a gauge under a burst of concurrent callers")
    run.add_argument("--callers", type=int, default=400, help="callers in the burst")
    run.add_argument("--limit", type=int, default=10, help="the gauge's limit")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo.main(callers=args.callers, limit=args.limit)


if __name__ == "__main__":
    main()
