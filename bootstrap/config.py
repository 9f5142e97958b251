"""Effective configuration: flag > environment (``BOOTSTRAP_*``) > ``bootstrap.toml`` > default.

Every value remembers where it came from, so ``bootstrap config`` can say why a setting
is what it is. Bad values are usage errors (exit 2) that name the setting and its source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

MODES = ("volume", "image", "local")
LOG_FORMATS = ("auto", "json", "console")
INSTALLERS = ("auto", "uv", "pip")
HYDRATE = ("auto", "always", "never")
LOG_LEVELS = ("debug", "info", "warn", "error")
DEFAULT_TOML = "bootstrap.toml"


class ConfigError(Exception):
    """A setting that cannot be used; rendered as a usage error."""


@dataclass(frozen=True)
class Config:
    mode: str = "volume"
    volume: Path = Path("/runpod-volume")
    # The request handler the serve stage starts, as module:callable.
    handler: str = "handler.f5tts:make_handler"
    # Stages added by the user, as module:callable; they run in the worker before serve.
    extra_stages: tuple[str, ...] = ()
    # Per-stage deadline overrides in seconds (0 disables); `deadline_<stage>` in the env.
    deadlines: Mapping[str, float] = field(default_factory=dict)
    # Seconds the worker gets to exit after SIGTERM before it is killed.
    stop_grace_s: float = 10.0
    heartbeat_s: float = 30.0
    allow_cpu: bool = False
    log_format: str = "auto"
    log_level: str = "info"
    reports_keep: int = 50
    # Where reports go when the volume cannot be written.
    fallback_reports: Path = Path("/tmp/bootstrap/reports")
    # What this boot is expected to need, compared with RUNPOD_INIT_TIMEOUT by preflight.
    expected_boot_s: float = 300.0
    # Free space the container disk and temp dir need, in MB.
    min_free_disk_mb: int = 1024
    # When set, the serve stage answers this one job and the worker exits (local demo).
    test_input: str = ""
    # Extra arguments for the RunPod SDK, e.g. "--rp_serve_api --rp_api_port 8000".
    serve_args: str = ""
    # Stage names not to run (reported as skipped), e.g. "cuda,audio" for a CPU-only demo.
    skip: tuple[str, ...] = ()
    # -- volume, venv and install stages (docs/configuration.md) ---------------------------
    # Free space the volume needs for this boot, in MB.
    min_free_volume_mb: int = 1024
    # Paths (relative to the volume) the boot expects there; searched a level or two deeper
    # to name a doubled prefix (/runpod-volume/runpod-volume/...) when they are missing.
    volume_expect: tuple[str, ...] = ()
    # Paths the image provides, one absolute path per line (written by the Dockerfile).
    image_manifest: Path = Path("/etc/bootstrap/image-manifest.txt")
    # A requirements file, and/or requirements inline (one per line).
    requirements: str = ""
    requirements_text: str = ""
    installer: str = "auto"  # uv | pip | auto (uv when it can be found)
    index_url: str = ""  # empty: the installer's own default and configuration
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    # Let the environment see the image's site-packages (a torch baked into the image).
    system_site_packages: bool = False
    envs_keep: int = 3
    # A lease whose heartbeat has not moved for this long is taken over.
    lease_timeout_s: float = 60.0
    install_timeout_s: float = 900.0
    install_attempts: int = 3
    install_backoff_s: float = 5.0
    # Modules imported (and timed) in the environment after install, and in image mode.
    import_check: tuple[str, ...] = ()
    # -- hydrate stage: run the environment from a copy on the container disk -------------
    # auto: when the volume's lookups are slow and the disk has room; always; never (nor
    # write the packed form at build time).
    hydrate: str = "auto"
    # Where local copies go: the container disk (not the volume).
    hydrate_dir: Path = Path("/var/cache/bootstrap/envs")
    # Check ids `bootstrap check` counts as silenced instead of reporting, e.g. "preflight.I001".
    silence: tuple[str, ...] = ()
    # F5-TTS (cuda, model, warmup stages). Relative paths are under the volume.
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
    min_vram_mb: int = 3072
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
    # The handler's other limits by name (docs/handler.md), BOOTSTRAP_LIMIT_<NAME>=value:
    # read by the handler, which refuses a name it does not know.
    job_limits: Mapping[str, float] = field(default_factory=dict)

    @property
    def reports_dir(self) -> Path:
        return self.volume / ".bootstrap" / "reports"

    def on_volume(self, path: Path) -> Path:
        """``path`` as configured: absolute as is, relative under the volume."""
        return path if path.is_absolute() else self.volume / path

    def deadline_for(self, stage: str, default: float) -> float:
        return float(self.deadlines.get(stage, default))

    def to_env(self) -> str:
        """The configuration as JSON, handed to the worker so both sides agree."""
        return json.dumps({f.name: _jsonable(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def from_env(cls, text: str) -> Config:
        return cls(**{name: _coerce(name, value) for name, value in json.loads(text).items()})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


_FIELDS = {f.name: f for f in fields(Config)}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True,
               "0": False, "false": False, "no": False, "off": False, "": False}


def _coerce(name: str, value: Any) -> Any:
    """``value`` (from TOML, the environment or a flag) as the type of setting ``name``."""
    default = getattr(Config(), name)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            return _BOOL_WORDS[str(value).strip().lower()]
        if isinstance(default, Path):
            return Path(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(str(v) for v in value)
        if isinstance(default, Mapping):
            return {str(k): float(v) for k, v in dict(value).items()}
        return str(value)
    except (KeyError, ValueError, TypeError):
        raise ConfigError(f"{name}: cannot use {value!r} "
                          f"(expected {type(default).__name__})") from None


# Settings that take one of a few words.
CHOICES = {"mode": MODES, "log_format": LOG_FORMATS, "installer": INSTALLERS,
           "log_level": LOG_LEVELS, "hydrate": HYDRATE}


def _validate(values: dict[str, Any], sources: dict[str, str]) -> None:
    for name, allowed in CHOICES.items():
        if values[name] not in allowed:
            raise ConfigError(f"{name}: {values[name]!r} from {sources[name]} "
                              f"is not one of {', '.join(allowed)}")
    for name in ("job_timeout_s", "job_max_audio_s"):
        if not values[name] > 0:
            raise ConfigError(f"{name}: {values[name]!r} from {sources[name]} must be over 0")
    for target in (values["handler"], *values["extra_stages"]):
        if ":" not in target:
            raise ConfigError(f"{target!r} should be module:callable")


@dataclass(frozen=True)
class Loaded:
    config: Config
    sources: dict[str, str]  # setting -> "default" | "bootstrap.toml" | "env BOOTSTRAP_X" | "flag"
    # BOOTSTRAP_* variables that are no setting, each with what to say about it: a typo
    # must not be ignored in silence.
    unknown: tuple[str, ...] = ()


# BOOTSTRAP_* variables that are not settings: set by bootstrap for its own processes, or
# read by a part of it on its own (the store's, the entrypoint's, the image build's).
OTHER_VARIABLES = frozenset({"BOOTSTRAP_CONFIG", "BOOTSTRAP_WORKER_CONFIG", "BOOTSTRAP_RUN_DIR",
                             "BOOTSTRAP_RUN_ID", "BOOTSTRAP_WORKER_ID", "BOOTSTRAP_PYTHON",
                             "BOOTSTRAP_ENGINE", "BOOTSTRAP_CACHE_DIR"})
OTHER_PREFIXES = ("BOOTSTRAP_STORAGE_",)


def _unknown(key: str) -> str:
    """What to say about ``key``, a BOOTSTRAP_* variable that is no setting."""
    import difflib

    names = [f"BOOTSTRAP_{name.upper()}" for name in _FIELDS]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"{key} is not a setting and is ignored{guess}"


def load(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Loaded:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {name: getattr(Config(), name) for name in _FIELDS}
    sources = dict.fromkeys(_FIELDS, "default")

    path = toml_path or Path(environ.get("BOOTSTRAP_CONFIG", DEFAULT_TOML))
    if path.is_file():
        try:
            import tomllib  # only when there is a file: every boot pays for module imports

            table = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for name, value in table.get("bootstrap", table).items():
            if name not in _FIELDS:
                raise ConfigError(f"{path}: unknown setting {name!r}")
            values[name] = _coerce(name, value)
            sources[name] = str(path)
    elif toml_path is not None or "BOOTSTRAP_CONFIG" in environ:
        raise ConfigError(f"configuration file {path} does not exist")

    deadlines = dict(values["deadlines"])
    limits = dict(values["job_limits"])
    unknown = []
    for key, value in environ.items():
        if not key.startswith("BOOTSTRAP_") or key == "BOOTSTRAP_CONFIG":
            continue
        name = key.removeprefix("BOOTSTRAP_").lower()
        if name.startswith("deadline_"):
            try:
                deadlines[name.removeprefix("deadline_")] = float(value)
            except ValueError:
                raise ConfigError(f"{key}: cannot use {value!r} from env {key} (expected "
                                  "seconds, e.g. 300; 0 means no deadline)") from None
            sources["deadlines"] = "env BOOTSTRAP_DEADLINE_*"
        elif name.startswith("limit_"):
            try:
                limits[name.removeprefix("limit_")] = float(value)
            except ValueError:
                raise ConfigError(f"{key}: cannot use {value!r} (expected a number)") from None
            sources["job_limits"] = "env BOOTSTRAP_LIMIT_*"
        elif name in _FIELDS:
            values[name] = _coerce(name, value)
            sources[name] = f"env {key}"
        elif key not in OTHER_VARIABLES and not key.startswith(OTHER_PREFIXES):
            unknown.append(_unknown(key))
    values["deadlines"] = deadlines
    values["job_limits"] = limits

    for name, value in (flags or {}).items():
        if value is None or value == ():
            continue
        values[name] = _coerce(name, value)
        sources[name] = "flag"

    # Local mode is a developer machine: CPU is allowed unless the user said otherwise.
    if values["mode"] == "local" and sources["allow_cpu"] == "default":
        values["allow_cpu"] = True
        sources["allow_cpu"] = "default (local mode)"
    _validate(values, sources)
    return Loaded(Config(**values), sources, tuple(sorted(unknown)))
