"""A job's input, validated: every bad value is refused with the name of its field.

Nothing here touches the model or the network; the reference audio is only decoded from
base64 (a URL is fetched later, by ``f5worker.handler.refaudio``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from f5worker import settings

FORMATS = ("wav", "flac")
TIMING_FORMATS = ("srt", "vtt", "json", "csv", "ass")  # f5worker/handler/subtitles.FORMATS
# A name is a directory on the volume: no separators, no leading dot, no "..".
VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ACTIONS = ("synthesize", "add_voice", "list_voices", "delete_voice")
# The fields each action accepts, besides "action" itself.
FIELDS = {
    "synthesize": ("text", "voice", "ref_audio", "ref_text", "speed", "seed", "nfe_step",
                   "cfg_strength", "remove_silence", "format", "return_word_timings",
                   "timing_format", "store"),
    "add_voice": ("name", "ref_audio", "ref_text", "overwrite"),
    "list_voices": ("limit", "after"),
    "delete_voice": ("name",),
}


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX``: JSON can carry them in, but
    no UTF-8 stream (the log, the SDK's HTTP answer) can carry them out."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InputError(Exception):
    """A bad input; ``str()`` starts with the field, which is what the client sees."""

    def __init__(self, field: str, problem: str) -> None:
        field = printable(field)
        super().__init__(printable(f"{field}: {problem}"))
        self.field = field
        self.problem = printable(problem)

    def renamed(self, field: str) -> InputError:
        """The same refusal of a field another dialect calls ``field``."""
        return InputError(field, self.problem)


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 5000
    max_ref_text_chars: int = 1000
    # F5-TTS uses at most ~12 s of reference (its preprocessing clips to that while the
    # reference text stays whole, which garbles the output); longer is refused.
    max_ref_seconds: float = 12.0
    min_ref_seconds: float = 0.5
    max_ref_bytes: int = 8 << 20
    fetch_timeout_s: float = 10.0  # one total: DNS, connect, TLS, redirects, headers, body
    # RunPod refuses results over ~10 MB on /run (20 MB on /runsync); the smaller is safe.
    max_result_bytes: int = 10 << 20
    max_nfe_step: int = 64
    # A reference quieter than this (RMS) is refused: silence, or a recording so faint
    # the model would clone the noise floor (its loudness normalisation divides by it).
    min_ref_dbfs: float = -50.0
    # A reference over 10 s is cut to its middle 8 s, as the replaced worker did
    # (BOOTSTRAP_REF_CLIP_LONG=0 refuses it instead: f5worker.refclip).
    clip_long: bool = True
    # The job's budget (BOOTSTRAP_JOB_TIMEOUT_S, BOOTSTRAP_JOB_MAX_AUDIO_S; handler/budget).
    job_timeout_s: float = 540.0
    max_audio_s: float = 600.0
    # Added voices on the volume: any client may add one, and the volume is shared and finite.
    max_voices: int = 1000


    @classmethod
    def of(cls, config: Any) -> Limits:
        """The limits a worker with ``config`` (a ``bootstrap.kernel.config.Config``) applies:
        the job budget's own settings, and any other limit by name from ``job_limits``
        (``BOOTSTRAP_LIMIT_<NAME>``). A name that is not a limit is a boot failure, not
        a setting ignored in silence."""
        own = settings.of(config)
        values: dict[str, Any] = {"job_timeout_s": own.job_timeout_s,
                                  "max_audio_s": own.job_max_audio_s,
                                  "clip_long": own.ref_clip_long}
        kinds = {f.name: type(getattr(cls(), f.name)) for f in dataclasses.fields(cls)}
        for name, value in own.job_limits.items():
            if name not in kinds or name in values:
                known = ", ".join(sorted(set(kinds) - set(values)))
                raise ValueError(f"BOOTSTRAP_LIMIT_{name.upper()} is not a limit of the "
                                 f"handler (limits: {known}; the job's budget and clipping "
                                 "have their own settings)")
            # A level in dBFS is under 0; every other limit is a size, a count or a time.
            if not math.isfinite(value) or (value <= 0 and not name.endswith("_dbfs")):
                raise ValueError(f"BOOTSTRAP_LIMIT_{name.upper()}={value:g} must be a "
                                 "number over 0")
            values[name] = kinds[name](value)
        return cls(**values)


@dataclass(frozen=True)
class Request:
    text: str
    ref_text: str
    voice: str | None = None
    ref_audio: bytes | None = None  # decoded base64
    ref_url: str | None = None
    speed: float = 1.0
    seed: int | None = None
    nfe_step: int = 32
    cfg_strength: float = 2.0
    remove_silence: bool = False
    format: str = "wav"
    return_word_timings: bool = False
    timing_format: str = "srt"
    # None: stored when the worker has a bucket; False: inline unless too large; True:
    # stored, and refused on a worker without a bucket.
    store: bool | None = None


@dataclass(frozen=True)
class NewVoice:
    """An ``add_voice`` request: the audio is checked (decoded, measured) by the handler."""

    name: str
    ref_text: str
    ref_audio: bytes | None = None
    ref_url: str | None = None
    overwrite: bool = False


def number(data: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = data.get(name, default)
    # bool is an int in Python; true/false for a number is a client bug worth naming.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise InputError(name, f"must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def integer(data: dict[str, Any], name: str, default: int | None, low: int,
             high: int) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InputError(name, f"must be between {low} and {high}, got {value}")
    return value


def text_field(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise InputError(name, "is required and must be a string")
    value = value.strip()
    if not value:
        raise InputError(name, "must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(name, f"holds a lone surrogate at character {exc.start}; send "
                         "text as valid UTF-8 (or JSON with paired \\u escapes)") from None
    if len(value) > limit:
        raise InputError(name, f"has {len(value)} characters; at most {limit} are accepted")
    if "\x00" in value:
        raise InputError(name, "must not contain NUL characters")
    return value


def _ref_audio(value: Any, limits: Limits) -> tuple[bytes | None, str | None]:
    if not isinstance(value, str) or not value:
        raise InputError("ref_audio", "must be base64 audio or an https:// URL")
    if value.startswith(("http://", "ftp://", "file:")):
        raise InputError("ref_audio", "only https:// URLs are fetched")
    if value.startswith("https://"):
        return None, value
    payload = value.partition(",")[2] if value.startswith("data:") else value
    if len(payload) * 3 // 4 > limits.max_ref_bytes * 1.05:  # room for line breaks
        raise InputError("ref_audio", f"is over {limits.max_ref_bytes / 2**20:.3g} MB")
    # Base64 wrapped in lines (76 columns: the default of `base64` and of MIME) is base64.
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > limits.max_ref_bytes:
        raise InputError("ref_audio", f"is over {limits.max_ref_bytes / 2**20:.3g} MB")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("ref_audio", "is neither valid base64 nor an https:// URL") from None
    if not audio:
        raise InputError("ref_audio", "is empty")
    return audio, None


def as_object(job_input: Any) -> dict[str, Any]:
    if not isinstance(job_input, dict):
        raise InputError("input", "must be an object")
    return job_input


def action(job_input: Any) -> str:
    """The action a job asks for; ``synthesize`` when it names none."""
    name = as_object(job_input).get("action", "synthesize")
    if name not in ACTIONS:
        raise InputError("action", f"unknown action {name!r} (known: {', '.join(ACTIONS)})")
    return str(name)


def known_fields(job_input: dict[str, Any], action: str,
                 fields: dict[str, tuple[str, ...]] = FIELDS) -> None:
    """Refuses the first field ``action`` does not take, naming the ones it does."""
    allowed = fields[action]
    unknown = sorted(str(k) for k in job_input if k != "action" and k not in allowed)
    if unknown:
        known = ", ".join(allowed) or "none besides action"
        raise InputError(unknown[0], f"is not a field of {action} (known: {known})")


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InputError(name, "must be true or false")
    return value


def voice_name(job_input: Any, field: str = "name") -> str:
    """The name NFKC-normalised first (a full-width or compatibility letter is its ASCII
    one), so that every name stored can be named again by list, use and delete."""
    value = as_object(job_input).get(field)
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value)
    if not isinstance(value, str) or not value.isascii() or not VOICE_NAME.fullmatch(value):
        raise InputError(field, "must be a voice name: 1-64 letters, digits, _ or -, "
                         "starting with a letter or digit")
    return value


def parse(job_input: Any, limits: Limits) -> Request:
    """The validated ``synthesize`` request in ``job_input`` (the job's ``input``). A voice
    name is checked for form here; whether it exists is the voice library's answer."""
    job_input = as_object(job_input)
    known_fields(job_input, "synthesize")
    text = text_field(job_input, "text", limits.max_text_chars)
    voice = job_input.get("voice")
    audio, url = None, None
    if voice is not None:
        if "ref_audio" in job_input:
            raise InputError("voice", "give either voice or ref_audio, not both")
        voice = voice_name(job_input, "voice")
        if "ref_text" in job_input:
            raise InputError("ref_text", "comes with the stored voice; omit it")
        ref_text = ""
    elif "ref_audio" in job_input:
        audio, url = _ref_audio(job_input["ref_audio"], limits)
        # Without one, the worker's own transcriber (never F5-TTS's, which downloads
        # Whisper at request time) says what the clip says: f5worker/handler/speech.py.
        ref_text = (text_field(job_input, "ref_text", limits.max_ref_text_chars)
                    if "ref_text" in job_input else "")
    else:
        raise InputError("voice", "give a voice name, or ref_audio (with its ref_text, or "
                         "none to have it transcribed)")
    fmt = job_input.get("format", "wav")
    if fmt not in FORMATS:
        raise InputError("format", f"must be one of {', '.join(FORMATS)}")
    timings = flag(job_input, "return_word_timings")
    timing_format = job_input.get("timing_format", "srt")
    if timing_format not in TIMING_FORMATS:
        raise InputError("timing_format", f"must be one of {', '.join(TIMING_FORMATS)}")
    if "timing_format" in job_input and not timings:
        raise InputError("timing_format", "needs return_word_timings: true")
    store = job_input.get("store")
    if store is not None and not isinstance(store, bool):
        raise InputError("store", "must be true or false")
    return Request(
        text=text, ref_text=ref_text, voice=voice, ref_audio=audio, ref_url=url,
        speed=number(job_input, "speed", 1.0, 0.3, 3.0),
        seed=integer(job_input, "seed", None, 0, 2**31 - 1),
        nfe_step=integer(job_input, "nfe_step", 32, 1, limits.max_nfe_step) or 32,
        cfg_strength=number(job_input, "cfg_strength", 2.0, 0.0, 10.0),
        remove_silence=flag(job_input, "remove_silence"), format=str(fmt),
        return_word_timings=timings, timing_format=str(timing_format), store=store,
    )


def parse_new_voice(job_input: Any, limits: Limits) -> NewVoice:
    job_input = as_object(job_input)
    known_fields(job_input, "add_voice")
    name = voice_name(job_input)
    if "ref_audio" not in job_input:
        raise InputError("ref_audio", "is required: base64 audio or an https:// URL")
    audio, url = _ref_audio(job_input["ref_audio"], limits)
    ref_text = text_field(job_input, "ref_text", limits.max_ref_text_chars)
    return NewVoice(name, ref_text, audio, url, flag(job_input, "overwrite"))


# A listing's page: the bucket may hold tens of thousands of voices (20,000 took 14.5 s
# and 2 MB in one answer); a page of 1,000 is one or two list calls.
LIST_PAGE = 1000


@dataclass(frozen=True)
class ListPage:
    limit: int = LIST_PAGE
    after: str = ""  # the "next" of the previous page


def list_page(data: dict[str, Any]) -> ListPage:
    """``limit`` (1-1,000) and ``after`` (a voice name, from the last page's ``next``)."""
    after = data.get("after", "")
    if not isinstance(after, str) or len(after) > 200:
        raise InputError("after", "must be the name a listing's next gave")
    limit = integer(data, "limit", LIST_PAGE, 1, LIST_PAGE)
    assert limit is not None, "it has a default"
    return ListPage(limit, after)


def parse_list(job_input: Any) -> ListPage:
    known_fields(as_object(job_input), "list_voices")
    return list_page(as_object(job_input))


def parse_delete(job_input: Any) -> str:
    job_input = as_object(job_input)
    known_fields(job_input, "delete_voice")
    return voice_name(job_input)
