"""The voice library's actions: ``add_voice``, ``list_voices`` and ``delete_voice`` jobs.

A voice is checked once, when it is added, the way a reference is checked per job
(decodable, 0.5-12 s) and also for loudness: a silent clip would be stored and then make
every synthesis with it silent. It is stored as a mono 16-bit WAV whatever it came as.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bootstrap import events
from bootstrap.voices import VoiceError, VoiceLibrary
from handler import audio_io, refaudio
from handler.inputs import InputError, Limits, parse_delete, parse_list, parse_new_voice

Result = dict[str, Any]


def add(library: VoiceLibrary, job_input: Any, limits: Limits,
        fetch: refaudio.Fetch = refaudio.fetch) -> Result:
    request = parse_new_voice(job_input, limits)
    added = [v for v in library.all().values() if v.source == "added"]
    if len(added) >= limits.max_voices and request.name not in {v.name for v in added}:
        raise InputError("name", f"the library holds {len(added)} added voices, the most "
                         "this worker keeps; delete one first")
    with tempfile.TemporaryDirectory(prefix="f5tts-voice-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(refaudio.body(request.ref_audio, request.ref_url, limits, fetch))
        samples, rate = audio_io.load_mono(path, limits)
    seconds = len(samples) / rate
    level = audio_io.loudness_dbfs(samples)
    if level < limits.min_voice_dbfs:
        raise InputError("ref_audio", f"is silent or nearly so ({level:.1f} dBFS RMS; at "
                         f"least {limits.min_voice_dbfs:g} dBFS is needed)")
    facts = {"duration_s": round(seconds, 3), "sample_rate": rate,
             "loudness_dbfs": round(level, 1)}
    wav = audio_io.encode(samples, rate, "wav")
    try:
        voice, replaced = library.add(request.name, wav, request.ref_text, facts,
                                      request.overwrite)
    except VoiceError as exc:
        raise InputError("name", str(exc)) from None
    events.emit("info", "voice.added", voice=voice.name, replaced=replaced, **facts)
    return {"voice": {**voice.describe(), **facts}, "replaced": replaced}


def list_all(library: VoiceLibrary, job_input: Any) -> Result:
    parse_list(job_input)
    voices = []
    for voice in library.all().values():
        entry = voice.describe()
        if entry["duration_s"] is None:  # a file placed by hand: its header says
            entry["duration_s"] = audio_io.wav_seconds(voice.wav)
        voices.append(entry)
    return {"voices": voices}


def delete(library: VoiceLibrary, job_input: Any) -> Result:
    name = parse_delete(job_input)
    try:
        voice = library.delete(name)
    except VoiceError as exc:
        raise InputError("name", str(exc)) from None
    events.emit("info", "voice.deleted", voice=voice.name)
    return {"deleted": voice.name}
