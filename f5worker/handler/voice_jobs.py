"""The voice library's actions: ``add_voice``, ``list_voices`` and ``delete_voice`` jobs.

A voice is checked once, when it is added, the way a reference is checked per job
(decodable, its rate, 0.5-12 s, not silent: a silent clip would be stored and then make
every synthesis with it fail). It is stored as the model will use it, whatever it came as:
mono, at the model's rate, as 16-bit FLAC (at most ~300 kB for 12 s), so a clip declaring an
odd or huge rate is converted once here, not at every job.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bootstrap.kernel import events
from f5worker.handler import audio_io, refaudio
from f5worker.handler.inputs import InputError, Limits, parse_delete, parse_list, parse_new_voice
from f5worker.voices import VoiceError, VoiceLibrary

Result = dict[str, Any]


def add(library: VoiceLibrary, job_input: Any, limits: Limits, rate: int,
        fetch: refaudio.Fetch = refaudio.fetch) -> Result:
    request = parse_new_voice(job_input, limits)
    added = [v for v in library.all().values() if v.source == "added"]
    if len(added) >= limits.max_voices and request.name not in {v.name for v in added}:
        raise InputError("name", f"the library holds {len(added)} added voices, the most "
                         "this worker keeps; delete one first")
    data = refaudio.body(request.ref_audio, request.ref_url, limits, fetch)
    # Stored with the text the client gave: a clip cut to its middle would no longer say
    # it, so a long one is refused here, not trimmed.
    clip = audio_io.reference(data, dataclasses.replace(limits, clip_long=False), rate)
    facts = {"duration_s": round(clip.seconds, 3), "sample_rate": rate,
             "source_sample_rate": clip.source_rate,
             "loudness_dbfs": round(clip.loudness_dbfs, 1)}
    audio = audio_io.encode(clip.samples, rate, "flac")
    try:
        voice, replaced = library.add(request.name, audio, request.ref_text, facts,
                                      request.overwrite, suffix=".flac")
    except VoiceError as exc:
        raise InputError("name", str(exc)) from None
    events.emit("info", "voice.added", voice=voice.name, replaced=replaced, **facts)
    return {"voice": {**voice.describe(), **facts}, "replaced": replaced}


def list_all(library: VoiceLibrary, job_input: Any) -> Result:
    """One page of the library (see ``VoiceLibrary.page``); ``next`` is the ``after`` of
    the next page, null at the end."""
    ask = parse_list(job_input)
    voices = []
    page, following = library.page(ask.limit, ask.after)
    for voice in page.values():
        entry = voice.describe()
        if entry["duration_s"] is None and voice.audio is not None:
            entry["duration_s"] = audio_io.seconds_of(voice.audio)  # placed by hand
        voices.append(entry)
    return {"voices": voices, "next": following}


def delete(library: VoiceLibrary, job_input: Any) -> Result:
    name = parse_delete(job_input)
    try:
        voice = library.delete(name)
    except VoiceError as exc:
        raise InputError("name", str(exc)) from None
    events.emit("info", "voice.deleted", voice=voice.name)
    return {"deleted": voice.name}
