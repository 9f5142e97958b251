"""Reading what a checkpoint holds without loading it: tensor names and shapes.

A safetensors file starts with a JSON header giving each tensor's shape and byte range,
so a truncated file (an interrupted copy) and a checkpoint for another architecture or
vocab are found in milliseconds, before any torch import. ``.pt`` files need torch;
they are memory-mapped, not read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

# Keys F5-TTS drops or ignores when loading (training counters, recomputed buffers).
IGNORED = ("initted", "step", "mel_spec.mel_stft.mel_scale.fb",
           "mel_spec.mel_stft.spectrogram.window")
TEXT_EMBED = "transformer.text_embed.text_embed.weight"


class CheckpointError(Exception):
    """The file is not a usable checkpoint; the message says how (truncated, not one)."""


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{size} bytes: too short for a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, 100 << 20):
            raise CheckpointError(f"header claims {length} bytes, the file has {size}")
        try:
            header = json.loads(handle.read(length))
        except ValueError as exc:
            raise CheckpointError(f"header is not JSON ({exc})") from None
    end, shapes = 0, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        end = max(end, int(entry["data_offsets"][1]))
        shapes[name] = tuple(int(d) for d in entry["shape"])
    need = 8 + length + end
    if size < need:
        raise CheckpointError(f"truncated: {size} of {need} bytes")
    return shapes


def _torch_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises RuntimeError, pickle errors, EOFError...
        raise CheckpointError(f"torch.load failed: {type(exc).__name__}: {exc}") from None
    if isinstance(data, dict) and "ema_model_state_dict" in data:
        data = data["ema_model_state_dict"]
    elif isinstance(data, dict) and "model_state_dict" in data:
        data = data["model_state_dict"]
    return {k: tuple(v.shape) for k, v in data.items() if hasattr(v, "shape")}


def shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes by model key (``ema_model.`` stripped, ignored keys dropped)."""
    raw = _safetensors_shapes(path) if path.suffix == ".safetensors" else _torch_shapes(path)
    out = {}
    for key, shape in raw.items():
        key = key.removeprefix("ema_model.")
        if key not in IGNORED:
            out[key] = shape
    if not out:
        raise CheckpointError("holds no tensors")
    return out


def vocab_size(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """The vocab size the checkpoint was trained with (its text embedding has one more
    row, for the filler token); None when the key is absent (another architecture)."""
    shape = shapes.get(TEXT_EMBED)
    return shape[0] - 1 if shape else None


def mismatch(found: dict[str, tuple[int, ...]],
             expected: dict[str, tuple[int, ...]]) -> str | None:
    """The first difference between a checkpoint and a model, in words; None if they fit."""
    for key, shape in expected.items():
        if key not in found:
            return f"{key} is missing"
        if found[key] != shape:
            return f"{key} is {list(found[key])}, expected {list(shape)}"
    extra = sorted(set(found) - set(expected))
    return f"{extra[0]} is not in the model" if extra else None
