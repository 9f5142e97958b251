"""Word alignment end to end on the tiny random aligner (MMS_FA's structure, small): its
timings mean nothing, but their structure must hold for any weights: one entry per word,
in order, monotonic, within the audio. Word scores are checked against the forced path's
own frame probabilities, and against a scripted CTC model whose right answer is known."""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import srt
import torch

from bootstrap.kernel.context import Context
from f5worker import aligner, refclip, voices
from f5worker.aligner import AlignmentError, Word
from f5worker.handler import subtitles, tiny_model

TEXT = "Hello, world! It's 42 degrees — café time... ok?"


def voice(tmp_path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The tiny model's voice-like reference (harmonics under a syllable envelope)."""
    path = tiny_model.write_voice(tmp_path, seconds=seconds)
    with wave.open(str(path)) as source:
        pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768, source.getframerate()


def assert_structure(words: list[Word], text: str, duration: float) -> None:
    assert [w.text for w in words] == text.split()
    ends = [t for w in words for t in (w.start_s, w.end_s)]
    assert ends == sorted(ends), "not monotonic"
    assert ends[0] >= 0 and ends[-1] <= duration


def test_every_word_gets_one_entry_in_order_within_the_audio(
        tiny_aligner: aligner.Aligner, tmp_path: Path) -> None:
    samples, rate = voice(tmp_path, seconds=3.0)
    words = tiny_aligner.align(samples, rate, TEXT)
    assert_structure(words, TEXT, 3.0)
    assert any(w.end_s > w.start_s for w in words)


def test_words_the_aligner_cannot_read_sit_between_their_neighbours(
        tiny_aligner: aligner.Aligner, tmp_path: Path) -> None:
    samples, rate = voice(tmp_path, seconds=3.0)
    words = tiny_aligner.align(samples, rate, "one 42 — two")
    assert words[0].end_s <= words[1].start_s <= words[2].end_s <= words[3].start_s


def test_audio_longer_than_a_window_is_aligned_in_chunks(
        tiny_aligner: aligner.Aligner, tmp_path: Path) -> None:
    seconds = aligner.CHUNK_S * 2 + 5
    samples, rate = voice(tmp_path, seconds=seconds)
    at_16k = torch.nn.functional.interpolate(  # any 16 kHz wave: only the frame count matters
        torch.from_numpy(samples)[None, None], scale_factor=16000 / rate)[0, 0]
    frames = tiny_aligner.emissions(at_16k).shape[0]
    assert abs(frames - seconds * 50) <= 3  # one frame per 20 ms, windows joined seamlessly
    text = " ".join(["speech"] * 120)
    assert_structure(tiny_aligner.align(samples, rate, text), text, seconds)


def test_normalization_keeps_only_the_aligners_characters() -> None:
    assert aligner.normalize("Café’s") == "cafe's"
    assert aligner.normalize("HELLO,") == "hello"
    assert aligner.normalize("42") == aligner.normalize("—") == aligner.normalize("北京") == ""


def test_a_text_with_nothing_to_align_is_a_named_error(
        tiny_aligner: aligner.Aligner, tmp_path: Path) -> None:
    samples, rate = voice(tmp_path, seconds=1.0)
    with pytest.raises(AlignmentError, match="no character the aligner knows"):
        tiny_aligner.align(samples, rate, "42 — 北京")
    assert tiny_aligner.align(samples, rate, "   ") == []


def test_audio_too_short_for_the_text_is_a_named_error(
        tiny_aligner: aligner.Aligner, tmp_path: Path) -> None:
    samples, rate = voice(tmp_path, seconds=0.2)  # 10 frames
    with pytest.raises(AlignmentError, match="too short for 30 characters"):
        tiny_aligner.align(samples, rate, "abcde " * 6)


def test_the_labels_and_architecture_are_the_mms_fa_bundles() -> None:
    from torchaudio.pipelines import MMS_FA

    assert MMS_FA.get_labels(star=None) == aligner.LABELS
    assert MMS_FA._params == aligner.MMS_FA_PARAMS
    assert MMS_FA._path == aligner.MMS_FA_URL
    assert MMS_FA.sample_rate == aligner.SAMPLE_RATE


def test_speech_from_the_tiny_f5_model_gets_subtitles_a_parser_reads(
        booted: Context, tiny_aligner: aligner.Aligner) -> None:
    f5 = booted.app_state.model
    voice_ = voices.library(booted.config).get("default")
    assert voice_ is not None
    text = "The quick brown fox jumps over the lazy dog."
    ref = refclip.of_voice(voice_.audio, f5.sample_rate).samples
    samples, _ = f5.synthesize(ref, voice_.text, text, nfe_step=4, seed=1)
    content, mime = subtitles.timings_for(tiny_aligner, samples, f5.sample_rate, text, "srt",
                                          max_words=1)
    assert mime == "application/x-subrip"
    cues = list(srt.parse(content))
    assert [c.content for c in cues] == text.split()
    assert cues[-1].end.total_seconds() <= len(samples) / f5.sample_rate + 0.001


def test_an_unknown_format_fails_before_aligning(tiny_aligner: aligner.Aligner) -> None:
    with pytest.raises(ValueError, match="timing_format 'txt'"):
        subtitles.timings_for(tiny_aligner, np.zeros(10), 24000, "a", "txt")


def test_an_aligner_saved_with_old_weight_norm_names_loads(
        tiny_volume: Path, tmp_path: Path) -> None:
    """The published MMS_FA file predates torch's parametrized weight norm."""
    state = torch.load(tiny_volume / tiny_model.ALIGNER / "model.pt", weights_only=True)
    old = {k.replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"): v
           for k, v in state.items()}
    assert old.keys() != state.keys()
    torch.save(old, tmp_path / "old.pt")
    params = aligner.read_params(str(tiny_volume / tiny_model.ALIGNER / "aligner.json"))
    loaded = aligner.load(params, tmp_path / "old.pt", "cpu")
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())


# --- scores and confidence ---

def _frame_scores(tiny_aligner: aligner.Aligner, samples: np.ndarray, rate: int,
                  text: str) -> list[float]:
    """Each word's mean frame probability, computed here from forced_align's path without
    torchaudio's merge_tokens: a frame belongs to a token when it emits a label, and a new
    token starts where the label changes or follows a blank."""
    import torchaudio.functional as F

    at_16k = F.resample(torch.as_tensor(samples), rate, aligner.SAMPLE_RATE)
    emission = tiny_aligner.emissions(at_16k)
    tokens = [[aligner.LABELS.index(ch) for ch in aligner.normalize(w)] for w in text.split()]
    flat = [t for word in tokens for t in word]
    with warnings.catch_warnings():  # deprecated in torchaudio 2.9, still shipped
        warnings.simplefilter("ignore", UserWarning)
        path, scores = F.forced_align(emission[None], torch.tensor([flat]),
                                      blank=aligner.BLANK)
    owner = [index for index, word in enumerate(tokens) for _ in word]  # token -> word
    per_word: list[list[float]] = [[] for _ in tokens]
    token, previous = -1, aligner.BLANK
    for label, score in zip(path[0].tolist(), scores[0].exp().tolist(), strict=True):
        if label != aligner.BLANK:
            if label != previous:
                token += 1
            per_word[owner[token]].append(score)
        previous = label
    return [sum(p) / len(p) if p else 0.0 for p in per_word]


def test_each_word_scores_the_mean_probability_of_its_frames(
        tiny_aligner: aligner.Aligner, tmp_path: Path) -> None:
    samples, rate = voice(tmp_path, seconds=3.0)
    text = "Hello, world! It's 42 degrees — café time... ok?"
    words = tiny_aligner.align(samples, rate, text)
    expected = _frame_scores(tiny_aligner, samples, rate, text)
    assert [w.score for w in words] == pytest.approx(expected, abs=1e-6)
    assert all(0.0 <= w.score <= 1.0 for w in words)
    unplaced = {"42", "—"}
    assert all((w.score == 0.0) == (w.text in unplaced) for w in words)
    assert aligner.confidence(words) == pytest.approx(sum(expected) / len(expected))
    assert aligner.confidence([]) == 0.0


class Scripted(torch.nn.Module):
    """A CTC "model" that is sure of one label per 20 ms frame, as a well-trained aligner
    is on clear speech: logit 10 for the scripted label, 0 for the rest (p ≈ 0.9988)."""

    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self.labels = torch.tensor([aligner.LABELS.index(label) for label in script])

    def forward(self, waves: torch.Tensor) -> tuple[torch.Tensor, None]:
        assert waves.shape[1] // 320 == len(self.labels)  # one frame per 20 ms at 16 kHz
        logits = torch.zeros(1, len(self.labels), len(aligner.LABELS))
        logits[0, torch.arange(len(self.labels)), self.labels] = 10.0
        return logits, None


def test_scores_are_high_where_the_text_fits_the_audio_and_low_where_it_does_not() -> None:
    # 1 s: 10 blank frames, "cat" 3+3+3 frames, 11 blank, "dog" 3+3+3, 11 blank.
    script = (["-"] * 10 + ["c"] * 3 + ["a"] * 3 + ["t"] * 3 + ["-"] * 11
              + ["d"] * 3 + ["o"] * 3 + ["g"] * 3 + ["-"] * 11)
    scripted = aligner.Aligner(Scripted(script), "cpu")
    silence = np.zeros(aligner.SAMPLE_RATE, dtype=np.float32)
    sure = torch.softmax(torch.tensor([10.0] + [0.0] * 27), 0)[0].item()

    right = scripted.align(silence, aligner.SAMPLE_RATE, "Cat dog.")
    assert [(w.text, round(w.start_s, 6), round(w.end_s, 6)) for w in right] == [
        ("Cat", 0.2, 0.38), ("dog.", 0.6, 0.78)]  # the scripted frames, 20 ms each
    assert [w.score for w in right] == pytest.approx([sure, sure])
    assert aligner.confidence(right) == pytest.approx(sure)

    wrong = scripted.align(silence, aligner.SAMPLE_RATE, "cut dog")
    assert wrong[0].score < 0.9 < sure == pytest.approx(wrong[1].score)
    assert aligner.confidence(wrong) < aligner.confidence(right)
    assert scripted.align(silence, aligner.SAMPLE_RATE, "cut dig")[1].score < 0.9


def test_align_all_aligns_once_for_every_format(
        tiny_aligner: aligner.Aligner, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    samples, rate = voice(tmp_path, seconds=3.0)
    calls: list[str] = []
    align = tiny_aligner.align

    def counting(wave: object, sample_rate: int, text: str) -> list[Word]:
        calls.append(text)
        return align(wave, sample_rate, text)

    monkeypatch.setattr(tiny_aligner, "align", counting)
    timings = subtitles.align_all(tiny_aligner, samples, rate, TEXT)
    files = timings.files(subtitles.FORMATS)
    assert calls == [TEXT]
    assert timings.word_count == len(TEXT.split()) == len(timings.words)
    assert timings.confidence == aligner.confidence(timings.words)
    assert 0.0 < timings.confidence < 1.0
    assert {fmt: mime for fmt, (_, mime) in files.items()} == subtitles.MIME
    # The old single-format call gives the same file from the same alignment.
    assert subtitles.timings_for(tiny_aligner, samples, rate, TEXT, "csv") == files["csv"]
    rows = files["csv"][0].splitlines()[1:]
    assert [row.rsplit(",", 1)[1] for row in rows] == [f"{w.score:.3f}" for w in timings.words]
