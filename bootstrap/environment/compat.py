"""Known-bad version combinations among the packages a GPU worker leans on (FAILURES.md 14, 8).

torchaudio is released in lockstep with torch: another minor version fails at import or,
worse, at the first decode. torchaudio >= 2.9 decodes through torchcodec, which is built
against one torch minor each release.
"""

from __future__ import annotations

# torchcodec minor -> the torch minor it is built for (its README's table, as of 0.9)
TORCHCODEC_TORCH = {
    "0.1": "2.5", "0.2": "2.6", "0.3": "2.7", "0.4": "2.7", "0.5": "2.7", "0.6": "2.8",
    "0.7": "2.8", "0.8": "2.9", "0.9": "2.9",
}


def minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def problems(versions: dict[str, str]) -> list[str]:
    """One line per known-bad pair found in ``versions`` (canonical name -> version)."""
    out: list[str] = []
    torch = versions.get("torch")
    if torch is None:
        return out
    audio = versions.get("torchaudio")
    if audio is not None and minor(audio) != minor(torch):
        out.append(f"torchaudio {audio} is built for torch {minor(audio)}, found torch {torch}")
    codec = versions.get("torchcodec")
    if codec is not None and TORCHCODEC_TORCH.get(minor(codec), minor(torch)) != minor(torch):
        out.append(f"torchcodec {codec} is built for torch {TORCHCODEC_TORCH[minor(codec)]}, "
                   f"found torch {torch}")
    return out
