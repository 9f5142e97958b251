"""Effective configuration: flag > environment (``BOOTSTRAP_*``) > ``bootstrap.toml`` > default.

Every value remembers where it came from, so ``bootstrap config`` can say why a setting
is what it is. Bad values are usage errors (exit 2) that name the setting and its source.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bootstrap.kernel import app as apps
from bootstrap.kernel.app import NoSettings

MODES = ("volume", "image", "local")
LOG_FORMATS = ("auto", "json", "console")
INSTALLERS = ("auto", "uv", "pip")
HYDRATE = ("auto", "always", "never")
ENDPOINTS = ("auto", "queue", "load_balancer")
LOG_LEVELS = ("debug", "info", "warn", "error")
DEFAULT_TOML = "bootstrap.toml"


class ConfigError(Exception):
    """A setting that cannot be used; rendered as a usage error."""


def by_prefix(prefix: str, expected: str = "a number") -> Any:
    """A setting that maps names to numbers, one variable each: ``BOOTSTRAP_<PREFIX><NAME>``
    (``deadline_`` for the deadlines). The app's settings may declare one too."""
    return field(default_factory=dict, metadata={"env_prefix": prefix, "expected": expected})


@dataclass(frozen=True)
class Config:
    mode: str = "volume"
    volume: Path = Path("/runpod-volume")
    # The app this worker serves, as module:attribute naming a bootstrap.kernel.app.App: its
    # settings, its worker stages and its handler (docs/apps.md). "" is no app: the
    # framework's stages and the handler below.
    app: str = ""
    # The request handler factory the serve stage starts, as module:callable; "" is the
    # app's own.
    handler: str = ""
    # The handler may also be a RunPod handler file, "path/to/handler.py", that calls
    # runpod.serverless.start itself (bootstrap/stages/handler_file.py).
    # Stages added by the user, as module:callable; they run in the worker before serve.
    extra_stages: tuple[str, ...] = ()
    # Per-stage deadline overrides in seconds (0 disables); BOOTSTRAP_DEADLINE_<STAGE>.
    deadlines: Mapping[str, float] = by_prefix("deadline_", "seconds, e.g. 300; 0 means "
                                               "no deadline")
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
    # On RunPod serverless, a boot that fails before it serves takes one queued job and
    # fails it with the boot's failure (bootstrap/runpod_failed_job.py).
    failed_boot_job: bool = True
    # Extra arguments for the RunPod SDK, e.g. "--rp_serve_api --rp_api_port 8000".
    serve_args: str = ""
    # Stage names not to run (reported as skipped), e.g. "cuda" for a CPU-only demo.
    skip: tuple[str, ...] = ()
    # -- load-balancing endpoints and Kubernetes (bootstrap/health/) ----------------------
    # auto: a load-balancing endpoint when PORT or PORT_HEALTH is set; queue; load_balancer.
    endpoint: str = "auto"
    # The app's HTTP server on a load-balancing endpoint, as module:callable returning an
    # ASGI app; "" is the app's own (App.http_app), else its handler served over HTTP.
    http_app: str = ""
    # Seconds the health path says 503 with the failure after a failed boot, before exit.
    health_hold_s: float = 60.0
    # A file written once the worker serves (a Kubernetes readiness probe); "" is none.
    ready_file: str = ""
    # Where the failure is written for Kubernetes (its terminationMessagePath).
    termination_log: str = "/dev/termination-log"
    # -- volume, venv and install stages (the README's settings table) ----------------------
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
    # Copy only the part of the environment an earlier boot used, where one recorded it
    # (the rest linked to the volume); false: always the whole packed form.
    hydrate_used: bool = True
    # Check ids `bootstrap check` counts as silenced instead of reporting, e.g. "preflight.I001".
    silence: tuple[str, ...] = ()
    # The GPU memory the cuda stage requires of the chosen device, in MB.
    min_vram_mb: int = 3072
    # The app's own settings: an instance of its App.settings, filled from the same
    # sources as the fields above (not a setting itself).
    app_settings: Any = field(default_factory=NoSettings)

    @property
    def reports_dir(self) -> Path:
        return self.volume / ".bootstrap" / "reports"

    def on_volume(self, path: Path) -> Path:
        """``path`` as configured: absolute as is, relative under the volume."""
        return path if path.is_absolute() else self.volume / path

    def deadline_for(self, stage: str, default: float) -> float:
        return float(self.deadlines.get(stage, default))

    def settings(self) -> dict[str, Any]:
        """Every setting by name, the framework's then the app's."""
        own = {name: getattr(self, name) for name in _FIELDS}
        app = {f.name: getattr(self.app_settings, f.name) for f in fields(self.app_settings)}
        return {**own, **app}

    def replace(self, **changes: Any) -> Config:
        """A copy with settings changed by name, the framework's or the app's."""
        theirs = {name: value for name, value in changes.items() if name not in _FIELDS}
        own = {name: value for name, value in changes.items() if name in _FIELDS}
        return dataclasses.replace(self, **own,
                                   app_settings=dataclasses.replace(self.app_settings, **theirs))

    def to_env(self) -> str:
        """The configuration as JSON, handed to the worker so both sides agree."""
        return json.dumps({name: _jsonable(value) for name, value in self.settings().items()})

    @classmethod
    def from_env(cls, text: str) -> Config:
        return from_settings(json.loads(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


# The framework's settings; the app's are the fields of its App.settings.
_FIELDS = {f.name: f for f in fields(Config) if f.name != "app_settings"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True,
               "0": False, "false": False, "no": False, "off": False, "": False}


def _defaults(app: apps.App) -> dict[str, Any]:
    """Every setting's default, the framework's and ``app``'s, by name."""
    _refuse_collisions(app)
    framework, theirs = Config(), app.settings()
    own = {name: getattr(framework, name) for name in _FIELDS}
    return {**own, **{f.name: getattr(theirs, f.name) for f in fields(app.settings)}}


def _refuse_collisions(app: apps.App) -> None:
    """An app setting must not share its variable with the framework's: one namespace,
    and an app field named ``mode`` would otherwise replace the framework's in silence."""
    framework = {f"BOOTSTRAP_{name.upper()}": f"the framework's setting {name!r}"
                 for name in _FIELDS}
    framework.update({key: "a variable bootstrap sets or reads itself"
                      for key in OTHER_VARIABLES})
    prefixes = {f"BOOTSTRAP_{f.metadata['env_prefix'].upper()}": f"the setting {name!r}"
                for name, f in _FIELDS.items() if "env_prefix" in f.metadata}
    prefixes.update({prefix: "the storage settings" for prefix in OTHER_PREFIXES})
    for f in fields(app.settings):
        key = f"BOOTSTRAP_{f.name.upper()}"
        taken = framework.get(key) or next(
            (what for prefix, what in prefixes.items() if key.startswith(prefix)), None)
        if taken:
            raise ConfigError(f"app {app.name}: its setting {f.name!r} ({key}) collides "
                              f"with {taken}; rename the field in "
                              f"{app.settings.__module__}.{app.settings.__qualname__}")


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` (from TOML, the environment or a flag) as the type of ``default``."""
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


def _build(app: apps.App, values: Mapping[str, Any]) -> Config:
    """A Config from settings by name (framework's and app's), each coerced to its type."""
    defaults = _defaults(app)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown settings {', '.join(unknown)} for app {app.name or '(none)'}")
    coerced = {name: _coerce(name, value, defaults[name]) for name, value in values.items()}
    own = {name: value for name, value in coerced.items() if name in _FIELDS}
    theirs = {name: value for name, value in coerced.items() if name not in _FIELDS}
    return Config(**own, app_settings=app.settings(**theirs))


def from_settings(values: Mapping[str, Any]) -> Config:
    """A Config from settings by name, the framework's and those of the app that
    ``values["app"]`` names, each coerced to its type; the rest stay at their defaults."""
    return _build(apps.load(str(values.get("app", ""))), values)


# Settings that take one of a few words.
CHOICES = {"mode": MODES, "log_format": LOG_FORMATS, "installer": INSTALLERS,
           "log_level": LOG_LEVELS, "hydrate": HYDRATE,
           "endpoint": ENDPOINTS}


def _validate(config: Config, app: apps.App, sources: dict[str, str]) -> None:
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise ConfigError(f"{name}: {getattr(config, name)!r} from {sources[name]} "
                              f"is not one of {', '.join(allowed)}")
    for name, problem in app.validate(config.app_settings):
        raise ConfigError(f"{name}: {getattr(config.app_settings, name)!r} from "
                          f"{sources[name]} {problem}")
    handler_file = config.handler.endswith(".py")  # a RunPod handler file, by path
    for target in ("" if handler_file else config.handler, config.http_app,
                   *config.extra_stages):
        if target and ":" not in target:
            raise ConfigError(f"{target!r} should be module:callable")


@dataclass(frozen=True)
class Loaded:
    config: Config
    sources: dict[str, str]  # setting -> "default" | "bootstrap.toml" | "env BOOTSTRAP_X" | "flag"
    # BOOTSTRAP_* variables that are no setting, each with what to say about it: a typo
    # must not be ignored in silence.
    unknown: tuple[str, ...] = ()
    app: apps.App = apps.NO_APP


# BOOTSTRAP_* variables that are not settings: set by bootstrap for its own processes, or
# read by a part of it on its own (the store's, the entrypoint's, the image build's).
OTHER_VARIABLES = frozenset({"BOOTSTRAP_CONFIG", "BOOTSTRAP_WORKER_CONFIG", "BOOTSTRAP_RUN_DIR",
                             "BOOTSTRAP_RUN_ID", "BOOTSTRAP_WORKER_ID", "BOOTSTRAP_PYTHON",
                             "BOOTSTRAP_ENGINE", "BOOTSTRAP_CACHE_DIR"})
OTHER_PREFIXES = ("BOOTSTRAP_STORAGE_",)


def _unknown(key: str, names: list[str]) -> str:
    """What to say about ``key``, a BOOTSTRAP_* variable that is no setting."""
    import difflib

    candidates = [f"BOOTSTRAP_{name.upper()}" for name in names]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"{key} is not a setting and is ignored{guess}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # only when there is a file: every boot pays for module imports

        table: dict[str, Any] = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    inner = table.get("bootstrap", table)
    return dict(inner)


def _app_target(flags: Mapping[str, Any], environ: Mapping[str, str],
                table: Mapping[str, Any]) -> str:
    """The ``app`` setting, read before the others: it says which other settings exist."""
    if flags.get("app"):
        return str(flags["app"])
    if "BOOTSTRAP_APP" in environ:
        return environ["BOOTSTRAP_APP"]
    return str(table.get("app", ""))


def load(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Loaded:
    environ = os.environ if environ is None else environ
    flags = flags or {}
    path = toml_path or Path(environ.get("BOOTSTRAP_CONFIG", DEFAULT_TOML))
    if path.is_file():
        table = _read_toml(path)
    elif toml_path is not None or "BOOTSTRAP_CONFIG" in environ:
        raise ConfigError(f"configuration file {path} does not exist")
    else:
        table = {}
    try:
        app = apps.load(_app_target(flags, environ, table))
    except apps.AppError as exc:
        raise ConfigError(str(exc)) from None

    defaults = _defaults(app)
    values: dict[str, Any] = dict(defaults)
    sources = dict.fromkeys(defaults, "default")
    for name, value in table.items():
        if name not in defaults:
            raise ConfigError(f"{path}: unknown setting {name!r}")
        values[name] = _coerce(name, value, defaults[name])
        sources[name] = str(path)

    prefixed = {f.metadata["env_prefix"]: f for f in (*_FIELDS.values(), *fields(app.settings))
                if "env_prefix" in f.metadata}
    unknown = []
    for key, value in environ.items():
        if not key.startswith("BOOTSTRAP_") or key == "BOOTSTRAP_CONFIG":
            continue
        name = key.removeprefix("BOOTSTRAP_").lower()
        mapping = next((f for prefix, f in prefixed.items() if name.startswith(prefix)), None)
        if mapping is not None:
            prefix = mapping.metadata["env_prefix"]
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{key}: cannot use {value!r} from env {key} (expected "
                                  f"{mapping.metadata['expected']})") from None
            values[mapping.name] = {**values[mapping.name], name.removeprefix(prefix): number}
            sources[mapping.name] = f"env BOOTSTRAP_{prefix.upper()}*"
        elif name in defaults:
            values[name] = _coerce(name, value, defaults[name])
            sources[name] = f"env {key}"
        elif key not in OTHER_VARIABLES and not key.startswith(OTHER_PREFIXES):
            unknown.append(_unknown(key, list(defaults)))

    for name, value in flags.items():
        if value is None or value == ():
            continue
        values[name] = _coerce(name, value, defaults[name])
        sources[name] = "flag"

    # Local mode is a developer machine: CPU is allowed unless the user said otherwise.
    if values["mode"] == "local" and sources["allow_cpu"] == "default":
        values["allow_cpu"] = True
        sources["allow_cpu"] = "default (local mode)"
    config = _build(app, values)
    _validate(config, app, sources)
    return Loaded(config, sources, tuple(sorted(unknown)), app)
