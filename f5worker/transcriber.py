"""The warm speech recognizer: a reference's transcript when a job sends none.

F5-TTS needs the text spoken in its reference. Its own inference transcribes a reference
given without one (``f5_tts.infer.utils_infer.transcribe``: transformers' Whisper pipeline,
``openai/whisper-large-v3-turbo``, float16 on CUDA, ``task="transcribe"`` with the language
detected); the worker this one replaces did exactly that, and its clients rely on it. This
module is that path with the model's files on the volume instead of the hub's cache: the
model stage proves the folder (:func:`missing`, :func:`verify`, no transformers import),
fetches what is missing, and loads it into ``F5State.transcriber``; the handler calls
:meth:`Transcriber.transcribe`.

Only the length of a transcript is logged, never its text.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.kernel import events
from f5worker import checkpoint

# What loading needs, as the hub's Whisper repos hold it (openai/whisper-*): these are
# fetched when missing, and a folder without one of them is not a recognizer.
REQUIRED = ("config.json", "generation_config.json", "model.safetensors",
            "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")
# Fetched with them where the repo has them (older tokenizer formats, the normalizer);
# a repo without one is not an error.
OPTIONAL = ("added_tokens.json", "special_tokens_map.json", "normalizer.json", "vocab.json",
            "merges.txt")
WEIGHTS = "model.safetensors"
EMBED = "model.decoder.embed_tokens.weight"
# As F5-TTS calls the pipeline (references are clipped to ~12 s, so one window).
CHUNK_S = 30


class WhisperFileError(Exception):
    """The folder's files are not a usable Whisper model; the message says how."""


class TranscriptionError(Exception):
    """Transcribing a reference failed. ``kind`` is ``empty`` (the model heard no words:
    the job should send ``ref_text``) or ``failed`` (the model raised; ``__cause__``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def missing(folder: Path) -> list[str]:
    """The required files ``folder`` lacks, in fetch order."""
    return [name for name in REQUIRED if not (folder / name).is_file()]


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WhisperFileError(f"{path.name}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise WhisperFileError(f"{path.name}: not a JSON object")
    return data


def verify(folder: Path) -> None:
    """Reads what is cheap to read of the files present, without transformers: the model
    type, the weights' header (a truncated download), and that the weights, the config
    and the feature extractor describe one model. Raises :class:`WhisperFileError`."""
    config: dict[str, Any] = {}
    if (folder / "config.json").is_file():
        config = _json(folder / "config.json")
        if config.get("model_type") != "whisper":
            raise WhisperFileError(f"config.json: model_type is {config.get('model_type')!r}, "
                                   "not 'whisper'")
    if (folder / "preprocessor_config.json").is_file():
        features = _json(folder / "preprocessor_config.json").get("feature_size")
        if config and features != config.get("num_mel_bins"):
            raise WhisperFileError(f"preprocessor_config.json makes {features} mel bins; "
                                   f"the model takes {config.get('num_mel_bins')}")
    if (folder / WEIGHTS).is_file():
        try:
            shapes = checkpoint.shapes(folder / WEIGHTS)
        except checkpoint.CheckpointError as exc:
            raise WhisperFileError(f"{WEIGHTS}: {exc}") from None
        want = (config.get("vocab_size"), config.get("d_model"))
        if config and EMBED in shapes and shapes[EMBED] != want:
            raise WhisperFileError(f"{WEIGHTS} embeds {list(shapes[EMBED])}; config.json "
                                   f"says vocab_size {want[0]}, d_model {want[1]}")


@dataclass
class Transcriber:
    pipe: Any  # transformers AutomaticSpeechRecognitionPipeline, on ``device``
    device: str
    dtype: str
    # One transcription at a time: the model is not re-entrant on one CUDA stream.
    lock: threading.Lock = field(default_factory=threading.Lock)
    transcriptions: int = 0  # model runs so far, failed ones included

    @property
    def rate(self) -> int:
        """The sample rate the model hears (Whisper: 16 kHz)."""
        return int(self.pipe.feature_extractor.sampling_rate)

    def resampled(self, samples: Any, rate: int) -> Any:
        """``samples`` (mono, at ``rate`` Hz) as float32 at the model's rate."""
        import numpy as np

        wave = np.asarray(samples, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0 or rate <= 0:
            raise ValueError(f"needs mono samples and a rate, got shape {wave.shape} at {rate}")
        if rate == self.rate:
            return wave
        import torch
        import torchaudio.functional as F

        # A windowed-sinc filter: 24 kHz to 16 kHz is 3:2 once torchaudio divides the rates
        # by their gcd, so the cost is fixed and small (never F5-TTS's file loader).
        return F.resample(torch.from_numpy(wave), rate, self.rate).numpy()

    def transcribe(self, samples: Any, rate: int) -> str:
        """The words spoken in ``samples`` (mono float32 at ``rate`` Hz), stripped. Raises
        :class:`TranscriptionError` when the model fails or hears nothing."""
        wave = self.resampled(samples, rate)
        audio_s = wave.size / self.rate
        started = time.monotonic()
        with self.lock:
            self.transcriptions += 1
            try:
                result = self.pipe({"raw": wave, "sampling_rate": self.rate},
                                   chunk_length_s=CHUNK_S, batch_size=16, ignore_warning=True,
                                   generate_kwargs={"task": "transcribe"},
                                   return_timestamps=False)
            except Exception as exc:
                raise TranscriptionError("failed", f"transcribing the reference failed: "
                                         f"{type(exc).__name__}: {exc}") from exc
        text = str(result.get("text", "")).strip()
        events.emit("info", "transcribe.done", seconds=round(time.monotonic() - started, 3),
                    audio_s=round(audio_s, 2), chars=len(text))
        if not text:
            raise TranscriptionError("empty", f"the recognition model heard no words in "
                                     f"{audio_s:.1f} s of reference audio; send ref_text")
        return text


def load(folder: Path, device: str) -> Transcriber:
    """The Whisper model in ``folder`` on ``device``: float16 on a CUDA GPU of compute
    capability 7 or newer (as F5-TTS chooses), float32 otherwise. Reads ``folder`` only:
    the caller sets ``HF_HUB_OFFLINE`` once the files are complete."""
    import torch
    from transformers import pipeline

    half = device.startswith("cuda") and torch.cuda.get_device_properties(device).major >= 7
    dtype = torch.float16 if half else torch.float32
    pipe = pipeline("automatic-speech-recognition", model=str(folder), dtype=dtype,
                    device=device)
    return Transcriber(pipe, device, str(dtype).removeprefix("torch."))
