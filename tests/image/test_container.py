"""The real image, built with podman from the Dockerfile and booted as RunPod would boot it.

A local Debian bookworm base built by debootstrap stands in for the registry base image
(``BASE_IMAGE``); tests/container/setup-podman.sh prepares podman and that base. Every boot
is a real `podman run` of the slim image: tini is PID 1, entrypoint.sh execs bootstrap, and
the exit code the test sees is the one podman hands back, compared with bootstrap's own
summary line.

One boot is the real F5-TTS worker on the tiny random model: the slim image builds the
worker's environment (torch, F5-TTS, the RunPod SDK) on the volume with bootstrap's own venv
and install stages, from a local wheelhouse mounted read-only, with no network at all;
tests/container/wheelhouse.sh builds that wheelhouse once with pip on the host (~4 GB).

In CI (``CI=true``) these tests run, never skip: a missing podman there is a failure. Outside
CI they skip when podman is absent or the user is not root (rootful podman is what the setup
script configures); the tiny-model boot also skips there without torch (it builds the model on
the host). The first run takes a few minutes (base image, layers, wheelhouse); later runs
reuse the cache under ``.cache/container`` (``BOOTSTRAP_CACHE_DIR`` moves it).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap.environment import installer
from bootstrap.kernel.events import parse_line
from bootstrap.kernel.exit_codes import ExitCode
from f5worker.handler import tiny_model
from tests.image import hub

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
IMAGE = "localhost/bootstrap-worker:test-slim"
FIXTURES = REPO / "tests" / "fixtures" / "container"
# Planted in the build context and the build's environment; must appear in no layer.
CANARY = f"canary-{uuid.uuid4().hex}"
# The echo handler needs no model; these worker stages need torch and a GPU (docs).
SKIP_MODEL_STAGES = "cuda,audio,model,warmup"

pytestmark = pytest.mark.timeout(1800)


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the container tests use rootful podman: run them as root"
    if shutil.which("podman") is None and not IN_CI:
        return "podman is not installed (tests/container/setup-podman.sh installs it)"
    return None


@pytest.fixture(scope="module")
def podman_env() -> dict[str, str]:
    """The environment podman runs with: private config and storage, the stand-in base."""
    reason = _unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"container tests cannot run in CI: {reason}")
        pytest.skip(reason)
    # In CI the script also installs podman; it is idempotent and quick when all is there.
    result = subprocess.run([str(REPO / "tests/container/setup-podman.sh")], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"setup-podman.sh failed ({result.returncode}):\n{result.stderr[-4000:]}")
    env = dict(os.environ)
    for line in result.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0]
    return env


def _checkout(dest: Path) -> Path:
    """This checkout's files (tracked, and untracked unless ignored): what a clone of it holds."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _build_context(dest: Path) -> Path:
    """This checkout's files plus planted secrets."""
    _checkout(dest)
    # Where a developer's secrets end up: a .env at the top and beside the handler code.
    (dest / ".env").write_text(f"HF_TOKEN={CANARY}\n")
    (dest / "f5worker" / "handler" / ".env").write_text(f"RUNPOD_API_KEY={CANARY}\n")
    return dest


@pytest.fixture(scope="module")
def image(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The slim image, built by image/build.sh (what the docs tell users to run)."""
    context = _build_context(tmp_path_factory.mktemp("context"))
    env = {**podman_env, "HF_TOKEN": CANARY, "RUNPOD_API_KEY": CANARY}
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "image/build.sh"), "--variant", "slim", "--tag", IMAGE,
         "--context", str(context), "--",
         "--build-arg", f"BASE_IMAGE={podman_env['BOOTSTRAP_TEST_BASE']}"],
        env=env, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"image build failed ({result.returncode}):\n"
                    f"{(result.stdout + result.stderr)[-6000:]}")
    print(f"built {IMAGE} in {time.monotonic() - started:.1f} s")
    return IMAGE


def _f5_stack() -> None:
    """The tiny model is built on the host with torch and F5-TTS (the f5 extra)."""
    if all(importlib.util.find_spec(m) for m in ("torch", "f5_tts", "vocos")):
        return
    if IN_CI:
        pytest.fail("the tiny-model container test needs the f5 extra in CI (scripts/test.sh)")
    pytest.skip("needs the f5 extra (pip install -e '.[f5]') to build the tiny model")


@pytest.fixture(scope="module")
def wheelhouse(request: pytest.FixtureRequest) -> Path:
    """The F5-TTS worker's wheels on the host, built once (tests/container/wheelhouse.sh)."""
    _f5_stack()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    # The first build downloads ~4 GB: say so on the terminal, not in captured output.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\ncontainer tests: the F5-TTS wheelhouse (a few minutes the first time) ...",
              file=sys.stderr, flush=True)
        result = subprocess.run([str(REPO / "tests/container/wheelhouse.sh")],
                                env={**os.environ, "PYTHON": sys.executable},
                                stdout=subprocess.PIPE, text=True, timeout=1500)
    if result.returncode != 0:
        pytest.fail(f"tests/container/wheelhouse.sh failed ({result.returncode}); "
                    "its lines are above")
    line = result.stdout.strip().splitlines()[-1]
    path = Path(shlex.split(line.removeprefix("export BOOTSTRAP_TEST_WHEELHOUSE="))[0])
    assert any(path.glob("torch-*.whl")), f"no torch wheel in {path}"
    return path


@dataclass
class Boot:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        """The last line of stdout, which every boot must end with."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"no output at all; stderr:\n{self.stderr[-3000:]}"
        last: dict[str, Any] = json.loads(lines[-1])
        assert last["event"] == "summary", lines[-1]
        return last

    def named(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def describe(self) -> str:
        return (f"exit {self.returncode}\nstdout:\n{self.stdout[-6000:]}\n"
                f"stderr:\n{self.stderr[-3000:]}")


def _events(stdout: str) -> list[dict[str, Any]]:
    return [e for e in map(parse_line, stdout.splitlines()) if e is not None]


def _run_argv(image: str, name: str, *, env: dict[str, str], volume: Path | None,
              read_only: bool, user: str | None, tini: bool, mounts: list[str],
              args: list[str], network: str = "host") -> list[str]:
    argv = ["podman", "run", "--rm", "--name", name, f"--network={network}"]
    # The installers in the volume's environment (uv, pip) verify TLS with their own bundled
    # roots; point them at the system store, which holds this host's proxy CA
    # (setup-podman.sh copies it into the base). Without a proxy this changes nothing.
    store = "/etc/ssl/certs/ca-certificates.crt"
    env = {"BOOTSTRAP_LOG_FORMAT": "json", "PIP_CERT": store, "SSL_CERT_FILE": store, **env}
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if volume is not None:
        argv += ["--volume", f"{volume}:/runpod-volume" + (":ro" if read_only else "")]
    for mount in mounts:
        argv += ["--volume", mount]
    if user is not None:
        argv += ["--user", user]
    if not tini:
        # Without tini the entrypoint is PID 1 and execs bootstrap, which then is PID 1.
        # (--entrypoint drops the image's CMD, so the command is given again.)
        argv += ["--entrypoint", "/usr/local/bin/entrypoint.sh"]
        args = args or ["run"]
    return [*argv, image, *args]


def boot(podman_env: dict[str, str], image: str, *, env: dict[str, str] | None = None,
         volume: Path | None = None, read_only: bool = False, user: str | None = None,
         tini: bool = True, mounts: list[str] | None = None, args: list[str] | None = None,
         network: str = "host", timeout: float = 900) -> Boot:
    name = f"bootstrap-test-{uuid.uuid4().hex[:10]}"
    argv = _run_argv(image, name, env=env or {}, volume=volume, read_only=read_only,
                     user=user, tini=tini, mounts=mounts or [], args=args or [],
                     network=network)
    try:
        result = subprocess.run(argv, env=podman_env, capture_output=True, text=True,
                                timeout=timeout)
    finally:
        subprocess.run(["podman", "rm", "--force", "--ignore", name], env=podman_env,
                       capture_output=True)
    return Boot(result.returncode, result.stdout, result.stderr, _events(result.stdout))


def assert_named_failure(result: Boot, *, stage: str, code: str, exit_code: int) -> None:
    """The failure is named in the last line, and podman hands back the same exit code."""
    summary = result.summary
    assert (summary["status"], summary["stage"], summary["code"]) == ("fail", stage, code), \
        result.describe()
    assert summary["exit_code"] == exit_code, result.describe()
    assert result.returncode == exit_code, result.describe()
    assert summary["msg"] and summary["hint"]


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "runpod-volume"
    path.mkdir()
    yield path
    # The container may have written files as another user; the tmp dir must stay removable.
    shutil.rmtree(path, ignore_errors=True)


# -- the image itself -----------------------------------------------------------------------


def test_image_labels_name_the_version_and_revision(podman_env: dict[str, str],
                                                    image: str) -> None:
    inspect = subprocess.run(["podman", "image", "inspect", image], env=podman_env,
                             check=True, capture_output=True, text=True).stdout
    labels = json.loads(inspect)[0]["Config"]["Labels"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.revision"] in (head, f"{head}-dirty")
    assert labels["io.bootstrap.variant"] == "slim"


def test_image_manifest_lists_what_the_image_provides(podman_env: dict[str, str],
                                                      image: str) -> None:
    result = subprocess.run(["podman", "run", "--rm", "--entrypoint", "cat", image,
                             "/etc/bootstrap/image-manifest.txt"],
                            env=podman_env, capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    paths = [line for line in lines if line.startswith("/")]
    assert "# variant: slim" in lines
    assert "# mode: volume" in lines
    assert "/usr/local/lib/python3.11/dist-packages/bootstrap" in paths
    assert "/usr/local/bin/entrypoint.sh" in paths
    assert "/usr/bin/tini" in paths


def _torchcodec_requirement() -> str:
    """The torchcodec the worker installs (the f5 extra), so this checks the real pairing."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get(
        "optional-dependencies", {})
    for requirement in (r for reqs in extras.values() for r in reqs):
        if requirement.replace(" ", "").lower().startswith("torchcodec"):
            return str(requirement)
    return "torchcodec<0.10"  # the range torch 2.9 loads (FAILURES.md 8)


# Every torchcodec library for one FFmpeg major, resolved with `ldd`; torch's own libraries
# (libtorch*, libc10*) are left out: they come with torch, not with the image.
TORCHCODEC_LDD = """
set -euo pipefail
python3 -m pip install --quiet --break-system-packages --no-deps --target /tmp/tc "$1"
cd /tmp/tc/torchcodec
for major in 4 5 6 7 8; do
    missing=""
    for kind in core custom_ops pybind_ops; do
        missing+="$(ldd "libtorchcodec_${kind}${major}.so" | grep 'not found' \
            | grep -vE 'lib(torch|c10)[^ ]*[.]so' | awk '{print $1}' | tr '\n' ' ' || true)"
    done
    echo "ffmpeg${major}: ${missing:-ok}"
done
"""


def test_the_image_provides_every_library_torchcodec_loads(podman_env: dict[str, str],
                                                           image: str) -> None:
    """torchaudio 2.9 decodes through torchcodec, which needs FFmpeg's shared libraries and
    libpython (FAILURES.md 8): for one FFmpeg major, all three of its libraries resolve."""
    result = subprocess.run(
        ["podman", "run", "--rm", "--network=host", "--env",
         "PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "--entrypoint", "bash", image,
         "-c", TORCHCODEC_LDD, "ldd", _torchcodec_requirement()],
        env=podman_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    majors = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert "ok" in majors.values(), f"no FFmpeg major with all libraries: {majors}"


def test_no_secret_from_the_context_or_the_build_environment_is_in_any_layer(
    podman_env: dict[str, str], image: str, tmp_path: Path,
) -> None:
    """Every layer and the image config, byte for byte, after a build whose context held a
    .env with a token and whose environment held HF_TOKEN and RUNPOD_API_KEY."""
    archive = tmp_path / "image.tar"
    subprocess.run(["podman", "save", "--format", "docker-archive", "-o", str(archive), image],
                   env=podman_env, check=True, capture_output=True)
    needle = CANARY.encode()
    overlap = len(needle)
    tail = b""
    scanned = 0
    with archive.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            assert needle not in tail + chunk, "a planted secret is in the image"
            tail = chunk[-overlap:]
            scanned += len(chunk)
    assert scanned > 50 << 20  # the whole image was read, not an empty archive


# -- boots --------------------------------------------------------------------------------


def test_slim_boots_in_local_mode_answers_one_job_and_boots_warm_as_a_non_root_user(
    podman_env: dict[str, str], image: str, volume: Path,
) -> None:
    """First boot builds the worker's environment on the host directory mounted as
    /runpod-volume and answers the test job; the second boot, as uid 1000, finds it there."""
    job = {"text": "hello from the container test"}
    env = {
        "BOOTSTRAP_MODE": "local",
        "BOOTSTRAP_HANDLER": "bootstrap.echo:make_handler",
        "BOOTSTRAP_TEST_INPUT": json.dumps(job),
        "BOOTSTRAP_SKIP": SKIP_MODEL_STAGES,
        # The slim image has no RunPod SDK: the environment on the volume brings it.
        "BOOTSTRAP_REQUIREMENTS_TEXT": "runpod>=1.10,<1.13",
    }
    first = boot(podman_env, image, env=env, volume=volume)
    assert (first.returncode, first.summary["status"]) == (0, "ok"), first.describe()
    assert first.named("boot.ready"), first.describe()
    # The RunPod SDK's own line with the handler's answer (the echo of the job's input).
    answers = [e for e in first.named("output") if "Job result" in e.get("line", "")]
    assert answers and repr(job) in answers[0]["line"], first.describe()
    reports = sorted((volume / ".bootstrap" / "reports").glob("*.json"))
    assert [json.loads(p.read_text())["outcome"] for p in reports] == ["ok"]
    print(f"first boot: {first.summary['total_ms']} ms {first.summary['stages']}")

    # What a platform that runs the container as a non-root user needs: a volume it owns.
    subprocess.run(["chown", "-R", "1000:1000", str(volume)], check=True)
    warm = boot(podman_env, image, env=env, volume=volume, user="1000:1000")
    assert (warm.returncode, warm.summary["status"]) == (0, "ok"), warm.describe()
    assert len(list((volume / ".bootstrap" / "reports").glob("*.json"))) == 2
    print(f"warm boot: {warm.summary['total_ms']} ms {warm.summary['stages']}")


def _f5_requirements() -> list[str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    return list(extras["f5"])


def _size_mb(path: Path) -> int:
    """Disk blocks under ``path``, hard links counted once (what ``du`` says)."""
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _wav(path: Path) -> tuple[int, int, bytes]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getframerate(), wav.readframes(wav.getnframes())


def test_slim_builds_the_f5_environment_offline_serves_the_tiny_model_then_boots_warm(
    podman_env: dict[str, str], image: str, wheelhouse: Path, volume: Path,
) -> None:
    """The seed's design end to end, with no network: the slim image's venv and install
    stages build torch and F5-TTS into an environment on the volume from a read-only
    wheelhouse, every worker stage runs (CPU: local mode allows it), and the F5-TTS handler
    answers one job with the tiny random model. The warm boot, with neither wheelhouse nor
    network, finds that environment and runs no installer."""
    subprocess.run([sys.executable, "-m", "f5worker.handler.tiny_model", str(volume)], cwd=REPO,
                   check=True, capture_output=True, timeout=300)
    settings = tiny_model.settings(Path("/runpod-volume"))
    env = {f"BOOTSTRAP_{key.upper()}": value for key, value in settings.items()}
    env |= {
        "BOOTSTRAP_MODE": "local",
        "BOOTSTRAP_REQUIREMENTS_TEXT": "\n".join(_f5_requirements()),
        "BOOTSTRAP_FIND_LINKS": "/wheelhouse",
        "BOOTSTRAP_NO_INDEX": "true",
        "BOOTSTRAP_TEST_INPUT": json.dumps({"text": "Hello from the slim image.",
                                            "voice": "default"}),
    }
    started = time.monotonic()
    cold = boot(podman_env, image, env=env, volume=volume, network="none",
                mounts=[f"{wheelhouse}:/wheelhouse:ro"], timeout=1500)
    cold_s = time.monotonic() - started
    assert (cold.returncode, cold.summary["status"]) == (0, "ok"), cold.describe()
    assert cold.named("boot.ready"), cold.describe()
    (venv,) = cold.named("stage", stage="venv", status="ok")
    (install,) = cold.named("stage", stage="install", status="ok")
    assert venv["facts"]["reused"] is False and install["facts"]["attempts"] == 1, \
        cold.describe()
    assert cold.named("install.output"), "the installer's lines are relayed"
    # torch came from the wheelhouse into the environment on the volume, not from the image.
    (marker,) = (volume / ".bootstrap" / "envs").glob("*/.bootstrap-env.json")
    assert not (marker.parent / installer.BUILD_CACHE).exists(), "uv's cache is not published"
    print(f"environment on the volume: {_size_mb(marker.parent)} MB")
    versions = json.loads(marker.read_text())["versions"]
    assert versions["torch"].startswith("2.9.1"), versions.get("torch")
    assert versions["f5-tts"] == "1.1.22", versions.get("f5-tts")
    # Resolved with the app's overrides, from a wheelhouse resolved with the same ones.
    assert versions["runpod"].startswith("1.12."), versions.get("runpod")
    assert "gradio" not in versions, "the app's overrides drop gradio"
    for stage in ("cuda", "audio", "model", "warmup", "serve"):
        ran = [e for e in cold.named("stage", stage=stage) if e.get("status") != "start"]
        assert ran and ran[-1]["status"] in ("ok", "warn"), (stage, ran, cold.describe())
    (done,) = cold.named("job.done")
    (written,) = sorted((volume / "outputs").glob("*.wav"))
    channels, rate, frames = _wav(written)
    assert (channels, rate) == (1, tiny_model.SAMPLE_RATE)
    samples = len(frames) // 2
    assert samples > 0 and any(frames), "the answer is a WAV with sound in it"
    assert abs(samples / rate - done["duration_s"]) < 0.01

    written.unlink()
    started = time.monotonic()
    warm = boot(podman_env, image, env=env, volume=volume, network="none", timeout=600)
    warm_s = time.monotonic() - started
    assert (warm.returncode, warm.summary["status"]) == (0, "ok"), warm.describe()
    assert warm.named("boot.ready"), warm.describe()
    for stage in ("venv", "install"):
        (reused,) = warm.named("stage", stage=stage, status="ok")
        assert reused["facts"]["reused"] is True, (stage, warm.describe())
    assert not warm.named("install.output"), "a warm boot runs no installer"
    assert warm.named("job.done") and list((volume / "outputs").glob("*.wav"))
    for name, result, wall in (("cold", cold, cold_s), ("warm", warm, warm_s)):
        print(f"{name} boot: ready after {result.named('boot.ready')[0]['ready_ms']} ms, "
              f"container {wall:.1f} s, stages {result.summary['stages']}")


@pytest.mark.parametrize("tini", [True, False], ids=["tini", "no-tini"])
def test_volume_mode_without_a_volume_fails_named_with_the_volume_code(
    podman_env: dict[str, str], image: str, tini: bool,
) -> None:
    result = boot(podman_env, image, env={"BOOTSTRAP_SKIP": SKIP_MODEL_STAGES}, tini=tini)
    assert_named_failure(result, stage="volume", code="volume.E001",
                         exit_code=ExitCode.VOLUME)


def test_a_read_only_volume_fails_named_with_the_volume_code(
    podman_env: dict[str, str], image: str, volume: Path,
) -> None:
    result = boot(podman_env, image, volume=volume, read_only=True,
                  env={"BOOTSTRAP_SKIP": SKIP_MODEL_STAGES})
    assert_named_failure(result, stage="volume", code="volume.E003", exit_code=ExitCode.VOLUME)


def test_a_non_root_user_that_cannot_write_the_volume_fails_named(
    podman_env: dict[str, str], image: str, volume: Path,
) -> None:
    volume.chmod(0o755)  # owned by root, as a network volume is
    result = boot(podman_env, image, volume=volume, user="1000:1000",
                  env={"BOOTSTRAP_SKIP": SKIP_MODEL_STAGES})
    assert_named_failure(result, stage="volume", code="volume.E004", exit_code=ExitCode.VOLUME)


def test_a_missing_python_is_named_by_the_entrypoint_through_tini_and_podman(
    podman_env: dict[str, str], image: str,
) -> None:
    result = boot(podman_env, image, env={"BOOTSTRAP_PYTHON": "python3.99"})
    assert_named_failure(result, stage="entrypoint", code="entrypoint.E001",
                         exit_code=ExitCode.PREFLIGHT)
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize("tini", [True, False], ids=["tini", "no-tini"])
def test_sigterm_mid_boot_ends_in_a_reported_clean_shutdown(
    podman_env: dict[str, str], image: str, volume: Path, tini: bool,
) -> None:
    """SIGTERM to the container while a worker stage is still running (a user stage that
    sleeps, standing in for a long model load): the supervisor stops the worker, saves the
    report, prints a `stopped` summary, and the container exits 128+15."""
    name = f"bootstrap-test-{uuid.uuid4().hex[:10]}"
    env = {"BOOTSTRAP_MODE": "local", "BOOTSTRAP_SKIP": SKIP_MODEL_STAGES,
           "BOOTSTRAP_EXTRA_STAGES": "slow_boot:slow_stage", "PYTHONPATH": "/fixtures"}
    argv = _run_argv(image, name, env=env, volume=volume, read_only=False, user=None,
                     tini=tini, mounts=[f"{FIXTURES}:/fixtures:ro"], args=[])
    proc = subprocess.Popen(argv, env=podman_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            event = _events(line)
            if event and event[0].get("stage") == "slow_stage" \
                    and event[0].get("status") == "start":
                break
        else:
            pytest.fail("the boot ended before the slow stage started:\n" + "".join(lines))
        subprocess.run(["podman", "kill", "--signal", "TERM", name], env=podman_env,
                       check=True, capture_output=True)
        rest, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["podman", "rm", "--force", "--ignore", name], env=podman_env,
                       capture_output=True)
    stdout = "".join(lines) + rest
    result = Boot(proc.returncode, stdout, stderr, _events(stdout))
    summary = result.summary
    assert (summary["status"], summary["cause"]) == ("stopped", "SIGTERM"), result.describe()
    assert summary["exit_code"] == ExitCode.SIGNAL_BASE + 15
    assert result.returncode == ExitCode.SIGNAL_BASE + 15, result.describe()
    assert not result.named("boot.ready")
    reports = list((volume / ".bootstrap" / "reports").glob("*.json"))
    assert [json.loads(p.read_text())["outcome"] for p in reports] == ["stopped"]


# -- RunPod's conventions on the baked image --------------------------------------------------

BAKED_IMAGE = "localhost/bootstrap-worker:test-baked"
RUNPOD_TESTS = REPO / ".runpod" / "tests.json"
# Where the tiny model is mounted, read-only: model files, not a network volume, and away
# from /runpod-volume, which stays absent as on an endpoint without one.
TINY = Path("/opt/tiny")


@pytest.fixture(scope="module")
def baked_image(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image the RunPod Hub builds (tests/image/hub.py): its Dockerfile, a copy of the
    checkout as the context, no build argument, no target. The stand-in base is tagged with
    the name the Dockerfile's BASE_IMAGE defaults to, so not even that is given. The first
    build downloads torch with its CUDA libraries (about 13 minutes, 9.6 GB); a later one
    reuses that layer and rebuilds only bootstrap's own (seconds)."""
    context = _checkout(tmp_path_factory.mktemp("hub"))
    base = hub.default_arg(hub.dockerfile(context), "BASE_IMAGE")
    subprocess.run(["podman", "tag", podman_env["BOOTSTRAP_TEST_BASE"], base], env=podman_env,
                   check=True, capture_output=True)
    started = time.monotonic()
    result = subprocess.run(hub.build_argv(context, BAKED_IMAGE), env=podman_env,
                            capture_output=True, text=True, timeout=1500)
    if result.returncode != 0:
        pytest.fail(f"the Hub's build failed ({result.returncode}):\n"
                    f"{(result.stdout + result.stderr)[-6000:]}")
    print(f"built {BAKED_IMAGE} in {time.monotonic() - started:.1f} s")
    return BAKED_IMAGE


@pytest.fixture(scope="module")
def baked_tiny_model(podman_env: dict[str, str], baked_image: str,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random F5-TTS model, built by the baked image's own torch and F5-TTS."""
    folder = tmp_path_factory.mktemp("tiny")
    subprocess.run(["podman", "run", "--rm", "--network=none", "--volume", f"{folder}:{TINY}",
                    "--entrypoint", "python3", baked_image, "-m", "f5worker.handler.tiny_model",
                    str(TINY)],
                   env=podman_env, check=True, capture_output=True, timeout=600)
    return folder


def _runpod_tests_env(port: int) -> dict[str, str]:
    """tests.json's own environment, plus what this machine needs and RunPod's does not:
    the tiny model instead of a download (no network, no GPU), the CPU allowed, and the
    SDK's local HTTP server standing in for RunPod's queue."""
    env = {e["key"]: e["value"] for e in json.loads(RUNPOD_TESTS.read_text())["config"]["env"]}
    tiny = tiny_model.settings(TINY)
    # The voice stays unset: "default" is the one the image provides (F5-TTS's own example
    # voice, put on the container disk by the model stage), not the tiny model's.
    del tiny["model_voices"]
    env |= {f"BOOTSTRAP_{key.upper()}": value for key, value in tiny.items()}
    env |= {"BOOTSTRAP_ALLOW_CPU": "true",
            "BOOTSTRAP_SERVE_ARGS": f"--rp_serve_api --rp_api_port {port}"}
    return env


def _runsync(port: int, job_input: dict[str, Any], timeout: float) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/runsync",
                                     data=json.dumps({"input": job_input}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def _serving(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the container exited {proc.returncode} before serving:\n"
                        f"{log.read_text()[-6000:]}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not serving after {timeout} s:\n{log.read_text()[-6000:]}")
        time.sleep(0.5)


def test_runpod_hub_tests_pass_against_the_baked_image_without_a_network_volume(
    podman_env: dict[str, str], baked_image: str, baked_tiny_model: Path, tmp_path: Path,
) -> None:
    """Every job of .runpod/tests.json, sent as the Hub sends it (one job per request) to the
    baked image booted by its own entrypoint with tests.json's environment and no volume
    mounted at /runpod-volume: each one answers 200 and COMPLETED within its timeout."""
    tests = json.loads(RUNPOD_TESTS.read_text())["tests"]
    port = _free_port()
    name = f"bootstrap-test-{uuid.uuid4().hex[:10]}"
    argv = _run_argv(baked_image, name, env=_runpod_tests_env(port), volume=None,
                     read_only=False, user=None, tini=True,
                     mounts=[f"{baked_tiny_model}:{TINY}:ro"], args=[])
    log, errors = tmp_path / "boot.log", tmp_path / "boot.err"
    answers: dict[str, Any] = {}
    with log.open("wb") as out, errors.open("wb") as err:
        proc = subprocess.Popen(argv, env=podman_env, stdout=out, stderr=err)
        try:
            _serving(proc, port, log, timeout=600)
            for test in tests:
                started = time.monotonic()
                status, answer = _runsync(port, test["input"], timeout=test["timeout"] / 1000)
                took_ms = (time.monotonic() - started) * 1000
                print(f"{test['name']}: {answer.get('status')} in {took_ms:.0f} ms")
                assert status == 200 and answer["status"] == "COMPLETED", (test["name"], answer)
                assert took_ms <= test["timeout"], (test["name"], took_ms)
                answers[test["name"]] = answer["output"]
            subprocess.run(["podman", "kill", "--signal", "TERM", name], env=podman_env,
                           check=True, capture_output=True)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            subprocess.run(["podman", "rm", "--force", "--ignore", name], env=podman_env,
                           capture_output=True)
    stdout = log.read_text()
    result = Boot(proc.returncode, stdout, errors.read_text(), _events(stdout))
    # No network volume: the volume stage says image mode needs none; nothing was mounted.
    assert any(e.get("code") == "volume.I001" for e in result.events), result.describe()
    (loaded,) = result.named("model.loaded")
    assert "default" in loaded["voices"], result.describe()
    assert result.named("boot.ready"), result.describe()
    assert (result.summary["status"], result.summary["cause"]) == ("stopped", "SIGTERM")
    # What each answer says, beyond COMPLETED: speech in the image's voice, and that voice
    # in the library.
    for test in tests:
        output = answers[test["name"]]
        if test["input"].get("action", "synthesize") == "synthesize":
            wav = base64.b64decode(output["audio"])
            assert wav[:4] == b"RIFF" and output["reference"] == {"voice": "default"}
        elif test["input"]["action"] == "list_voices":
            assert "default" in {v["name"] for v in output["voices"]}


# What the baked image's Python holds, asked of that Python.
STACK_PROBE = """
import importlib.util, json, runpod
print(json.dumps({"runpod": runpod.__version__,
                  "gradio": importlib.util.find_spec("gradio") is not None}))
"""


def test_the_hub_build_is_the_baked_variant_with_runpod_1_12_and_no_gradio(
    podman_env: dict[str, str], baked_image: str,
) -> None:
    """What the Hub builds is the baked image (its label and manifest say so), and its
    packages were resolved with image/overrides.txt: the RunPod SDK is 1.12.x, not the
    1.10.0 gradio's tomlkit pin held it at, and gradio is absent."""
    inspect = subprocess.run(["podman", "image", "inspect", baked_image], env=podman_env,
                             check=True, capture_output=True, text=True).stdout
    assert json.loads(inspect)[0]["Config"]["Labels"]["io.bootstrap.variant"] == "baked"
    manifest = subprocess.run(["podman", "run", "--rm", "--network=none", "--entrypoint", "cat",
                               baked_image, "/etc/bootstrap/image-manifest.txt"],
                              env=podman_env, capture_output=True, text=True, check=True)
    lines = manifest.stdout.splitlines()
    assert "# variant: baked" in lines and "# mode: image" in lines, lines[:12]
    probe = subprocess.run(["podman", "run", "--rm", "--network=none", "--entrypoint", "python3",
                            baked_image, "-c", STACK_PROBE],
                           env=podman_env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    stack = json.loads(probe.stdout.strip().splitlines()[-1])
    assert stack["runpod"].startswith("1.12."), stack
    assert stack["gradio"] is False, stack


def test_rp_handler_in_the_baked_image_boots_through_bootstrap(
    podman_env: dict[str, str], baked_image: str,
) -> None:
    """`python3 /opt/bootstrap/rp_handler.py --test_input JOB` in the image: the stages run
    (image mode, no volume), the SDK answers the job (the echo handler: no model), exit 0."""
    job = {"input": {"text": "from the image's rp_handler.py"}}
    result = subprocess.run(
        ["podman", "run", "--rm", "--network=none", "--env", "BOOTSTRAP_LOG_FORMAT=json",
         "--env", "BOOTSTRAP_HANDLER=bootstrap.echo:make_handler",
         "--env", f"BOOTSTRAP_SKIP={SKIP_MODEL_STAGES}", "--entrypoint", "python3",
         baked_image, "/opt/bootstrap/rp_handler.py", "--test_input", json.dumps(job)],
        env=podman_env, capture_output=True, text=True, timeout=300)
    boot_result = Boot(result.returncode, result.stdout, result.stderr, _events(result.stdout))
    assert (result.returncode, boot_result.summary["status"]) == (0, "ok"), \
        boot_result.describe()
    assert boot_result.named("boot.ready"), boot_result.describe()
    answers = [e for e in boot_result.named("output") if "Job result" in e.get("line", "")]
    assert answers and repr(job["input"]) in answers[0]["line"], boot_result.describe()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the slim image with its volume on the test bed (issue 14) -----------------------------


def test_slim_boots_from_a_slow_network_volume_through_a_local_copy(
    podman_env: dict[str, str], image: str, wheelhouse: Path, tmp_path: Path,
) -> None:
    """The slim image in volume mode with /runpod-volume on the test bed of
    tests/environment/slowfs.py (a FUSE mount with 1 ms per metadata operation and MooseFS's
    caching): the hydrate stage unpacks the environment's packed form, which the image's
    own build of it compressed with the image's zstd, onto the container's disk, and the
    worker runs from there and answers its job. The environment is built first by the same
    image on the same directory without the latency (one build, then boots)."""
    from tests.environment import slowfs

    backing = tmp_path / "backing"
    backing.mkdir()
    env = {
        "BOOTSTRAP_MODE": "volume",
        "BOOTSTRAP_ALLOW_CPU": "1",
        "BOOTSTRAP_HANDLER": "bootstrap.echo:make_handler",
        "BOOTSTRAP_TEST_INPUT": json.dumps({"text": "hello from the slow volume"}),
        "BOOTSTRAP_SKIP": SKIP_MODEL_STAGES,
        "BOOTSTRAP_REQUIREMENTS_TEXT": "runpod>=1.10,<1.13",
        "BOOTSTRAP_FIND_LINKS": "/wheelhouse",
        "BOOTSTRAP_NO_INDEX": "true",
        # a user stage that says which environment the worker runs from
        "BOOTSTRAP_EXTRA_STAGES": "stage_where:where",
        "PYTHONPATH": "/fixtures",
    }
    mounts = [f"{wheelhouse}:/wheelhouse:ro", f"{REPO / 'tests' / 'fixtures'}:/fixtures:ro"]
    try:
        built = boot(podman_env, image, env=env, volume=backing, network="none",
                     mounts=mounts, timeout=900)
        assert (built.returncode, built.summary["status"]) == (0, "ok"), built.describe()
        (marker,) = (backing / ".bootstrap" / "envs").glob("*/.bootstrap-env.json")
        key = marker.parent.name
        pack = json.loads(marker.read_text())["pack"]
        assert pack["file"].endswith(".zst"), f"the image packs with zstd: {pack}"
        (fast,) = built.named("stage", stage="hydrate", status="ok")
        assert fast["facts"]["from"] == "volume", "a local directory is a fast volume"

        with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=1.0, mb_s=500) as slow:
            slowfs.drop_caches()
            result = boot(podman_env, image, env=env, volume=slow, network="none",
                          mounts=mounts, timeout=900)
        assert (result.returncode, result.summary["status"]) == (0, "ok"), result.describe()
        assert result.named("boot.ready"), result.describe()
        (hydrated,) = result.named("stage", stage="hydrate", status="ok")
        facts = hydrated["facts"]
        assert (facts["from"], facts["reused"], facts["compressed"]) == ("local", False, True), \
            facts
        assert facts["lookup_ms"] >= 0.9, "the volume stage measured the test bed's latency"
        (where,) = result.named("stage", stage="where", status="ok")
        assert where["facts"]["prefix"] == f"/var/cache/bootstrap/envs/{key}", where
        answers = [e for e in result.named("output") if "Job result" in e.get("line", "")]
        assert answers and "hello from the slow volume" in answers[0]["line"], \
            result.describe()
        print(f"slow volume boot: ready after {result.named('boot.ready')[0]['ready_ms']} ms, "
              f"hydrate {facts}, stages {result.summary['stages']}")
    finally:
        shutil.rmtree(backing, ignore_errors=True)
