"""Command line: `python -m brakes demo`."""

from __future__ import annotations

import argparse

from brakes import demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m brakes")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "demo", help="a web server past its capacity, with and without brakes.asgi.LoadShed"
    )
    run.add_argument(
        "--step-seconds", type=float, default=2.0, help="how long each load step lasts (2)"
    )
    run.add_argument("--plot", metavar="FILE", help="also draw the result as a PNG (matplotlib)")
    args = parser.parse_args(argv)
    if args.command is None:
        # Asked for nothing: say what there is, as `git` does; not an error.
        parser.print_help()
    elif args.command == "demo":
        if not args.step_seconds > 0:
            parser.error(f"--step-seconds must be more than 0, got {args.step_seconds}")
        demo.main(step_seconds=args.step_seconds, plot_path=args.plot)


if __name__ == "__main__":
    main()
