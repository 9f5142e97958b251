"""The warm F5-TTS model: its architecture, loading it, and one synthesis.

The model stage loads it into ``F5State.model`` (``f5worker/state.py``); the warm-up and
the handler call :meth:`F5Model.synthesize`. F5-TTS is driven through its own
``utils_infer`` functions with every input explicit: the device (its default silently
falls back to the CPU), local vocoder files (else it downloads Vocos), a reference text
(else it downloads Whisper).
Its reference-audio preprocessing is not used: it clips audio past ~12 s while keeping
the whole text, and leaves a temp file per reference; the handler decides instead. Nor is
its loader: the reference arrives decoded at the model's rate (``f5worker.refclip``).

A synthesis is planned before it runs (:func:`plan`): F5-TTS's own text chunking for this
text with this reference, and the samples each chunk will make. A caller can refuse a plan
whose audio is too long before any compute, and stop between chunks (``between``), which
``infer_process`` allows neither of: it submits every chunk to a thread pool at once. The
chunks are cross-faded as F5-TTS does, in one pass instead of one copy per chunk.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[int, int], None]  # (chunks done, chunks in all)
CROSS_FADE_S = 0.15  # F5-TTS's cross_fade_duration between chunks
# The model's text embedding holds 8,192 positions (F5-TTS's TextEmbedding with ConvNeXt
# blocks, every shipped architecture): a chunk's reference and generated mel frames
# together must fit, else the model fails inside its forward pass.
MAX_FRAMES = 8192
CONTEXT_S = 22.0  # F5-TTS's chunk rule: reference plus chunk within the 22 s it trained on


def package_dir() -> Path | None:
    """Where ``f5_tts`` is installed, found without importing it (an import is seconds)."""
    spec = importlib.util.find_spec("f5_tts")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Arch:
    name: str
    backbone: str
    arch: dict[str, Any]
    mel: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return int(self.mel.get("target_sample_rate", 24000))

    @property
    def mel_spec_type(self) -> str:
        return str(self.mel.get("mel_spec_type", "vocos"))


def arch_file(spec: str) -> Path | None:
    """The yaml for ``spec``: a path, or a config name shipped with f5_tts."""
    if spec.endswith((".yaml", ".yml")):
        return Path(spec)
    root = package_dir()
    return root / "configs" / f"{spec}.yaml" if root else None


def read_arch(path: Path) -> Arch:
    import yaml  # PyYAML comes with f5-tts (through omegaconf)

    model = yaml.safe_load(path.read_text())["model"]
    return Arch(str(model.get("name", path.stem)), str(model["backbone"]),
                dict(model["arch"]), dict(model["mel_spec"]))


def read_vocab(path: Path) -> list[str]:
    """Tokens, one per line, as F5-TTS reads them (every line ends in a newline)."""
    return [line[:-1] for line in path.read_text(encoding="utf-8").splitlines(keepends=True)]


def ref_text_for_model(text: str) -> str:
    """The reference text ending the way F5-TTS's own preprocessing leaves it."""
    text = text.strip()
    if text.endswith((". ", "。")):
        return text
    return text + " " if text.endswith(".") else text + ". "


def expected_samples(ref_samples: int, ref_text: str, text: str, speed: float = 1.0,
                     hop: int = 256) -> int:
    """How many samples F5-TTS makes for ``text`` in one chunk (its own duration rule:
    frames in proportion to UTF-8 length against the reference; Vocos turns N frames into
    N - 1 hops). Long texts are chunked and cross-faded, so this is an estimate for them."""
    ref_frames = ref_samples // hop
    ref_text = ref_text_for_model(ref_text)
    ref_text += " " if len(ref_text[-1].encode()) == 1 else ""
    gen = len(text.encode())
    local_speed = 0.3 if gen < 10 else speed  # F5-TTS slows very short texts down
    frames = int(ref_frames / len(ref_text.encode()) * gen / local_speed)
    return max(frames - 1, 0) * hop


@dataclass(frozen=True)
class Plan:
    """The chunks F5-TTS will speak ``text`` in, and the samples each will make."""

    chunks: tuple[str, ...]
    samples: tuple[int, ...]
    rate: int

    @property
    def seconds(self) -> float:
        """The audio the whole plan makes (the cross-fades overlap chunks; ignored here, so
        this is an upper bound by 0.15 s a chunk)."""
        return sum(self.samples) / self.rate


def plan(ref_samples: int, ref_text: str, text: str, speed: float, rate: int,
         hop: int = 256, max_chars: int | None = None) -> Plan:
    """F5-TTS's chunking of ``text`` (``infer_process``'s own rule: chunk bytes in
    proportion to the reference text's bytes per second of reference, over the 22 s the
    model's context holds) and each chunk's length (:func:`expected_samples`).

    F5-TTS splits only after sentence punctuation, so a text without any was one chunk of
    any length (1,300 characters overflowed the text embedding). Here a chunk over the
    bound is split again at spaces, and a word over it at characters: no chunk is longer
    than ``max_chars`` bytes (by default the 22 s rule's; a caller passes a smaller one
    derived from its deadline)."""
    from f5_tts.infer.utils_infer import chunk_text

    ref_text = ref_text_for_model(ref_text)
    ref_s = ref_samples / rate
    context = int(len(ref_text.encode()) / ref_s * (CONTEXT_S - ref_s) * speed)
    bound = max(1, min(context, max_chars) if max_chars is not None else context)
    chunks = tuple(piece for chunk in chunk_text(text, max_chars=bound)
                   for piece in split_at_words(chunk, bound))
    return Plan(chunks, tuple(expected_samples(ref_samples, ref_text, chunk, speed, hop)
                              for chunk in chunks), rate)


# F5-TTS's socket server cuts its first batch to a quarter of the chunk bound (its
# ``min_chars``): the first audio of a stream comes after that much text, not a whole chunk.
FIRST_SHARE = 4


def short_first(p: Plan, ref_samples: int, ref_text: str, speed: float,
                hop: int = 256) -> Plan:
    """``p`` with its first chunk cut again, as F5-TTS's socket server cuts it, at a
    quarter of the bound the 22 s rule gives (sentence ends first, then words)."""
    from f5_tts.infer.utils_infer import chunk_text

    if not p.chunks:
        return p
    ref_text = ref_text_for_model(ref_text)
    ref_s = ref_samples / p.rate
    bound = max(1, int(len(ref_text.encode()) / ref_s * (CONTEXT_S - ref_s) * speed
                       / FIRST_SHARE))
    first = tuple(piece for chunk in chunk_text(p.chunks[0], max_chars=bound)
                  for piece in split_at_words(chunk, bound))
    chunks = first + p.chunks[1:]
    samples = tuple(expected_samples(ref_samples, ref_text, chunk, speed, hop)
                    for chunk in first) + p.samples[1:]
    return Plan(chunks, samples, p.rate)


def split_at_words(chunk: str, max_bytes: int) -> list[str]:
    """``chunk`` in pieces of at most ``max_bytes`` UTF-8 bytes, cut at spaces, and a word
    longer than that cut between characters."""
    if len(chunk.encode()) <= max_bytes:
        return [chunk]
    pieces: list[str] = []
    current = ""
    for word in chunk.split():
        while len(word.encode()) > max_bytes:  # one word over the bound: cut it
            if current:
                pieces.append(current)
                current = ""
            cut = len(word.encode()[:max_bytes].decode("utf-8", "ignore")) or 1
            pieces.append(word[:cut])
            word = word[cut:]
        joined = f"{current} {word}" if current else word
        if len(joined.encode()) <= max_bytes:
            current = joined
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return [piece for piece in pieces if piece]


def random_seed() -> int:
    """A seed for a job that named none: the answer says it, so the audio can be remade."""
    return random.randint(0, 2**31 - 1)


def chunk_frames(ref_samples: int, chunk_samples: int, hop: int = 256) -> int:
    """The mel frames one chunk's forward pass holds: the reference's and the chunk's."""
    return ref_samples // hop + chunk_samples // hop + 1


def cross_fade(waves: list[Any], rate: int) -> Any:
    """The chunks joined as F5-TTS joins them (a linear 0.15 s cross-fade, shortened to
    the shorter side), written into one array once: F5-TTS copies the whole result at
    every chunk, which costs the square of the chunk count."""
    import numpy as np

    fade = int(CROSS_FADE_S * rate)
    overlaps = [min(fade, len(a), len(b)) for a, b in itertools.pairwise(waves)]
    out: Any = np.zeros(sum(len(w) for w in waves) - sum(overlaps), dtype=np.float32)
    at = 0
    for index, wave in enumerate(waves):
        wave = np.asarray(wave, dtype=np.float32)
        head = overlaps[index - 1] if index else 0
        if head:  # fade the previous tail out and this head in, over the same samples
            out[at - head:at] = (out[at - head:at] * np.linspace(1, 0, head)
                                 + wave[:head] * np.linspace(0, 1, head))
        out[at:at + len(wave) - head] = wave[head:]
        at += len(wave) - head
    return out


@dataclass
class F5Model:
    model: Any
    vocoder: Any
    device: str
    arch: Arch
    # One synthesis at a time: seeding is process-wide, and so is the stdout redirect.
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Seconds per mel frame per NFE step of the last chunk made (the warm-up's first): what
    # a job's budget predicts its next chunk's time by. None until one is made.
    cost_s: float | None = None

    def predict_s(self, frames: int, nfe_step: int) -> float | None:
        """How long a chunk of ``frames`` (reference included) takes, from the last one."""
        return None if self.cost_s is None else self.cost_s * frames * nfe_step

    @property
    def sample_rate(self) -> int:
        return self.arch.sample_rate

    def synthesize(self, ref: Any, ref_text: str, text: str | Plan, *, nfe_step: int = 32,
                   cfg_strength: float = 2.0, speed: float = 1.0, seed: int | None = None,
                   progress: Progress | None = None,
                   between: Progress | None = None) -> tuple[Any, int]:
        """The waveform (float32 numpy, mono) for ``text`` (or its :func:`plan`) spoken
        like ``ref`` (mono float32 samples at the model's rate, ``f5worker.refclip``), and
        the seed that made it. ``between(done, total)`` runs before each chunk and may
        raise to stop the synthesis there; ``progress(done, total)`` after each."""
        if isinstance(text, str):
            text = plan(len(ref), ref_text, text, speed, self.sample_rate)
        seed = random_seed() if seed is None else seed
        waves = list(self.waves(ref, ref_text, text, seed, nfe_step=nfe_step,
                                cfg_strength=cfg_strength, speed=speed, progress=progress,
                                between=between))
        return cross_fade(waves, self.sample_rate), seed

    def waves(self, ref: Any, ref_text: str, text: Plan, seed: int, *, nfe_step: int = 32,
              cfg_strength: float = 2.0, speed: float = 1.0, progress: Progress | None = None,
              between: Progress | None = None) -> Generator[Any, None, None]:
        """Each chunk's waveform of ``text`` as it is made, before the cross-fades
        (:class:`Joiner` makes them the audio :meth:`synthesize` returns). The model is
        held until the last chunk is made or the iterator is closed."""
        import torch
        from f5_tts.infer.utils_infer import infer_batch_process
        from f5_tts.model.utils import seed_everything

        if not text.chunks:
            raise ValueError("the text produced no speech chunks")
        audio = torch.from_numpy(ref).reshape(1, -1)
        total = len(text.chunks)
        with self.lock:
            seed_everything(seed)
            for index, chunk in enumerate(text.chunks):
                if between:
                    between(index, total)
                # One chunk a call: the reference is already at the model's rate (no
                # resampler), and nothing runs that the caller could no longer stop.
                began = time.monotonic()
                # F5-TTS prints progress; stdout carries this worker's JSON events (and
                # only around the compute: a caller runs between two chunks).
                with contextlib.redirect_stdout(sys.stderr):
                    wave, _, _ = next(infer_batch_process(
                        (audio, self.sample_rate), ref_text_for_model(ref_text), [chunk],
                        self.model, self.vocoder, mel_spec_type=self.arch.mel_spec_type,
                        progress=None, nfe_step=nfe_step, cfg_strength=cfg_strength,
                        speed=speed, device=self.device))
                if wave is None:
                    raise ValueError("the text produced no speech chunks")
                frames = chunk_frames(len(ref), text.samples[index])
                self.cost_s = (time.monotonic() - began) / (frames * max(1, nfe_step))
                if progress:
                    progress(index + 1, total)
                yield wave


class Joiner:
    """:func:`cross_fade` a chunk at a time: each :meth:`push` returns the samples that no
    later chunk changes (all but the tail the next one fades into); :meth:`finish` the
    rest. Together they are :func:`cross_fade`'s result, sample for sample."""

    def __init__(self, rate: int) -> None:
        import numpy as np

        self.fade = int(CROSS_FADE_S * rate)
        self.tail: Any = np.zeros(0, dtype=np.float32)
        self.last = 0  # the previous chunk's length: the fade is shortened to it

    def push(self, wave: Any) -> Any:
        import numpy as np

        wave = np.asarray(wave, dtype=np.float32)
        head = min(self.fade, self.last, len(wave)) if self.last else 0
        if head:  # the same arithmetic as cross_fade, on the same samples
            self.tail[-head:] = (self.tail[-head:] * np.linspace(1, 0, head)
                                 + wave[:head] * np.linspace(0, 1, head))
        joined = np.concatenate([self.tail, wave[head:]])
        self.last = len(wave)
        keep = min(self.fade, len(joined))
        self.tail = joined[len(joined) - keep:].copy()
        return joined[:len(joined) - keep]

    def finish(self) -> Any:
        rest, self.tail = self.tail, self.tail[:0]
        return rest


def load(arch: Arch, ckpt: Path, vocab: Path, vocoder_dir: Path, device: str) -> F5Model:
    from f5_tts.infer import utils_infer
    from hydra.utils import get_class

    backbone = get_class(f"f5_tts.model.{arch.backbone}")
    with contextlib.redirect_stdout(sys.stderr):
        model = utils_infer.load_model(backbone, arch.arch, str(ckpt),
                                       mel_spec_type=arch.mel_spec_type,
                                       vocab_file=str(vocab), device=device)
        vocoder = utils_infer.load_vocoder(arch.mel_spec_type, is_local=True,
                                           local_path=str(vocoder_dir), device=device)
    return F5Model(model, vocoder, device, arch)


def expected_shapes(arch: Arch, vocab: list[str]) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of ``arch`` with ``vocab``, built on the meta device (no
    memory, no time) to compare with a checkpoint before loading it."""
    import torch
    from f5_tts.model import CFM
    from hydra.utils import get_class

    from f5worker.checkpoint import IGNORED

    backbone = get_class(f"f5_tts.model.{arch.backbone}")
    mel = {k: v for k, v in arch.mel.items()}
    with torch.device("meta"):
        model = CFM(transformer=backbone(**arch.arch, text_num_embeds=len(vocab),
                                         mel_dim=int(mel["n_mel_channels"])),
                    mel_spec_kwargs=mel, vocab_char_map={c: i for i, c in enumerate(vocab)})
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in IGNORED}
