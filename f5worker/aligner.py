"""The warm word aligner: a CTC model (MMS_FA's wav2vec2) that places each word of a text
in the audio synthesized for it.

The model stage loads it into ``F5State.aligner`` when timings are enabled; the
handler calls :meth:`Aligner.align`. The architecture is torchaudio's ``wav2vec2_model``
with the MMS_FA bundle's parameters (or a JSON file of those parameters: the tests' tiny
aligner); the weights are a file on the volume, never torchaudio's own download cache.
The label dictionary is fixed by the bundle (MMS_FA emits romanized characters), so it
lives here.

Limits, by design: the aligner knows only ``a-z`` and ``'``. Accents are folded (é → e);
words left with no known character (digits, other scripts) are placed in the gap between
their neighbours. A text with no known character at all cannot be aligned and raises
:class:`AlignmentError`, as does audio too short to hold the text's characters (MMS_FA
makes one frame per 20 ms).

Each :class:`Word` carries ``score``, in [0, 1]: the forced aligner's own evidence for the
place it chose, the mean over the frames where it put the word's letters of the probability
the model gives those letters there (blank frames between letters are not counted). A word
with no known character, placed in a gap rather than aligned, scores 0.0. :func:`confidence`
is the mean of the words' scores. Neither is an ASR confidence: the aligner is told the text
and only chooses where it goes, so a score measures how well the audio fits the given text at
that place, not whether the words were recognised; what a given score means for the accuracy
of a word's times has not been measured (no real MMS_FA weights here).
"""

from __future__ import annotations

import itertools
import json
import threading
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# torchaudio.pipelines.MMS_FA, recorded so the architecture is known without importing it
# (and so a torchaudio update cannot change a checkpoint's meaning under the volume).
MMS_FA_URL = "https://dl.fbaipublicfiles.com/mms/torchaudio/ctc_alignment_mling_uroman/model.pt"
MMS_FA_PARAMS: dict[str, Any] = {
    "extractor_mode": "layer_norm",
    "extractor_conv_layer_config": [(512, 10, 5), (512, 3, 2), (512, 3, 2), (512, 3, 2),
                                    (512, 3, 2), (512, 2, 2), (512, 2, 2)],
    "extractor_conv_bias": True,
    "encoder_embed_dim": 1024,
    "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 24,
    "encoder_num_heads": 16,
    "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_features": 4096,
    "encoder_ff_interm_dropout": 0.1,
    "encoder_dropout": 0.0,
    "encoder_layer_norm_first": True,
    "encoder_layer_drop": 0.1,
    "aux_num_out": 28,
}
# MMS_FA.get_labels(star=None): index 0 is the CTC blank.
LABELS = ("-", "a", "i", "e", "n", "o", "u", "t", "s", "r", "m", "k", "l", "d", "g", "h", "y",
          "b", "p", "w", "c", "v", "j", "z", "f", "'", "q", "x")
BLANK = 0
SAMPLE_RATE = 16000
# Attention is quadratic in frames: audio is run through the model in windows of this
# length, each with some context either side whose frames are dropped.
CHUNK_S = 30.0
CONTEXT_S = 1.0
_TOKEN = {label: index for index, label in enumerate(LABELS) if index != BLANK}


class AlignmentError(Exception):
    """The text cannot be aligned to the audio; the message says why."""


class AlignerFileError(Exception):
    """The aligner's architecture file is missing or malformed."""


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    # The alignment's evidence for this place, 0..1 (see the module docstring); 0.0 for a
    # word placed in a gap, and the default for words not made by an aligner.
    score: float = 0.0


def confidence(words: Sequence[Word]) -> float:
    """The mean of the words' scores, in [0, 1]; 0.0 for no words."""
    return sum(word.score for word in words) / len(words) if words else 0.0


def read_params(spec: str) -> dict[str, Any]:
    """``"MMS_FA"``, or a JSON file of ``wav2vec2_model`` parameters (the tiny aligner)."""
    if spec == "MMS_FA":
        return dict(MMS_FA_PARAMS)
    path = Path(spec)
    try:
        params = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AlignerFileError(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(params, dict) or params.get("aux_num_out") != len(LABELS):
        raise AlignerFileError(f"needs aux_num_out = {len(LABELS)} (the MMS_FA labels)")
    params["extractor_conv_layer_config"] = [tuple(layer) for layer in
                                             params.get("extractor_conv_layer_config") or []]
    return params


def canonical_key(key: str) -> str:
    """Older checkpoints (the published MMS_FA file among them) store the weight-normed
    positional convolution as ``weight_g``/``weight_v``; torch now names them
    ``parametrizations.weight.original0/1`` and converts on load."""
    return (key.replace(".weight_g", ".parametrizations.weight.original0")
            .replace(".weight_v", ".parametrizations.weight.original1"))


def expected_shapes(params: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the architecture, built on the meta device (no memory)."""
    import torch
    from torchaudio.models import wav2vec2_model

    with torch.device("meta"):
        model = wav2vec2_model(**params)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def normalize(word: str) -> str:
    """``word`` in the aligner's characters: lowercase, accents folded, the rest dropped."""
    folded = unicodedata.normalize("NFKD", word.lower().replace("’", "'"))
    return "".join(ch for ch in folded if ch in _TOKEN)


@dataclass
class Aligner:
    model: Any  # torchaudio Wav2Vec2Model, eval mode, on ``device``
    device: str
    # The model is not re-entrant on one CUDA stream, and emissions are large: one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def emissions(self, wave: Any) -> Any:
        """Log-probabilities per 20 ms frame, (frames, labels), for 16 kHz mono ``wave``."""
        import torch

        # The bundle layer-normalizes the whole waveform; done once here so that windows
        # see the same scale as one pass would.
        wave = torch.nn.functional.layer_norm(wave, wave.shape)
        chunk, context = int(CHUNK_S * SAMPLE_RATE), int(CONTEXT_S * SAMPLE_RATE)
        if wave.numel() <= chunk + context:
            return self._run(wave)
        parts = []
        for start in range(0, wave.numel(), chunk):
            begin = max(0, start - context)
            end = min(wave.numel(), start + chunk + context)
            frames = self._run(wave[begin:end])
            # Frames are evenly spread over the window: keep those of [start, start+chunk).
            per_sample = frames.shape[0] / (end - begin)
            keep_from = round((start - begin) * per_sample)
            keep_to = round((min(start + chunk, end) - begin) * per_sample)
            parts.append(frames[keep_from:keep_to])
        return torch.cat(parts)

    def _run(self, wave: Any) -> Any:
        import torch

        with torch.inference_mode():
            logits, _ = self.model(wave.unsqueeze(0).to(self.device))
            return torch.log_softmax(logits[0], dim=-1).float().cpu()

    def align(self, wave: Any, sample_rate: int, text: str) -> list[Word]:
        """One :class:`Word` per whitespace-separated word of ``text``, in order, with
        times in seconds within ``[0, len(wave) / sample_rate]``."""
        import torch
        import torchaudio.functional as F

        words = text.split()
        if not words:
            return []
        tokens = [[_TOKEN[ch] for ch in normalize(word)] for word in words]
        flat = [t for word in tokens for t in word]
        if not flat:
            raise AlignmentError("the text has no character the aligner knows (a-z, ')")
        samples = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
        duration = samples.numel() / sample_rate
        if sample_rate != SAMPLE_RATE:
            samples = F.resample(samples, sample_rate, SAMPLE_RATE)
        with self.lock:
            emission = self.emissions(samples)
        repeats = sum(a == b for a, b in itertools.pairwise(flat))
        if emission.shape[0] < len(flat) + repeats:
            raise AlignmentError(f"{duration:.2f} s of audio is too short for "
                                 f"{len(flat)} characters")
        with warnings.catch_warnings():
            # torchaudio 2.9 marks its alignment functions deprecated (pytorch/audio#3902)
            # but ships them; the f5 extra pins torchaudio 2.9, so they stay available.
            warnings.simplefilter("ignore", UserWarning)
            path, scores = F.forced_align(emission.unsqueeze(0), torch.tensor([flat]),
                                          blank=BLANK)
            spans = F.merge_tokens(path[0], scores[0].exp(), blank=BLANK)
        seconds_per_frame = duration / emission.shape[0]
        placed: list[tuple[float, float] | None] = []
        word_scores: list[float] = []
        for word in tokens:
            mine, spans = spans[:len(word)], spans[len(word):]
            placed.append((mine[0].start * seconds_per_frame, mine[-1].end * seconds_per_frame)
                          if mine else None)
            word_scores.append(_score(mine))
        return [Word(w, min(s, duration), min(e, duration), score)
                for w, (s, e), score in zip(words, _fill_gaps(placed, duration), word_scores,
                                            strict=True)]


def _score(spans: Sequence[Any]) -> float:
    """The mean probability over the frames of a word's token spans (each span's score is
    the mean over its own frames, so they are weighted by length); 0.0 for no spans."""
    frames = sum(span.end - span.start for span in spans)
    if not frames:
        return 0.0
    mean = sum(span.score * (span.end - span.start) for span in spans) / frames
    return min(max(float(mean), 0.0), 1.0)  # exp of a log-softmax can round just past 1


def _fill_gaps(placed: list[tuple[float, float] | None],
               duration: float) -> list[tuple[float, float]]:
    """Spans for words the aligner could not see: the gap between the aligned neighbours
    shared evenly among them (zero-length when the neighbours touch)."""
    out: list[tuple[float, float]] = []
    index = 0
    while index < len(placed):
        span = placed[index]
        if span is not None:
            out.append(span)
            index += 1
            continue
        run_end = index
        while run_end < len(placed) and placed[run_end] is None:
            run_end += 1
        left = out[-1][1] if out else 0.0
        after = placed[run_end] if run_end < len(placed) else None
        right = after[0] if after is not None else duration
        step = max(right - left, 0.0) / (run_end - index)
        out += [(left + step * k, left + step * (k + 1)) for k in range(run_end - index)]
        index = run_end
    return out


def load(params: dict[str, Any], weights: Path, device: str) -> Aligner:
    import torch
    from torchaudio.models import wav2vec2_model

    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    model = wav2vec2_model(**params)
    model.load_state_dict(state)  # strict; old weight_g/weight_v names convert on load
    return Aligner(model.eval().to(device), device)
