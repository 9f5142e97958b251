"""Print the requirements the image installs, from pyproject.toml: the light dependencies,
plus the named extras (the baked variant's heavy stack).

    python3 image/requirements.py pyproject.toml [EXTRA ...]

Why not `pip install .[extra]`: the Dockerfile installs dependencies in a layer of their own,
keyed by this text alone, so editing bootstrap's code never reinstalls torch.
"""

from __future__ import annotations

import sys
import tomllib


def main() -> None:
    path, *extras = sys.argv[1:]
    with open(path, "rb") as fh:
        project = tomllib.load(fh)["project"]
    lines = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            sys.exit(f"requirements: {path} has no extra {extra!r} "
                     f"(it has: {', '.join(sorted(optional)) or 'none'})")
        lines += optional[extra]
    print("\n".join(dict.fromkeys(lines)))


if __name__ == "__main__":
    main()
