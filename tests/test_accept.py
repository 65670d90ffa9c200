"""Which refusals answer JSON: the Accept field, parsed with its q-values."""

from __future__ import annotations

import pytest

from brakes._accept import prefers_json


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/*", True),
        ("application/json, text/plain", True),  # a tie goes to the one listed first
        ("text/plain, application/json", False),
        ("*/*, application/json", True),  # the more specific range
        ("text/plain;q=0.5, application/json;q=0.8", True),
        ("application/json;q=0.5, */*", False),  # anything at 1, text/plain included
        ("application/json;q=0", False),
        ("application/json;q=2", False),  # not a qvalue: the range is ignored
        ('text/plain;note="a,b";q=0.1, application/json', True),
        ("*/*", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("text/html", False),
        ("", False),
        (None, False),
        (b"application/json", True),
        ("nonsense, /json, */json", False),
    ],
)
def test_json_is_chosen_only_when_the_client_ranks_it_above_plain_text(
    accept: str | bytes | None, json: bool
) -> None:
    assert prefers_json(accept) is json
