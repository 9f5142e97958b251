"""The package installer: uv (fast) or pip (fallback), behind one small interface.

uv's cache for an install lives inside the environment being built (``BUILD_CACHE``), so
every file is unpacked once, on the volume, and hard-linked into place: the container disk,
often a few GB, never holds torch's unpacked wheels, and the volume never holds two copies.
The install stage removes it before publishing. An operator's own ``UV_CACHE_DIR`` wins;
then ``UV_LINK_MODE`` is ``copy`` when the environment is on another filesystem (hard links
cannot cross, and uv's fallback warning would be noise on every build).
Both installers byte-compile at install time, so workers never write ``.pyc`` files to the
shared volume at import. Retries are ours (``install`` stage), so the installers' own are
turned off (pip keeps one: it names a connection error only when it retries, and without
that line an unreachable index reads as "no matching distribution"): one attempt, one
timeout, one classified failure.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bootstrap.kernel import command
from bootstrap.kernel.command import CommandFailed, OnLine
from bootstrap.kernel.config import Config

UV_CACHE = Path(tempfile.gettempdir()) / "bootstrap" / "uv-cache"  # commands with no target
BUILD_CACHE = ".bootstrap-uv-cache"  # inside the environment an install writes to

# Lines of installer output that mean the index could not be reached or answered badly:
# worth another attempt. Checked before the permanent ones, because pip ends an
# unreachable index with "No matching distribution found" too.
TRANSIENT = (
    "network is unreachable", "connection refused", "connection reset", "timed out",
    "temporary failure in name resolution", "name or service not known",
    "failed to resolve", "newconnectionerror", "max retries exceeded", "connecterror",
    "error sending request", "dns error", "connection broken", "remotedisconnected",
    " 500 ", " 502 ", " 503 ", " 504 ", "status code 5", "server error",
    "too many requests", " 429 ",
)


class NoInstaller(Exception):
    pass


@dataclass(frozen=True)
class Installer:
    name: str  # uv | pip
    version: str
    exe: str  # the uv binary, or the Python whose pip is used

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def env(self, target: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if self.name == "uv":
            if not env.get("UV_CACHE_DIR"):
                env["UV_CACHE_DIR"] = str(self.build_cache(target) or UV_CACHE)
            env.setdefault("UV_LINK_MODE", link_mode(Path(env["UV_CACHE_DIR"]), target))
            env.update(UV_HTTP_RETRIES="0", UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
        else:
            env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        return env

    def build_cache(self, target: Path | None) -> Path | None:
        """The cache an install into ``target`` uses and leaves behind, to be removed before
        the environment is published; None when there is none (pip, no target, or the
        operator's own ``UV_CACHE_DIR``)."""
        if self.name != "uv" or target is None or os.environ.get("UV_CACHE_DIR"):
            return None
        return target / BUILD_CACHE

    def create_argv(self, path: Path, system_site_packages: bool) -> list[str]:
        site = ["--system-site-packages"] if system_site_packages else []
        if self.name == "uv":
            return [self.exe, "venv", "--quiet", "--python", sys.executable, *site, str(path)]
        # pip runs from the supervisor's Python into the env (--python): no pip in the env
        return [sys.executable, "-m", "venv", "--without-pip", *site, str(path)]

    def install_argv(self, python: Path, requirements: Path, config: Config,
                     overrides: Path | None = None) -> list[str]:
        """``overrides`` reach uv alone: pip has no way to replace what a package asks for
        (its constraints only narrow it), so with pip they are dropped (install.W004)."""
        if self.name == "uv":
            argv = [self.exe, "pip", "install", "--python", str(python), "--compile-bytecode"]
            if overrides is not None:
                argv += ["--override", str(overrides)]
        else:
            argv = [self.exe, "-m", "pip", "--python", str(python), "install",
                    "--retries", "1", "--progress-bar", "off"]
        return [*argv, "-r", str(requirements), *_index_args(config)]

    def check_argv(self, python: Path) -> list[str]:
        if self.name == "uv":
            return [self.exe, "pip", "check", "--python", str(python)]
        return [self.exe, "-m", "pip", "--python", str(python), "check"]

    def run(self, argv: list[str], timeout_s: float | None = None,
            on_line: OnLine | None = None, target: Path | None = None) -> command.CommandResult:
        """Run ``argv``; ``target`` is the environment it writes to (for uv's link mode)."""
        return command.run(argv, timeout_s=timeout_s, env=self.env(target), on_line=on_line)


def _device(path: Path) -> int | None:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return path.stat().st_dev
    except OSError:
        return None


def link_mode(cache: Path, target: Path | None) -> str:
    """Hard links from uv's cache when the environment is on the cache's filesystem (the
    fastest install, and uv's own default); copies when it is not, the usual case with the
    cache on the local disk and the environment on a network volume, where uv would try
    hard links, fail across devices, and fall back with a warning."""
    if target is not None and _device(cache) is not None and _device(cache) == _device(target):
        return "hardlink"
    return "copy"


def _index_args(config: Config) -> list[str]:
    args = ["--index-url", config.index_url] if config.index_url else []
    for link in config.find_links:
        args += ["--find-links", link]
    return [*args, "--no-index"] if config.no_index else args


def _uv() -> Installer | None:
    import importlib.metadata  # here, not at the top: the boot pays for every module import

    exe = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    try:  # a uv installed from PyPI names its version without a subprocess
        version = importlib.metadata.version("uv")
    except importlib.metadata.PackageNotFoundError:
        version = command.run([exe, "--version"], timeout_s=30).stdout.split()[1]
    return Installer("uv", version, exe)


def _pip() -> Installer | None:
    import importlib.metadata

    try:
        return Installer("pip", importlib.metadata.version("pip"), sys.executable)
    except importlib.metadata.PackageNotFoundError:
        return None


def find(choice: str) -> Installer:
    """The installer to use: ``uv``, ``pip``, or ``auto`` (uv when found, else pip)."""
    found = _uv() if choice in ("uv", "auto") else None
    if found is None and choice in ("pip", "auto"):
        found = _pip()
    if found is None:
        raise NoInstaller(choice)
    return found


def is_transient(failure: CommandFailed) -> bool:
    if failure.timed_out:
        return True
    text = f"{failure.result.stdout}\n{failure.result.stderr}".lower()
    return any(marker in text for marker in TRANSIENT)
