"""The scripts the Dockerfile runs during the build: the requirement lists and the image
manifest the volume stage reads."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST_ARGS = ["--variant", "slim", "--mode", "volume", "--version", "1.2.3",
                 "--revision", "abc", "--base-image", "debian:bookworm-slim"]


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO,
                          env=env)


def test_requirements_are_the_dependencies_then_the_extras() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    result = run("image/requirements.py", "pyproject.toml", "serve")
    assert result.returncode == 0, result.stderr
    expected = list(dict.fromkeys(project["dependencies"]
                                  + project["optional-dependencies"]["serve"]))
    assert result.stdout.splitlines() == expected


def test_an_unknown_extra_stops_the_build_and_names_the_known_ones() -> None:
    result = run("image/requirements.py", "pyproject.toml", "no-such-extra")
    assert result.returncode != 0
    assert "no extra 'no-such-extra'" in result.stderr
    assert "serve" in result.stderr


def test_manifest_lists_packages_namespace_packages_and_programs(tmp_path: Path) -> None:
    (tmp_path / "nspkg" / "inner").mkdir(parents=True)  # no __init__.py: a namespace package
    out = tmp_path / "manifest.txt"
    result = run("image/manifest.py", str(out), *MANIFEST_ARGS, "--module", "bootstrap",
                 "--module", "nspkg", "--exe", "sh", "--path", str(tmp_path),
                 env={"PYTHONPATH": f"{REPO}:{tmp_path}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert "# variant: slim" in lines and "# revision: abc" in lines
    paths = [line for line in lines if not line.startswith("#")]
    assert paths[:2] == [str(REPO / "bootstrap"), str(tmp_path / "nspkg")]
    assert Path(paths[2]).name == "sh"
    assert paths[3] == str(tmp_path)
    assert all(Path(p).is_absolute() and Path(p).exists() for p in paths)


def test_manifest_refuses_a_path_the_image_does_not_have(tmp_path: Path) -> None:
    out = tmp_path / "manifest.txt"
    result = run("image/manifest.py", str(out), *MANIFEST_ARGS, "--path", "/no/such/path")
    assert result.returncode != 0
    assert "/no/such/path does not exist" in result.stderr
    assert not out.exists()
