"""What the RunPod Hub builds from a checkout, written once for the tests that check it.

The Hub looks for its files "in either the `.runpod` or root directory" (RunPod's publishing
guide); repositories that keep a Dockerfile of their own beside the Hub's (axolotl, sglang,
unsloth) put the Hub's in `.runpod/` and copy `.runpod/...` paths in it, so the Hub takes
`.runpod/Dockerfile` first and builds with the repository's root as the context. It gives no
build argument and no target: the Dockerfile's last stage with every argument at its default.
"""

from __future__ import annotations

from pathlib import Path


def dockerfile(root: Path) -> Path:
    """The Dockerfile the Hub builds in the checkout at ``root``."""
    for candidate in (root / ".runpod" / "Dockerfile", root / "Dockerfile"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no Dockerfile in {root}/.runpod or {root}")


def default_arg(path: Path, name: str) -> str:
    """The default a Dockerfile gives a global build argument (``ARG NAME=value``)."""
    for line in path.read_text().splitlines():
        if line.startswith(f"ARG {name}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(f"{path} gives {name} no default")


def build_argv(root: Path, tag: str) -> list[str]:
    """``podman build`` as the Hub builds: the Hub's Dockerfile, the root as the context, no
    build argument, no target. Only podman's own options are added: no registry lookups (the
    base is local), the host's network, and every stage built, because buildah 1.28 skips a
    stage named by a build argument's default value (it follows only arguments given on the
    command line); the baked image uses every stage, so this builds nothing more."""
    return ["podman", "build", "--pull=never", "--network=host", "--skip-unused-stages=false",
            "--file", str(dockerfile(root)), "--tag", tag, str(root)]
