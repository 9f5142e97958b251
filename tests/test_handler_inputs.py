"""The handler's input schema on its own (no torch): anything a client can send is either
a request of one of the actions or a refusal that names a field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f5worker.handler.inputs import (
    ACTIONS,
    FIELDS,
    InputError,
    Limits,
    NewVoice,
    Request,
    action,
    parse,
    parse_delete,
    parse_list,
    parse_new_voice,
)

ALL_FIELDS = sorted({name for names in FIELDS.values() for name in names} | {"action"})
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
INPUTS = (st.fixed_dictionaries({}, optional={name: JSON for name in ALL_FIELDS})
          | st.fixed_dictionaries({"action": st.sampled_from(ACTIONS)},
                                  optional={name: JSON for name in ALL_FIELDS
                                            if name != "action"})
          | JSON)


def parse_any(data: Any) -> object:
    """What the handler does with a job's input, short of touching files or the model."""
    name = action(data)
    if name == "synthesize":
        return parse(data, Limits())
    if name == "add_voice":
        return parse_new_voice(data, Limits())
    if name == "list_voices":
        return parse_list(data)
    return parse_delete(data)


@settings(max_examples=500, deadline=None)
@given(INPUTS)
def test_anything_is_a_request_or_a_refusal_naming_a_field(data: Any) -> None:
    try:
        request = parse_any(data)
    except InputError as exc:
        field, _, problem = str(exc).partition(": ")
        assert problem and field == exc.field
        assert field in (*ALL_FIELDS, "input") or (isinstance(data, dict)
                                                   and field in map(str, data))
    else:
        if isinstance(request, Request):
            assert request.text and (request.voice or request.ref_text)
        elif isinstance(request, NewVoice):
            assert request.name and request.ref_text and (request.ref_audio or request.ref_url)


def test_a_full_request_keeps_every_value() -> None:
    audio = base64.b64encode(b"RIFF....").decode()
    request = parse({"text": " Hi there. ", "ref_audio": f"data:audio/wav;base64,{audio}",
                     "ref_text": "Me.", "speed": 1.5, "seed": 9, "nfe_step": 16,
                     "cfg_strength": 3, "remove_silence": True, "format": "flac",
                     "return_word_timings": True, "timing_format": "vtt"}, Limits())
    assert request == Request(text="Hi there.", ref_text="Me.", ref_audio=b"RIFF....",
                              speed=1.5, seed=9, nfe_step=16, cfg_strength=3.0,
                              remove_silence=True, format="flac", return_word_timings=True,
                              timing_format="vtt")


def test_a_url_is_kept_for_fetching_later() -> None:
    request = parse({"text": "Hi", "ref_audio": "https://example.com/a.wav", "ref_text": "t"},
                    Limits())
    assert request.ref_url == "https://example.com/a.wav" and request.ref_audio is None


def test_base64_over_the_size_limit_is_refused_and_at_the_limit_accepted() -> None:
    quads = (8 << 20) // 3  # each "AAAA" decodes to 3 bytes
    with pytest.raises(InputError, match="ref_audio: is over 8 MB"):
        parse({"text": "Hi", "ref_audio": "AAAA" * (quads + 1), "ref_text": "t"}, Limits())
    request = parse({"text": "Hi", "ref_audio": "AAAA" * quads, "ref_text": "t"}, Limits())
    assert request.ref_audio is not None and len(request.ref_audio) == 3 * quads


def test_no_action_means_synthesize_and_an_unknown_one_is_named() -> None:
    assert action({"text": "hi"}) == "synthesize"
    with pytest.raises(InputError, match=r"^action: unknown action 'clone' \(known: "
                                         r"synthesize, add_voice, list_voices, delete_voice\)"):
        action({"action": "clone"})


@pytest.mark.parametrize(("data", "field"), [
    ({"action": "list_voices", "name": "x"}, "name"),
    ({"action": "delete_voice", "name": "x", "text": "t"}, "text"),
    ({"action": "add_voice", "name": "x", "ref_audio": "AAAA", "ref_text": "t", "speed": 1},
     "speed"),
    ({"text": "hi", "voice": "x", "name": "x"}, "name"),
])
def test_a_field_of_another_action_is_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_any(data)
    assert caught.value.field == field and "is not a field of" in str(caught.value)


@pytest.mark.parametrize("name", ["../etc", "..", ".hidden", "a/b", "a\\b", "", "x" * 65,
                                  "naïve", "a b", "a.b", "a\x00", "anna\n", "anna\r"])
def test_voice_names_that_could_escape_the_library_are_refused(name: str) -> None:
    for data in ({"action": "delete_voice", "name": name},
                 {"action": "add_voice", "name": name, "ref_audio": "AAAA", "ref_text": "t"},
                 {"text": "hi", "voice": name}):
        with pytest.raises(InputError, match="must be a voice name"):
            parse_any(data)


def test_add_voice_needs_audio_and_text_and_keeps_overwrite() -> None:
    with pytest.raises(InputError, match=r"^ref_audio: is required"):
        parse_new_voice({"name": "anna", "ref_text": "t"}, Limits())
    with pytest.raises(InputError, match=r"^ref_text: is required"):
        parse_new_voice({"name": "anna", "ref_audio": "AAAA"}, Limits())
    voice = parse_new_voice({"action": "add_voice", "name": "anna", "ref_audio": "AAAA",
                             "ref_text": " Hello. ", "overwrite": True}, Limits())
    assert voice == NewVoice("anna", "Hello.", b"\0\0\0", None, True)


def test_timing_format_needs_timings() -> None:
    with pytest.raises(InputError, match=r"^timing_format: needs return_word_timings"):
        parse({"text": "hi", "voice": "a", "timing_format": "srt"}, Limits())
    with pytest.raises(InputError, match=r"^timing_format: must be one of srt, vtt, json, "
                       r"csv, ass"):
        parse({"text": "hi", "voice": "a", "return_word_timings": True,
               "timing_format": "sub"}, Limits())


def test_every_limit_is_a_setting_and_a_misspelt_one_is_refused() -> None:
    from bootstrap.kernel.config import load

    env = {"BOOTSTRAP_APP": "f5worker.app:APP",
           "BOOTSTRAP_LIMIT_MAX_TEXT_CHARS": "8000", "BOOTSTRAP_LIMIT_MIN_REF_DBFS": "-60",
           "BOOTSTRAP_LIMIT_FETCH_TIMEOUT_S": "4.5", "BOOTSTRAP_JOB_TIMEOUT_S": "120"}
    loaded = load(environ=env)
    assert loaded.sources["job_limits"] == "env BOOTSTRAP_LIMIT_*"
    limits = Limits.of(loaded.config)
    assert (limits.max_text_chars, limits.min_ref_dbfs, limits.fetch_timeout_s,
            limits.job_timeout_s) == (8000, -60.0, 4.5, 120.0)
    assert isinstance(limits.max_text_chars, int)
    for bad, why in (({"BOOTSTRAP_LIMIT_MAX_TEXT_CHAR": "1"}, "is not a limit"),
                     ({"BOOTSTRAP_LIMIT_JOB_TIMEOUT_S": "1"}, "is not a limit"),
                     ({"BOOTSTRAP_LIMIT_MAX_VOICES": "0"}, "must be a number over 0")):
        with pytest.raises(ValueError, match=why):
            Limits.of(load(environ={"BOOTSTRAP_APP": "f5worker.app:APP", **bad}).config)
