"""RunPod's own conventions: the Hub's ``.runpod/hub.json`` and ``.runpod/tests.json``, the
worker template's ``test_input.json``, and a handler file the SDK's tooling runs directly.

The JSON files are checked against the Hub publishing guide's reference (docs.runpod.io,
"Hub publishing guide": required fields, the value types, timeouts in milliseconds) and
against this worker: every ``BOOTSTRAP_*`` variable is a real setting whose values load,
the other variables are the names the code reads, and every job is one the handler's input
parser accepts. ``rp_handler.py`` is run for real: a local boot with the echo handler
answering a ``--test_input`` job, and the SDK's HTTP server on a free port. The same
``tests.json`` is run against the baked image in tests/image/test_container.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bootstrap import storage
from bootstrap.kernel import config, redaction
from bootstrap.runpod_platform import torch_cuda
from f5worker.handler import inputs
from f5worker.settings import F5Settings
from tests.boots import MODEL_STAGES, REPO, boot_env, kill_boot
from tests.image import hub

HUB = REPO / ".runpod" / "hub.json"
TESTS = REPO / ".runpod" / "tests.json"
TEST_INPUT = REPO / "test_input.json"
RP_HANDLER = REPO / "rp_handler.py"

# The Hub publishing guide's enumerations.
CATEGORIES = {"audio", "embedding", "language", "video", "image"}
INPUT_TYPES = {"string", "number", "boolean", "huggingface"}
# Variables the worker reads that are not bootstrap settings: the bucket (RunPod's own
# names, as rp_upload reads them) and the Hugging Face token.
OTHER_VARIABLES = {storage.ENDPOINT, storage.ACCESS_KEY, storage.SECRET_KEY, storage.BUCKET,
                   "HF_TOKEN"}
# torch 2.9's wheels are built against CUDA 12.8 (docs/deploy-runpod.md).
TORCH_CUDA = "12.8"
SDK_FLAGS = {"--rp_log_level", "--rp_debugger", "--rp_serve_api", "--rp_api_port",
             "--rp_api_concurrency", "--rp_api_host", "--test_input"}


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def check_cuda_versions(versions: Any) -> None:
    assert isinstance(versions, list) and versions
    found = torch_cuda()
    minimum = found[1] if found else TORCH_CUDA
    for item in versions:
        assert isinstance(item, str) and re.fullmatch(r"\d+\.\d+", item), item
        assert version(item) >= version(minimum), f"torch needs CUDA {minimum}+, not {item}"


# What the image sets for every endpoint (the Dockerfile's ENV): the F5-TTS app.
IMAGE_ENV = {"BOOTSTRAP_APP": "f5worker.app:APP"}


def check_settings(env: dict[str, str]) -> config.Config:
    """``env``'s ``BOOTSTRAP_*`` variables are settings bootstrap knows and can use, on top
    of what the image sets."""
    known = config.load(environ=IMAGE_ENV).config.settings()
    for key in env:
        if key.startswith("BOOTSTRAP_"):
            name = key.removeprefix("BOOTSTRAP_").lower()
            assert name in known, key
        else:
            assert key in OTHER_VARIABLES, f"{key} is read by nothing in this worker"
    return config.load(environ={**IMAGE_ENV, **env}).config


def check_job(job_input: Any) -> str:
    """The handler's own parser accepts ``job_input``; returns its action."""
    action = inputs.action(job_input)
    if action == "synthesize":
        request = inputs.parse(job_input, inputs.Limits())
        # The voice the baked image provides: the model stage copies F5-TTS's own example
        # voice as the warm-up voice when no other voice of that name is there.
        assert request.voice == F5Settings().warmup_voice == "default", request
    elif action == "list_voices":
        inputs.parse_list(job_input)
    elif action == "add_voice":
        inputs.parse_new_voice(job_input, inputs.Limits())
    else:
        inputs.parse_delete(job_input)
    return action


# -- hub.json -------------------------------------------------------------------------------


def test_hub_json_has_the_fields_the_hub_requires() -> None:
    hub = load(HUB)
    assert isinstance(hub["title"], str) and hub["title"].strip()
    assert isinstance(hub["description"], str) and hub["description"].strip()
    assert hub["type"] == "serverless"
    assert hub["category"] in CATEGORIES
    assert set(hub) <= {"title", "description", "type", "category", "iconUrl", "config"}
    cfg = hub["config"]
    assert cfg["runsOn"] == "GPU"  # F5-TTS on a CPU: minutes per request
    assert isinstance(cfg["containerDiskInGb"], int)
    # No network volume on the Hub's default: the baked image (9.6 GB) and the model (1.4 GB)
    # are on the container disk.
    assert cfg["containerDiskInGb"] >= 15
    assert isinstance(cfg["gpuCount"], int) and cfg["gpuCount"] >= 1
    assert isinstance(cfg["gpuIds"], str)
    pools = [p.strip() for p in cfg["gpuIds"].split(",")]
    assert pools and all(pools), cfg["gpuIds"]
    check_cuda_versions(cfg["allowedCudaVersions"])


def _inputs(hub: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for entry in hub["config"]["env"]:
        assert set(entry) in ({"key", "value"}, {"key", "input"}), entry
        assert entry["key"] not in out, f"{entry['key']} twice"
        out[entry["key"]] = entry.get("input", {"static": entry.get("value")})
    return out


def _values(spec: dict[str, Any]) -> list[Any]:
    """Every value the Hub can put into the variable for this input."""
    if "static" in spec:
        return [spec["static"]]
    if spec["type"] == "boolean":
        return [spec["trueValue"], spec["falseValue"]]
    values = [o["value"] for o in spec.get("options", [])]
    return values or ([spec["default"]] if "default" in spec else [])


def test_hub_json_env_inputs_are_well_formed() -> None:
    for key, spec in _inputs(load(HUB)).items():
        if "static" in spec:
            assert isinstance(spec["static"], str), key
            continue
        assert spec["type"] in INPUT_TYPES, key
        assert isinstance(spec["name"], str) and spec["name"], key
        assert isinstance(spec["description"], str) and spec["description"], key
        assert isinstance(spec.get("advanced", False), bool), key
        if "options" in spec:
            assert all(set(o) == {"label", "value"} for o in spec["options"]), key
            assert spec["default"] in [o["value"] for o in spec["options"]], key
        if spec["type"] == "boolean":
            assert isinstance(spec["default"], bool), key
            assert isinstance(spec["trueValue"], str) and isinstance(spec["falseValue"], str)
        if spec["type"] == "number":
            assert spec["min"] <= spec["default"] <= spec["max"], key


def test_hub_json_exposes_the_main_settings_and_every_value_loads() -> None:
    specs = _inputs(load(HUB))
    assert {"BOOTSTRAP_MODE", "BOOTSTRAP_TIMINGS", storage.ENDPOINT, storage.ACCESS_KEY,
            storage.SECRET_KEY} <= set(specs)
    assert {o["value"] for o in specs["BOOTSTRAP_MODE"]["options"]} == {"image", "volume"}
    for key, spec in specs.items():
        for value in _values(spec):
            loaded = check_settings({key: str(value)})
            if spec.get("type") == "boolean" and key.startswith("BOOTSTRAP_"):
                name = key.removeprefix("BOOTSTRAP_").lower()
                assert loaded.settings()[name] is (value == spec["trueValue"]), (key, value)
    # The defaults, all together, are a configuration that loads.
    check_settings({k: str(s["default"]) for k, s in specs.items() if "default" in s})


def test_hub_json_carries_no_secret_and_says_how_to_pass_one() -> None:
    """A secret's input has no default: the value is the user's, and belongs in a RunPod
    secret. (The Hub's format has no secret type; the description says what to enter.)"""
    specs = _inputs(load(HUB))
    secrets = [k for k in specs if re.search(r"SECRET|TOKEN", k)]
    assert set(secrets) == {storage.SECRET_KEY, "HF_TOKEN"}
    for key in secrets:
        assert redaction.looks_secret(key), f"{key} would not be redacted"
        assert "static" not in specs[key] and "default" not in specs[key], key
        assert "RUNPOD_SECRET_" in specs[key]["description"], key


def test_hub_json_presets_set_declared_variables_to_usable_values() -> None:
    hub = load(HUB)
    specs = _inputs(hub)
    presets = hub["config"]["presets"]
    assert presets
    for preset in presets:
        assert isinstance(preset["name"], str) and preset["name"]
        for key, value in preset["defaults"].items():
            assert key in specs, f"preset {preset['name']!r} sets undeclared {key}"
            assert value in _values(specs[key]), (preset["name"], key, value)
        check_settings({k: str(v) for k, v in preset["defaults"].items()})


# -- tests.json and test_input.json ---------------------------------------------------------


def test_tests_json_is_what_the_hub_runs() -> None:
    data = load(TESTS)
    assert set(data) == {"tests", "config"}
    tests = data["tests"]
    assert tests and len({t["name"] for t in tests}) == len(tests)
    for test in tests:
        assert set(test) <= {"name", "input", "timeout"}, test
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["input"], dict)
        # Milliseconds: a cold worker downloads the model before the first job (no volume),
        # and the platform stops any job after 600 s.
        assert isinstance(test["timeout"], int) and 10_000 <= test["timeout"] <= 600_000
    cfg = data["config"]
    assert isinstance(cfg["gpuTypeId"], str) and cfg["gpuTypeId"].startswith("NVIDIA ")
    assert isinstance(cfg["gpuCount"], int) and cfg["gpuCount"] >= 1
    check_cuda_versions(cfg["allowedCudaVersions"])
    env = cfg["env"]
    assert all(set(e) == {"key", "value"} and isinstance(e["value"], str) for e in env)


def test_tests_json_runs_the_baked_image_without_a_network_volume() -> None:
    env = {e["key"]: e["value"] for e in load(TESTS)["config"]["env"]}
    loaded = check_settings(env)
    # image mode: nothing to install and no volume needed (the volume stage says so, I001).
    assert loaded.mode == "image"
    assert not loaded.test_input and not loaded.serve_args, "the Hub sends the jobs"
    assert loaded.app == IMAGE_ENV["BOOTSTRAP_APP"] and not loaded.handler  # the app's own


def test_the_dockerfile_the_hub_builds_ends_in_the_baked_worker_with_no_argument_given() -> None:
    """The Hub gives no build argument and no target: the last stage, with every argument at
    its default, must be the baked image tests.json describes. One Dockerfile, so there is
    no second copy to drift (a `.runpod/Dockerfile` would be the one the Hub takes)."""
    dockerfile = hub.dockerfile(REPO)
    assert dockerfile == REPO / "Dockerfile"
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", dockerfile.read_text(), re.M)
    base, last = stages[-1]
    variant = hub.default_arg(dockerfile, "VARIANT")
    assert variant == "baked" and base == "${VARIANT}-deps", (base, variant)
    assert f"{variant}-deps" in [name for _, name in stages], stages
    assert [name for _, name in stages].count(last) == 1 and last == "worker"


def test_tests_json_jobs_are_inputs_the_handler_accepts() -> None:
    actions = [check_job(test["input"]) for test in load(TESTS)["tests"]]
    assert "synthesize" in actions


def test_test_input_json_is_a_job_the_handler_accepts() -> None:
    job = load(TEST_INPUT)
    assert set(job) == {"input"}, "the SDK reads a job: {'input': {...}}"
    assert check_job(job["input"]) == "synthesize"


def test_the_parser_refuses_what_these_checks_would_let_through() -> None:
    """The checks above use the handler's real parser: a bad job fails them."""
    with pytest.raises(inputs.InputError, match=r"^voice: "):
        check_job({"text": "hi"})
    with pytest.raises(inputs.InputError, match=r"^speed: "):
        check_job({"text": "hi", "voice": "default", "speed": "fast"})
    with pytest.raises(AssertionError):
        check_job({"text": "hi", "voice": "someone"})


# -- rp_handler.py ----------------------------------------------------------------------------


def rp_env(volume: Path, **settings: str) -> dict[str, str]:
    """A local boot of the echo handler (no model, no GPU) with the real serve stage."""
    settings = {"skip": ",".join(MODEL_STAGES), "handler": "bootstrap.echo:make_handler",
                **settings}
    env = boot_env(volume, **settings)
    # rp_handler.py finds this checkout's packages itself, from any working directory.
    env.pop("PYTHONPATH", None)
    env.pop("BOOTSTRAP_EXTRA_STAGES", None)
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)  # off the platform
    return env


def run_rp(args: list[str], env: dict[str, str], cwd: Path,
           script: Path = RP_HANDLER) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def job_results(evts: list[dict[str, Any]]) -> list[str]:
    return [e["line"] for e in evts if e["event"] == "output" and "Job result" in e["line"]]


def test_child_env_without_arguments_is_the_entrypoints_boot() -> None:
    """No flags: the same `bootstrap run` the container runs, with this checkout's packages
    first on the path."""
    sys.path.insert(0, str(REPO))
    try:
        import rp_handler
    finally:
        sys.path.remove(str(REPO))
    environ = {"BOOTSTRAP_MODE": "image", "BOOTSTRAP_TEST_INPUT": '{"text": "hi"}'}
    env = rp_handler.child_env([], environ, REPO)
    # The F5-TTS worker's handler file boots that app.
    assert env == {**environ, "BOOTSTRAP_APP": "f5worker.app:APP", "PYTHONPATH": str(REPO)}
    elsewhere = rp_handler.child_env(["--rp_serve_api"], environ, Path("/opt/bootstrap"))
    assert "PYTHONPATH" not in elsewhere  # an installed image: its packages, not a path
    # Appended to what the environment already asks of the SDK: the command line wins.
    env = rp_handler.child_env(["--rp_api_port", "9000", "--test_input", '{"input": {}}'],
                               {**environ, "BOOTSTRAP_SERVE_ARGS": "--rp_api_port 8000"}, REPO)
    assert env["BOOTSTRAP_SERVE_ARGS"] == (
        "--rp_api_port 8000 --rp_api_port 9000 --test_input '{\"input\": {}}'")
    assert env["BOOTSTRAP_TEST_INPUT"] == ""
    assert {a.option_strings[0] for a in rp_handler.parser()._actions[1:]} == SDK_FLAGS


def test_the_sdk_flags_are_the_ones_the_installed_sdk_parses() -> None:
    """rp_handler.py checks flags without importing the SDK (the slim image's Python has no
    runpod); its list must match what runpod.serverless really parses."""
    serverless = pytest.importorskip("runpod.serverless")
    real = {s for a in serverless.parser._actions for s in a.option_strings if s != "-h"}
    assert real - {"--help"} == SDK_FLAGS


def test_test_input_boots_through_bootstrap_and_answers_the_job(
    volume: Path, tmp_path: Path,
) -> None:
    """`python rp_handler.py --test_input JOB`, from another directory, with a different
    BOOTSTRAP_TEST_INPUT in the environment: the whole boot runs, the SDK answers the
    command line's job, and the boot is reported like any other."""
    job = {"input": {"text": "from rp_handler", "voice": "default"}, "id": "rp-1"}
    env = rp_env(volume, test_input=json.dumps({"text": "from the environment"}))
    result = run_rp(["--test_input", json.dumps(job)], env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    evts = events(result.stdout)
    assert evts[-1]["event"] == "summary" and evts[-1]["status"] == "ok", evts[-1]
    assert list(evts[-1]["stages"])[:2] == ["preflight", "volume"]
    assert "serve" in evts[-1]["stages"]
    (answer,) = job_results(evts)
    assert repr(job["input"]) in answer and "from the environment" not in answer
    assert any("Job rp-1 completed" in e.get("line", "") for e in evts)
    reports = list((volume / ".bootstrap" / "reports").glob("*.json"))
    assert [json.loads(p.read_text())["outcome"] for p in reports] == ["ok"]


def test_without_flags_the_sdk_answers_test_input_json(volume: Path, tmp_path: Path) -> None:
    """The handler-file convention off the platform: `python rp_handler.py` in a directory
    with test_input.json boots, answers that job, and exits. Run through the Hub's
    .runpod/handler.py name, which is this same file."""
    shutil.copy(TEST_INPUT, tmp_path / "test_input.json")
    hub_handler = REPO / ".runpod" / "handler.py"
    assert hub_handler.resolve() == RP_HANDLER.resolve()
    result = run_rp([], rp_env(volume), cwd=tmp_path, script=hub_handler)
    assert result.returncode == 0, result.stdout + result.stderr
    (answer,) = job_results(events(result.stdout))
    assert repr(load(TEST_INPUT)["input"]) in answer


def test_a_failed_boot_is_still_named_by_bootstrap(volume: Path, tmp_path: Path) -> None:
    env = rp_env(volume, handler="no_such_module:make_handler")
    result = run_rp(["--test_input", json.dumps({"input": {"text": "hi"}})], env, cwd=tmp_path)
    last = events(result.stdout)[-1]
    assert (last["event"], last["stage"], last["code"]) == ("summary", "serve", "serve.E001")
    assert result.returncode == last["exit_code"] == 18


@pytest.mark.parametrize(("args", "says"), [
    (["--rp_serve-api"], "unrecognized arguments: --rp_serve-api"),
    (["--test_input", "{not json"], "--test_input is not JSON"),
    (["--test_input", '{"text": "hi"}'], '--test_input is a job: {"input": {...}}'),
    (["--rp_api_port", "eighty"], "invalid int value"),
])
def test_a_bad_command_line_is_a_usage_error_before_any_boot(
    volume: Path, tmp_path: Path, args: list[str], says: str,
) -> None:
    result = run_rp(args, rp_env(volume), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert says in result.stderr and result.stdout == ""
    assert not (volume / ".bootstrap").exists(), "nothing booted"


def test_a_python_too_old_is_named_like_the_entrypoint_names_it(tmp_path: Path) -> None:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import rp_handler; "
            "rp_handler.MIN_PYTHON = (99, 0); rp_handler.main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 10
    (line,) = result.stdout.splitlines()
    event = json.loads(line)
    assert (event["event"], event["status"], event["code"]) == (
        "summary", "fail", "entrypoint.E002")
    assert event["exit_code"] == 10 and "too old" in event["msg"] and event["hint"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runsync(port: int, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/runsync",
                                     data=json.dumps(job).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_rp_serve_api_serves_the_sdks_http_api_after_the_boot(
    volume: Path, tmp_path: Path,
) -> None:
    """`--rp_serve_api --rp_api_port N`: the SDK's local server answers /runsync once the
    boot is ready; SIGTERM then ends the boot in a reported stop."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(RP_HANDLER), "--rp_serve_api", "--rp_api_port", str(port)],
        env=rp_env(volume), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "not serving after 60 s"
                time.sleep(0.2)
        answer = runsync(port, {"input": {"text": "over HTTP"}}, timeout=30)
        assert answer["status"] == "COMPLETED", answer
        assert answer["output"]["echo"] == {"text": "over HTTP"}
        os.kill(proc.pid, signal.SIGTERM)  # the supervisor: rp_handler.py exec'd it
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_boot(proc)
    evts = events(stdout)
    ready = [e for e in evts if e["event"] == "boot.ready"]
    assert ready, stdout[-3000:]
    assert evts[-1]["event"] == "summary" and evts[-1]["cause"] == "SIGTERM", evts[-1]
    assert proc.returncode == evts[-1]["exit_code"] == 128 + signal.SIGTERM
