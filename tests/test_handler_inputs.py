"""The handler's input schema on its own (no torch): anything a client can send is either
a request or a refusal that names a field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.inputs import FIELDS, InputError, Limits, Request, parse

VOICES = frozenset({"default", "anna"})
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
INPUTS = st.fixed_dictionaries({}, optional={name: JSON for name in FIELDS}) | JSON


@settings(max_examples=300, deadline=None)
@given(INPUTS)
def test_anything_is_a_request_or_a_refusal_naming_a_field(data: Any) -> None:
    try:
        request = parse(data, VOICES, Limits())
    except InputError as exc:
        field, _, problem = str(exc).partition(": ")
        assert problem and field == exc.field
        assert field in (*FIELDS, "input") or (isinstance(data, dict) and field in map(str, data))
    else:
        assert isinstance(request, Request) and request.text
        assert request.voice in VOICES or request.ref_text


def test_a_full_request_keeps_every_value() -> None:
    audio = base64.b64encode(b"RIFF....").decode()
    request = parse({"text": " Hi there. ", "ref_audio": f"data:audio/wav;base64,{audio}",
                     "ref_text": "Me.", "speed": 1.5, "seed": 9, "nfe_step": 16,
                     "cfg_strength": 3, "remove_silence": True, "format": "flac"},
                    VOICES, Limits())
    assert request == Request(text="Hi there.", ref_text="Me.", ref_audio=b"RIFF....",
                              speed=1.5, seed=9, nfe_step=16, cfg_strength=3.0,
                              remove_silence=True, format="flac")


def test_a_url_is_kept_for_fetching_later() -> None:
    request = parse({"text": "Hi", "ref_audio": "https://example.com/a.wav", "ref_text": "t"},
                    VOICES, Limits())
    assert request.ref_url == "https://example.com/a.wav" and request.ref_audio is None


def test_base64_over_the_size_limit_is_refused_and_at_the_limit_accepted() -> None:
    quads = (8 << 20) // 3  # each "AAAA" decodes to 3 bytes
    with pytest.raises(InputError, match="ref_audio: is over 8 MB"):
        parse({"text": "Hi", "ref_audio": "AAAA" * (quads + 1), "ref_text": "t"}, VOICES,
              Limits())
    request = parse({"text": "Hi", "ref_audio": "AAAA" * quads, "ref_text": "t"}, VOICES,
                    Limits())
    assert request.ref_audio is not None and len(request.ref_audio) == 3 * quads
