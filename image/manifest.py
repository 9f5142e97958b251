"""Write the image manifest: the paths this image provides, one absolute path per line.

    python3 image/manifest.py OUT --variant slim --mode volume --version V --revision R \
        --base-image B --module bootstrap --exe tini --path /usr/local/bin/entrypoint.sh

The volume stage reads it (``/etc/bootstrap/image-manifest.txt``, the ``image_manifest``
setting) to tell when a mount hides something the image put there: every listed path exists
when the image is built (this script refuses to list one that does not), so a listed path
missing at boot was hidden by a mount or removed. Lines starting with ``#`` describe the
image (variant, version, revision, base, Python) for people and reports; readers skip every
line that does not start with ``/``.

Only the standard library: it runs during the build, in the image's own Python.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path

SCHEMA = 1


def _checked(path: Path, what: str) -> Path:
    if not path.exists():
        sys.exit(f"manifest: {what} -> {path} does not exist in the image")
    return path


def _module(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"manifest: module {name} is not importable by {sys.executable}")
    if spec.submodule_search_locations:
        # A package is its directory (a namespace package, like f5_tts, has no __init__.py).
        return _checked(Path(next(iter(spec.submodule_search_locations))), name)
    if spec.origin is None:
        sys.exit(f"manifest: module {name} has no file to list")
    return _checked(Path(spec.origin), name)


def _exe(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        sys.exit(f"manifest: executable {name} is not on PATH")
    return _checked(Path(found), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    for name in ("variant", "mode", "version", "revision", "base-image"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--module", action="append", default=[])
    parser.add_argument("--exe", action="append", default=[])
    parser.add_argument("--path", action="append", default=[])
    args = parser.parse_args()
    paths = ([_module(m) for m in args.module] + [_exe(e) for e in args.exe]
             + [_checked(Path(p), p) for p in args.path])
    header = [
        f"# bootstrap image manifest, schema {SCHEMA}: paths this image provides",
        f"# variant: {args.variant}",
        f"# mode: {args.mode}",
        f"# version: {args.version}",
        f"# revision: {args.revision}",
        f"# base_image: {args.base_image}",
        f"# python: {os.path.realpath(sys.executable)} {platform.python_version()}",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + [str(p) for p in dict.fromkeys(paths)]) + "\n")


if __name__ == "__main__":
    main()
