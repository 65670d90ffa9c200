"""Whether a request's `Accept` field prefers JSON to plain text (RFC 9110,
section 12.5.1), for the refusals `LoadShed` writes itself."""

from __future__ import annotations

import re
from typing import NamedTuple

# A qvalue as RFC 9110 writes it: 0 to 1, at most three decimals.
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


class _Range(NamedTuple):
    kind: str
    subtype: str
    quality: float
    position: int


def _elements(field: str) -> list[str]:
    """The comma-separated elements of a field, commas in quoted strings kept."""
    elements, start, quoted, escaped = [], 0, False, False
    for at, char in enumerate(field):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            elements.append(field[start:at])
            start = at + 1
    elements.append(field[start:])
    return elements


def _ranges(field: str) -> list[_Range]:
    ranges = []
    for position, element in enumerate(_elements(field)):
        media_range, *parameters = element.split(";")
        kind, slash, subtype = media_range.strip().lower().partition("/")
        if not slash or not kind or not subtype or (kind == "*" and subtype != "*"):
            continue  # not a media range: ignored, as a server may
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QVALUE.match(value) else -1.0
                break  # what follows q are extension parameters
        if quality >= 0:
            ranges.append(_Range(kind.strip(), subtype.strip(), quality, position))
    return ranges


def _preference(ranges: list[_Range], kind: str, subtype: str) -> tuple[float, int, int]:
    """(quality, specificity, -position) of the most specific range that
    matches `kind/subtype`; (0, -1, 0) when none does."""
    best: tuple[float, int, int] = (0.0, -1, 0)
    for media in ranges:
        if media.kind == kind and media.subtype == subtype:
            specificity = 2
        elif media.kind == kind and media.subtype == "*":
            specificity = 1
        elif media.kind == "*":
            specificity = 0
        else:
            continue
        # The most specific range decides; among equals, the first listed.
        if specificity > best[1]:
            best = (media.quality, specificity, -media.position)
    return best


def prefers_json(accept: str | bytes | None) -> bool:
    """Whether `accept` ranks `application/json` above `text/plain`.

    The quality of each is that of the most specific range matching it; a
    tie goes to the more specific range, then to the one listed first, and
    a tie of the same range (`*/*`, as curl and httpx send) to plain text.

    >>> prefers_json("application/json")
    True
    >>> prefers_json("*/*")
    False
    >>> prefers_json("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    False
    >>> prefers_json("text/plain;q=0.5, application/*")
    True
    """
    if not accept:
        return False
    if isinstance(accept, bytes):
        accept = accept.decode("latin-1")
    ranges = _ranges(accept)
    json = _preference(ranges, "application", "json")
    text = _preference(ranges, "text", "plain")
    return json[0] > 0 and json > text
