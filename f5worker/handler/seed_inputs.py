"""The replaced worker's request dialect, validated: every bad value is refused with the
name of its field, as the current dialect's are (``f5worker/handler/inputs.py``).

That worker (``docs/seed-api.md``) took ``input.endpoint`` = ``tts`` (or none),
``upload``, ``list_voices`` or ``download``. Its clients send its fields unchanged; this
module turns them into typed requests, and ``f5worker/handler/seed.py`` maps those onto the worker's
own actions. Nothing here touches the model, the bucket or the network.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from f5worker.handler.inputs import (
    InputError,
    Limits,
    ListPage,
    as_object,
    flag,
    integer,
    known_fields,
    list_page,
    number,
    text_field,
)

ENDPOINTS = ("tts", "upload", "list_voices", "download")
TIMING_FORMATS = ("srt", "vtt", "csv", "json", "ass")
TIMING_METHODS = ("whisperx", "google")
FIELDS = {
    "tts": ("text", "speed", "seed", "local_voice", "return_word_timings", "timing_format",
            "timing_method"),
    "upload": ("voice_name", "voice_file_url"),
    "list_voices": ("limit", "after"),
    "download": ("job_id", "type", "format"),
}
# Fields only the replaced worker's clients send: one of them marks a job of its dialect.
MARKERS = frozenset({"endpoint", "local_voice", "voice_name", "voice_file_url",
                     "timing_method", "type", "job_id"})
# A voice file in the bucket: one key segment under voices/, ending in .wav.
# ASCII only: under re.IGNORECASE alone, the Kelvin sign matched "k" and the long s
# (U+017F) "s", and such a name was stored as a key no listing, use or delete could name.
VOICE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,99}\.wav$", re.IGNORECASE | re.ASCII)


def file_name(raw: str) -> str | None:
    """A voice file's name as stored: NFKC-normalised (a full-width or compatibility
    letter becomes its ASCII one), ``.wav`` in lower case; None when it is not one."""
    name = unicodedata.normalize("NFKC", raw)
    if not name.isascii() or not VOICE_FILE.fullmatch(name) or ".." in name:
        return None
    return name[:-4] + ".wav"
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def is_seed(job_input: Any) -> bool:
    """Whether ``job_input`` is in the replaced worker's dialect: it names one of that
    dialect's own fields, or it is a bare TTS request (``text`` and none of the current
    dialect's ways to name a voice), which that worker spoke with its default voice."""
    if not isinstance(job_input, dict):
        return False
    if MARKERS & job_input.keys():
        return True
    return "text" in job_input and not {"action", "voice", "ref_audio"} & job_input.keys()


@dataclass(frozen=True)
class Speak:
    text: str
    speed: float = 1.0
    seed: int | None = None
    voice: str | None = None  # a bucket voice's name, without ``.wav``
    url: str | None = None  # ... or a clip to fetch
    timings: bool = False
    timing_format: str = "srt"
    timing_method: str = "whisperx"  # what was asked; the answer says what was done


@dataclass(frozen=True)
class Upload:
    voice_name: str  # the file name as stored (NFKC, ``.wav`` in lower case)
    url: str

    @property
    def name(self) -> str:
        return self.voice_name[:-4]


@dataclass(frozen=True)
class Download:
    job_id: str
    type: str = "audio"
    format: str = "srt"


def endpoint(job_input: Any) -> str:
    name = as_object(job_input).get("endpoint", "tts")
    if name not in ENDPOINTS:
        raise InputError("endpoint", f"unknown endpoint {name!r} (known: "
                         f"{', '.join(ENDPOINTS)})")
    return str(name)


def _choice(data: dict[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = data.get(name, default)
    if value not in allowed:
        raise InputError(name, f"must be one of {', '.join(allowed)}")
    return str(value)


def _url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise InputError(field, "must be an https:// URL")
    if value.startswith("http://"):
        raise InputError(field, "only https:// URLs are fetched (a plain http:// clip can be "
                         "altered on its way; docs/migrating.md)")
    return value


def parse_tts(job_input: Any, limits: Limits) -> Speak:
    data = as_object(job_input)
    known_fields({k: v for k, v in data.items() if k != "endpoint"}, "tts", FIELDS)
    text = text_field(data, "text", limits.max_text_chars)
    voice, url = None, None
    local = data.get("local_voice")
    if local is not None:
        if not isinstance(local, str) or not local.strip():
            raise InputError("local_voice", "must be a voice file name or an https:// URL")
        local = local.strip()
        if local.startswith(("http://", "https://")):
            url = _url(local, "local_voice")
        else:
            stored = file_name(local if local.lower().endswith(".wav") else local + ".wav")
            if stored is None:
                raise InputError("local_voice", "must be a voice file name under voices/ "
                                 "(e.g. Kurt_12s.wav) or an https:// URL")
            voice = stored[:-4]
    timings = flag(data, "return_word_timings")
    return Speak(
        text=text, speed=number(data, "speed", 1.0, 0.3, 3.0),
        seed=integer(data, "seed", None, 0, 2**31 - 1), voice=voice, url=url,
        timings=timings,
        timing_format=_choice(data, "timing_format", "srt", TIMING_FORMATS),
        timing_method=_choice(data, "timing_method", "whisperx", TIMING_METHODS))


def parse_upload(job_input: Any) -> Upload:
    data = as_object(job_input)
    known_fields({k: v for k, v in data.items() if k != "endpoint"}, "upload", FIELDS)
    name = data.get("voice_name")
    if not isinstance(name, str) or not name:
        raise InputError("voice_name", "is required for upload: a file name ending in .wav")
    stored = file_name(name)
    if stored is None:
        raise InputError("voice_name", "must be a file name ending in .wav: ASCII letters, "
                         "digits, _, -, . or spaces (after NFKC normalisation), starting with "
                         "a letter or digit")
    if "voice_file_url" not in data:
        raise InputError("voice_file_url", "is required for upload")
    return Upload(stored, _url(data["voice_file_url"], "voice_file_url"))


def parse_list(job_input: Any) -> ListPage:
    data = as_object(job_input)
    known_fields({k: v for k, v in data.items() if k != "endpoint"}, "list_voices", FIELDS)
    return list_page(data)


def parse_download(job_input: Any) -> Download:
    data = as_object(job_input)
    known_fields({k: v for k, v in data.items() if k != "endpoint"}, "download", FIELDS)
    job_id = data.get("job_id")
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise InputError("job_id", "is required: the job_id of a TTS answer")
    kind = _choice(data, "type", "audio", ("audio", "timing"))
    return Download(job_id, kind, _choice(data, "format", "srt", TIMING_FORMATS))
