"""Write the image manifest: what this image provides, and where.

    python3 image/manifest.py OUT --variant slim --mode volume --version V --revision R \
        --base-image B --module bootstrap --exe tini --path /usr/local/bin/entrypoint.sh

The volume stage reads it (``/etc/bootstrap/image-manifest.json``) to tell when a mount hides
something the image put there: every listed path exists when the image is built (this script
refuses to write a path that does not), so a listed path missing at boot was hidden or removed.
Only the standard library: it runs during the build, before anything else is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
from pathlib import Path

SCHEMA = 1


def _entry(path: Path, what: str) -> dict[str, str]:
    if not path.exists():
        sys.exit(f"manifest: {what} -> {path} does not exist in the image")
    return {"path": str(path), "kind": "dir" if path.is_dir() else "file", "what": what}


def _module(name: str) -> dict[str, str]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(f"manifest: module {name} is not importable by {sys.executable}")
    origin = Path(spec.origin)
    # A package is its directory; a single-file module is the file.
    path = origin.parent if origin.name == "__init__.py" else origin
    return _entry(path, f"python module {name}")


def _exe(name: str) -> dict[str, str]:
    found = shutil.which(name)
    if found is None:
        sys.exit(f"manifest: executable {name} is not on PATH")
    return _entry(Path(found), f"executable {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    for name in ("variant", "mode", "version", "revision", "base_image"):
        parser.add_argument(f"--{name.replace('_', '-')}", required=True)
    parser.add_argument("--module", action="append", default=[])
    parser.add_argument("--exe", action="append", default=[])
    parser.add_argument("--path", action="append", default=[])
    args = parser.parse_args()
    paths = ([_module(m) for m in args.module] + [_exe(e) for e in args.exe]
             + [_entry(Path(p), "path") for p in args.path])
    manifest = {
        "schema": SCHEMA,
        "variant": args.variant,
        "mode": args.mode,
        "version": args.version,
        "revision": args.revision,
        "base_image": args.base_image,
        "python": {"executable": os.path.realpath(sys.executable),
                   "version": platform.python_version()},
        "paths": paths,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
