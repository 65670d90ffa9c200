"""Draws the ratio tables of docs/benchmarks.md, one horizontal bar chart each.

A table is drawn when its header has a median-ratio column (one whose title
says "(median)", such as "brakes / peer (median)") and a spread column (one
whose title says "IQR"). Each row becomes a bar: the median ratio, with the
interquartile range drawn as an error bar of that width centred on the
median, and a vertical line at 1.0. A row whose scenario cell is empty
continues the scenario of the row above it.

Most rows compare times, where below 1.0 means brakes is faster. A row whose
scenario starts with a rate ("decisions/s, ...", "requests/s ...") compares
rates, where above 1.0 means brakes is faster; rows of memory and of Redis
commands compare amounts, where below 1.0 means brakes uses less. Such rows
say so in their label, and each bar is coloured by whether brakes is ahead.

Each chart is written as `bench-<slug>.png`, the slug made from the heading of
the section that holds the table (a second table in one section gets `-2`),
into docs/img/ or the folder given with `--out`:

    pip install '.[plot]'
    python benchmarks/plot_tables.py
"""

from __future__ import annotations

import argparse
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "docs" / "img"

Kind = Literal["time", "rate", "memory", "commands"]

# What a ratio above or below 1.0 says, by the kind of row.
NOTES: dict[Kind, str] = {
    "time": "",
    "rate": "a rate: above 1.0, brakes is faster",
    "memory": "memory: below 1.0, brakes uses less",
    "commands": "Redis commands: below 1.0, brakes sends fewer",
}

Standing = Literal["ahead", "level", "behind"]
COLOURS: dict[Standing, str] = {"ahead": "tab:blue", "level": "tab:gray", "behind": "tab:orange"}
LABEL_WIDTH = 58


@dataclass
class Row:
    scenario: str
    peer: str
    ratio: float
    ratio_text: str
    spread: float | None
    spread_text: str

    @property
    def kind(self) -> Kind:
        text = self.scenario.lower()
        if re.match(r"[\w-]+/s\b", text):
            return "rate"
        if text.startswith(("memory", "peak memory")):
            return "memory"
        if "commands per" in text:
            return "commands"
        return "time"

    @property
    def standing(self) -> Standing:
        """Whether brakes is ahead of its peer in this row, level or behind."""
        if self.ratio == 1.0:
            return "level"
        ahead = self.ratio > 1.0 if self.kind == "rate" else self.ratio < 1.0
        return "ahead" if ahead else "behind"

    def label(self) -> str:
        lines = textwrap.wrap(self.scenario, LABEL_WIDTH)
        lines += textwrap.wrap(f"vs {self.peer}", LABEL_WIDTH)
        note = NOTES[self.kind]
        if note:
            lines.append(f"({note})")
        return "\n".join(lines)


@dataclass
class Table:
    heading: str
    slug: str
    ratio_title: str
    rows: list[Row] = field(default_factory=list)

    @property
    def image(self) -> str:
        return f"bench-{self.slug}.png"

    @property
    def subject(self) -> str:
        """Who the ratio's numerator is: "brakes", or "the new build"."""
        return "the new build" if self.ratio_title.startswith("new") else "brakes"


def slug(heading: str) -> str:
    """The heading without its parenthesis, in lower case, words joined by '-'."""
    words = re.sub(r"\(.*?\)", "", heading).lower()
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-")


def plain(cell: str) -> str:
    """A cell's text without code marks."""
    return cell.replace("`", "").strip()


def number(cell: str) -> float | None:
    """The number a cell starts with ("0.30", "0.00007", "1,000"), a sign after it
    ignored; None if it starts with none."""
    found = re.match(r"\s*(\d[\d,]*(?:\.\d+)?)", cell)
    return float(found.group(1).replace(",", "")) if found else None


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables(page: str) -> list[Table]:
    """Every table of `page` with a median-ratio and a spread column."""
    found: list[Table] = []
    heading = ""
    per_heading: dict[str, int] = {}
    lines = page.splitlines()
    at = 0
    while at < len(lines):
        line = lines[at]
        if line.startswith("## "):
            heading = line[3:].strip()
        if not (line.startswith("|") and at + 1 < len(lines) and lines[at + 1].startswith("|-")):
            at += 1
            continue
        header = cells(line)
        body = []
        at += 2
        while at < len(lines) and lines[at].startswith("|"):
            body.append(cells(lines[at]))
            at += 1
        ratio_at = next((i for i, title in enumerate(header) if "(median)" in title), None)
        spread_at = next((i for i, title in enumerate(header) if "IQR" in title), None)
        if ratio_at is None or spread_at is None:
            continue
        count = per_heading[heading] = per_heading.get(heading, 0) + 1
        name = slug(heading) + ("" if count == 1 else f"-{count}")
        table = Table(heading, name, header[ratio_at])
        scenario = ""
        for row in body:
            scenario = plain(row[0]) or scenario
            ratio = number(row[ratio_at])
            if ratio is None:
                continue
            peer = plain(row[1]) if ratio_at > 1 else ""
            spread = row[spread_at]
            table.rows.append(
                Row(scenario, peer, ratio, plain(row[ratio_at]), number(spread), plain(spread))
            )
        found.append(table)
    return found


def draw(table: Table, path: Path) -> None:
    rows = table.rows
    labels = [row.label() for row in rows]
    heights = [label.count("\n") + 1 for label in labels]
    # A slot per row as tall as its label, the first row at the top.
    positions: list[float] = []
    top = 0.0
    for height in heights:
        slot = max(1.0, 0.42 * height + 0.3)
        positions.append(-(top + slot / 2))
        top += slot
    ratios = [row.ratio for row in rows]
    halves = [(row.spread or 0.0) / 2 for row in rows]
    logarithmic = max(ratios) / min(ratios) > 30
    if logarithmic:
        # An error bar may not reach 0 on a log scale.
        below = [min(half, ratio * 0.9) for half, ratio in zip(halves, ratios, strict=True)]
    else:
        below = halves

    figure, axes = plt.subplots(figsize=(11, 2.0 + 0.3 * top), layout="constrained")
    colours = [COLOURS[row.standing] for row in rows]
    axes.barh(positions, ratios, height=0.6, color=colours, alpha=0.85, zorder=2)
    axes.errorbar(
        ratios,
        positions,
        xerr=[below, halves],
        fmt="none",
        ecolor="black",
        elinewidth=1,
        capsize=4,
        zorder=3,
    )
    axes.axvline(1.0, color="black", linewidth=1.2, linestyle="--", zorder=4)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_ylim(-top - 0.2, 0.2)
    if logarithmic:
        axes.set_xscale("log")
        low = min(ratio - half for ratio, half in zip(ratios, below, strict=True))
        high = max(ratio + half for ratio, half in zip(ratios, halves, strict=True))
        axes.set_xlim(low / 3, max(high, 1.0) * 8)
    else:
        high = max(ratio + half for ratio, half in zip(ratios, halves, strict=True))
        axes.set_xlim(0, max(high, 1.0) * 1.25)
    for row, position, half in zip(rows, positions, halves, strict=True):
        if row.spread is None:  # no spread, and the cell says why
            text = f"{row.ratio_text}  {row.spread_text}".rstrip()
        else:
            text = f"{row.ratio_text}  (IQR {row.spread_text})"
        end = row.ratio + half
        axes.annotate(
            text,
            (end * 1.15 if logarithmic else end, position),
            xytext=(0 if logarithmic else 6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    axes.set_xlabel(
        f"{table.ratio_title}: the bar is the median, the whisker the IQR's width"
        + (" (log scale)" if logarithmic else "")
    )
    subject = table.subject
    axes.set_title(
        f"{plain(table.heading)}\nbelow 1.0: {subject} is faster", fontsize=10, loc="left"
    )
    standings = {row.standing for row in rows}
    shown = [standing for standing in COLOURS if standing in standings]
    handles: list[Artist] = [
        Rectangle((0, 0), 1, 1, color=COLOURS[standing], alpha=0.85) for standing in shown
    ]
    names = [
        "level: 1.00" if standing == "level" else f"{subject} {standing}" for standing in shown
    ]
    handles.append(Line2D([], [], color="black", linewidth=1.2, linestyle="--"))
    names.append("1.0: the same")
    figure.legend(handles, names, fontsize=8, ncols=len(names), loc="outside lower center")
    axes.grid(axis="x", alpha=0.3, zorder=0)
    # No software version or date in the file: the same table draws the same bytes.
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to read")
    parser.add_argument("--out", type=Path, default=OUT, help="the folder to write into")
    args = parser.parse_args(argv)
    found = tables(args.page.read_text())
    if not found:
        raise SystemExit(f"no ratio table in {args.page}")
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in found:
        if not all(math.isfinite(row.ratio) and row.ratio > 0 for row in table.rows):
            raise SystemExit(f"{table.heading}: every ratio must be above 0")
        path = args.out / table.image
        draw(table, path)
        written.append(path)
        print(f"{path}: {table.heading}, {len(table.rows)} rows")
    return written


if __name__ == "__main__":
    main()
