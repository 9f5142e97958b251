"""The F5-TTS app's settings: each field is a setting like the framework's own
(``BOOTSTRAP_<NAME>``, ``bootstrap.toml``, ``bootstrap config``), documented in
docs/handler.md ("Settings"). The framework reads them from the app's declaration
(``f5worker/app.py``); the app's code reads them with :func:`of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bootstrap.kernel.config import Config, by_prefix


@dataclass(frozen=True)
class F5Settings:
    # The model (audio, model and warmup stages). Relative paths are under the volume.
    model_arch: str = "F5TTS_v1_Base"  # a config name of f5_tts, or a .yaml path
    model_ckpt: Path = Path("models/F5TTS_v1_Base/model_1250000.safetensors")
    model_vocab: Path = Path("models/F5TTS_v1_Base/vocab.txt")
    model_vocoder: Path = Path("models/vocos-mel-24khz")
    model_voices: Path = Path("models/voices")
    # Voices shipped in the image (NAME.wav + NAME.txt); jobs cannot delete them.
    voices_bundled: Path = Path("/opt/bootstrap/voices")
    # Hugging Face repos missing assets are fetched from; "" means never download.
    model_repo: str = "SWivid/F5-TTS"
    vocoder_repo: str = "charactr/vocos-mel-24khz"
    # RunPod's cached models (the endpoint's "Model" setting), a Hugging Face cache looked
    # in before the volume's own (<volume>/.cache/huggingface/hub) and before downloading.
    model_cache: Path = Path("/runpod-volume/huggingface-cache/hub")
    warmup_voice: str = "default"
    warmup_nfe: int = 16
    # Word timings (docs/handler.md): off by default, so a boot neither checks nor loads
    # the aligner. The arch is "MMS_FA" or a .json of torchaudio wav2vec2_model parameters;
    # the weights are fetched from aligner_url ("" means never download) when missing.
    timings: bool = False
    aligner_arch: str = "MMS_FA"
    aligner_model: Path = Path("models/mms-fa/model.pt")
    aligner_url: str = (
        "https://dl.fbaipublicfiles.com/mms/torchaudio/ctc_alignment_mling_uroman/model.pt")
    # Transcription (docs/handler.md): a job without ref_text has its reference transcribed
    # by a Whisper model, as F5-TTS itself does. On by default: the worker this one replaces
    # did so, and its clients never send ref_text, so they must keep working unchanged; off,
    # no recognition model is checked or loaded and such a job is refused. The model's files
    # live in asr_dir (under the volume unless absolute) and missing ones are fetched from
    # the Hugging Face repo asr_model ("" means never download).
    transcribe: bool = True
    # The volume's transcript cache holds at most this many (about: it is kept per shard,
    # docs/handler.md), the oldest written removed first.
    transcript_cache_max: int = 10000
    asr_model: str = "openai/whisper-large-v3-turbo"
    asr_dir: Path = Path("models/whisper-large-v3-turbo")
    # A job's budget (docs/handler.md): its wall-clock deadline, under RunPod's default
    # execution timeout of 600 s so the worker, not the platform, says what happened; and
    # the audio one job may make, computed from the model's own chunking before any compute.
    job_timeout_s: float = 540.0
    job_max_audio_s: float = 600.0
    # A reference over 10 s is cut to its middle 8 s (the replaced worker's rule) instead
    # of refused; its transcript then comes from the transcriber (docs/handler.md).
    ref_clip_long: bool = True
    # The handler's other limits by name, BOOTSTRAP_LIMIT_<NAME>=value (docs/handler.md):
    # the handler refuses a name it does not know.
    job_limits: Mapping[str, float] = by_prefix("limit_")
    # Streaming (docs/handler.md#streaming): the queue handler becomes a generator, so a
    # job asking "stream": true gets its audio on /stream as each chunk is made. Off by
    # default: with a generator handler RunPod's /runsync answers a list (the aggregate of
    # what it yielded), which the replaced worker's clients do not read.
    stream: bool = False
    # The load-balancing endpoint's OpenAI-compatible speech API (docs/handler.md#http-api):
    # the key its clients send as "Authorization: Bearer <key>" ("" lets any client in), and
    # how many requests may wait for the model before one is answered 429.
    api_key: str = ""
    api_queue: int = 4
    # Voices in the bucket are the operator's, shared by every endpoint using it: a client
    # may upload a new one but not replace or delete one unless this is on (docs/handler.md).
    bucket_voice_changes: bool = False


def of(config: Config) -> F5Settings:
    """The F5-TTS settings of a configuration that boots this app."""
    settings = config.app_settings
    if not isinstance(settings, F5Settings):
        raise TypeError(f"the configuration boots another app (app={config.app!r}); its "
                        f"settings are a {type(settings).__name__}")
    return settings


def problems(settings: F5Settings) -> list[tuple[str, str]]:
    """Rules beyond the types, shown as usage errors with where the value came from."""
    found = [(name, "must be over 0") for name in ("job_timeout_s", "job_max_audio_s")
             if not getattr(settings, name) > 0]
    if settings.transcript_cache_max < 1:
        found.append(("transcript_cache_max", "must be 1 or more"))
    if settings.api_queue < 0:
        found.append(("api_queue", "must be 0 or more"))
    return found
