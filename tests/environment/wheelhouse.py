"""A local wheelhouse, so install tests and benchmarks need no network.

Holds small packages of our own making (written as wheels directly: a wheel is a zip with
a dist-info directory), a source distribution whose in-tree build backend sleeps (a build
slow enough to SIGKILL mid-install, with no build dependency to download), a large wheel of
incompressible bytes (to fill a small disk), and bootstrap's own runtime dependencies
repacked from the distributions installed in this interpreter. The RunPod SDK and its
dependencies, repacked the same way, are a wheelhouse of their own (``build_sdk``), built
only for the boots that serve.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

OWN_DEPS = ("click", "psutil", "structlog")
BIG_MB = 24


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(out: Path, name: str, version: str, files: dict[str, bytes],
                requires: tuple[str, ...] = (), tag: str = "py3-none-any",
                purelib: bool = True) -> Path:
    dist_info = f"{name}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {r}\n" for r in requires)])
    wheel = (f"Wheel-Version: 1.0\nGenerator: bootstrap-tests\n"
             f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n")
    members = {**files, f"{dist_info}/METADATA": metadata.encode(),
               f"{dist_info}/WHEEL": wheel.encode()}
    return _zip(out / f"{name}-{version}-{tag}.whl", members, dist_info)


def _zip(path: Path, members: dict[str, bytes], dist_info: str) -> Path:
    """Write a wheel: the members, then a RECORD that lists them with their hashes."""
    record = [_record_line(n, d) for n, d in members.items()] + [f"{dist_info}/RECORD,,"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def repack_installed(out: Path, dist_name: str) -> Path:
    """A wheel of an installed distribution, from its files as installed here."""
    dist = importlib.metadata.distribution(dist_name)
    name = dist.metadata["Name"].replace("-", "_")
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    root = Path(str(dist.locate_file("")))
    skip = ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json")
    files = {}
    for entry in dist.files or []:
        rel = str(entry)
        if rel.startswith("..") or rel.endswith(".pyc") or rel.rsplit("/", 1)[-1] in skip:
            continue
        files[rel] = (root / rel).read_bytes()
    dist_info = next(f for f in files if f.endswith(".dist-info/METADATA")).split("/")[0]
    tag = _compressed(tags) if tags else "py3-none-any"
    return _zip(out / f"{name}-{dist.version}-{tag}.whl", files, dist_info)


def _compressed(tags: list[str]) -> str:
    """The file name's tag for a wheel whose WHEEL lists ``tags`` (``py2-none-any`` and
    ``py3-none-any`` are ``py2.py3-none-any``): installers match the name, not WHEEL."""
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


SLOW_BACKEND = """
import os, time, zipfile

META = "Metadata-Version: 2.1\\nName: bsdemo-slow\\nVersion: 1.0\\n"
WHEEL = "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
INFO = "bsdemo_slow-1.0.dist-info"

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, INFO))
    with open(os.path.join(directory, INFO, "METADATA"), "w") as f:
        f.write(META)
    return INFO

def build_wheel(directory, config_settings=None, metadata_directory=None):
    # a build slow enough to be killed in the middle of; says when it has started
    open(os.environ.get("BSDEMO_SLOW_STARTED", os.devnull), "w").close()
    time.sleep(float(os.environ.get("BSDEMO_SLOW_SLEEP", "0")))
    name = "bsdemo_slow-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        zf.writestr("bsdemo_slow/__init__.py", "VALUE = 1\\n")
        zf.writestr(INFO + "/METADATA", META)
        zf.writestr(INFO + "/WHEEL", WHEEL)
        zf.writestr(INFO + "/RECORD", "")
    return name
"""


def write_slow_sdist(out: Path) -> Path:
    base = "bsdemo_slow-1.0"
    members = {
        f"{base}/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "slowbackend"\n'
            'backend-path = ["."]\n[project]\nname = "bsdemo-slow"\nversion = "1.0"\n'),
        f"{base}/slowbackend.py": SLOW_BACKEND,
        f"{base}/PKG-INFO": "Metadata-Version: 2.1\nName: bsdemo-slow\nVersion: 1.0\n",
    }
    path = out / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def build(out: Path) -> Path:
    """Write the wheelhouse into ``out`` (created) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    for dep in OWN_DEPS:
        repack_installed(out, dep)
    write_wheel(out, "bsdemo_b", "1.0", {"bsdemo_b/__init__.py": b"VERSION = '1.0'\n"})
    write_wheel(out, "bsdemo_b", "2.0", {"bsdemo_b/__init__.py": b"VERSION = '2.0'\n"})
    write_wheel(out, "bsdemo_a", "1.0", {"bsdemo_a/__init__.py": b"import bsdemo_b\n"},
                requires=("bsdemo-b>=1.0",))
    # many small modules: an install with real work in it, for the benchmarks
    write_wheel(out, "bsdemo_many", "1.0", {
        f"bsdemo_many/m{i:04d}.py": f"X = {i}\n".encode() * 20 for i in range(1500)})
    # a package asking for one that is in no wheelhouse: installable only with an override
    write_wheel(out, "bsdemo_ui", "1.0", {"bsdemo_ui/__init__.py": b""},
                requires=("bsdemo-gone>=1.0",))
    write_wheel(out, "bsdemo_broken", "1.0",
                {"bsdemo_broken/__init__.py": b"raise ImportError('bsdemo_broken is broken')\n"})
    write_wheel(out, "bsdemo_big", "1.0", {
        "bsdemo_big/__init__.py": b"",
        "bsdemo_big/blob.bin": os.urandom(BIG_MB << 20)}, )
    write_slow_sdist(out)
    return out


def installed_closure(root: str) -> list[str]:
    """``root`` and every distribution it needs on this interpreter (with the extras its
    dependents ask for), by the metadata of what is installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(root, "")]
    while todo:
        name, extra = todo.pop()
        if (canonicalize_name(name), extra) in seen:
            continue
        seen.add((canonicalize_name(name), extra))
        found[canonicalize_name(name)] = name
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, wanted) for wanted in ("", *requirement.extras)]
    return sorted(found.values())


def build_sdk(out: Path) -> Path:
    """The RunPod SDK and its dependencies (what the serve stage adds to an environment:
    environment/requirements.py), repacked from this interpreter: about 50 wheels, 33 MB."""
    out.mkdir(parents=True, exist_ok=True)
    for name in installed_closure("runpod"):
        repack_installed(out, name)
    return out


def cached(out: Path, build: Callable[[Path], Path] = build) -> Path:
    """``build(out)`` unless a complete build is already there (one per test session)."""
    done = out / ".complete"
    if not done.exists():
        build(out)
        done.touch()
    return out
