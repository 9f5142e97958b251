"""Builds a tiny random F5-TTS model on a volume: checkpoint, vocab, arch, vocoder, voice,
a tiny random word aligner (MMS_FA's wav2vec2 structure, small) and a tiny random Whisper
speech recognizer (transformers' own classes, its tokenizer built here: nothing is
downloaded).

    python -m f5worker.handler.tiny_model VOLUME

The model is built with F5-TTS's and Vocos's own classes and loads through their real
loaders, so a boot and a request exercise the whole path in seconds on a CPU. Its output
is noise, but shape, sample rate and determinism are real. It prints the settings that
point bootstrap at it (as ``bootstrap.toml`` lines).
"""

from __future__ import annotations

import math
import string
import sys
import wave
from pathlib import Path
from typing import Any

ROOT = Path("models/tiny")
VOICES = Path("models/voices")
SAMPLE_RATE = 24000
ARCH = {"dim": 64, "depth": 2, "heads": 2, "ff_mult": 2, "text_dim": 32, "conv_layers": 1,
        "text_mask_padding": True, "qk_norm": None, "pe_attn_head": None,
        "attn_backend": "torch", "attn_mask_enabled": False, "checkpoint_activations": False}
MEL = {"target_sample_rate": SAMPLE_RATE, "n_mel_channels": 100, "hop_length": 256,
       "win_length": 1024, "n_fft": 1024, "mel_spec_type": "vocos"}
ALIGNER = ROOT / "aligner"
# MMS_FA's structure (torchaudio's wav2vec2, the same 320-sample stride and 28 labels),
# with small widths and two layers: loads through the real loader in milliseconds.
ALIGNER_PARAMS = {
    "extractor_mode": "layer_norm",
    "extractor_conv_layer_config": [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2],
                                    [32, 3, 2], [32, 2, 2], [32, 2, 2]],
    "extractor_conv_bias": True, "encoder_embed_dim": 32, "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4, "encoder_num_layers": 2,
    "encoder_num_heads": 2, "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_features": 64, "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.0, "encoder_layer_norm_first": True, "encoder_layer_drop": 0.0,
    "aux_num_out": 28,
}
ASR = ROOT / "whisper"
# Whisper's special tokens, in the order of the real vocabulary (after the text tokens),
# for a few languages; no timestamp tokens (transcription asks for none).
ASR_LANGUAGES = ("en", "de", "fr", "es")
ASR_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>",
                *(f"<|{lang}|>" for lang in ASR_LANGUAGES), "<|translate|>", "<|transcribe|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")
# Decoding stops after this many tokens. Every token but letters and the space is
# suppressed, end-of-text included, so a transcript is that many letters and spaces:
# never empty, printable, and (decoded greedily) cheap on a CPU.
ASR_MAX_LENGTH = 16
VOICE_TEXT = "This is the tiny test voice."
VOICE_SECONDS = 2.0
# Line 0 must be a space: F5-TTS maps unknown characters to token 0.
VOCAB = [" ", *string.ascii_lowercase, *string.ascii_uppercase, *string.digits,
         *".,;:!?'\"-()"]

def vocoder_yaml(dim: int, intermediate_dim: int, num_layers: int) -> str:
    """A Vocos config with the mel settings F5-TTS uses (n_mels must be 100); only the
    backbone's size varies between the tiny one and charactr/vocos-mel-24khz."""
    return f"""\
feature_extractor:
  class_path: vocos.feature_extractors.MelSpectrogramFeatures
  init_args: {{sample_rate: 24000, n_fft: 1024, hop_length: 256, n_mels: 100, padding: center}}
backbone:
  class_path: vocos.models.VocosBackbone
  init_args: {{input_channels: 100, dim: {dim}, intermediate_dim: {intermediate_dim}, \
num_layers: {num_layers}}}
head:
  class_path: vocos.heads.ISTFTHead
  init_args: {{dim: {dim}, n_fft: 1024, hop_length: 256, padding: center}}
"""


VOCODER_YAML = vocoder_yaml(dim=64, intermediate_dim=128, num_layers=2)


# The app these settings belong to.
APP = "f5worker.app:APP"


def settings(volume: Path, timings: bool = False, transcribe: bool = True) -> dict[str, str]:
    """The bootstrap settings that select the tiny model on ``volume`` (and its aligner,
    checked and loaded only with ``timings``; and its recognizer, checked and loaded only
    with ``transcribe``, on by default as in production)."""
    return {
        "app": APP,
        "timings": "1" if timings else "0",
        "transcribe": "1" if transcribe else "0",
        "asr_dir": str(volume / ASR),
        "asr_model": "",  # never download: it is here
        "aligner_arch": str(volume / ALIGNER / "aligner.json"),
        "aligner_model": str(volume / ALIGNER / "model.pt"),
        "aligner_url": "",  # never download: it is here
        "model_arch": str(volume / ROOT / "tiny.yaml"),
        "model_ckpt": str(volume / ROOT / "model.safetensors"),
        "model_vocab": str(volume / ROOT / "vocab.txt"),
        "model_vocoder": str(volume / ROOT / "vocoder"),
        "model_voices": str(volume / VOICES),
        "model_repo": "",  # never download: everything is here
        "min_vram_mb": "0",
        "warmup_nfe": "4",
    }


def _randomise(state: dict[str, Any], seed: int) -> dict[str, Any]:
    """DiT zero-initialises its output projection (and some norms): all-zero tensors make
    an all-zero output, which the warm-up rightly calls silent."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, tensor in state.items():
        if tensor.is_floating_point() and not tensor.any():
            tensor = torch.randn(tensor.shape, generator=generator) * 0.02
        out[key] = tensor.contiguous()
    return out


def write_voice(folder: Path, name: str = "default", seconds: float = VOICE_SECONDS,
                text: str = VOICE_TEXT) -> Path:
    """A voice-like reference (harmonics under a syllable envelope) as 16-bit PCM WAV."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    for i in range(int(seconds * SAMPLE_RATE)):
        t = i / SAMPLE_RATE
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
        sample = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 6))
        frames += int(9000 * envelope * sample / 2.3).to_bytes(2, "little", signed=True)
    path = folder / f"{name}.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(bytes(frames))
    (folder / f"{name}.txt").write_text(text + "\n")
    return path


def build_aligner(volume: Path, seed: int = 0) -> Path:
    """The tiny aligner's architecture (JSON) and random weights (a torch state dict, the
    format of the published MMS_FA file); returns the weights' path."""
    import json

    import torch
    from torchaudio.models import wav2vec2_model

    root = volume / ALIGNER
    root.mkdir(parents=True, exist_ok=True)
    (root / "aligner.json").write_text(json.dumps(ALIGNER_PARAMS, indent=1) + "\n")
    torch.manual_seed(seed)
    params: dict[str, Any] = dict(ALIGNER_PARAMS)
    params["extractor_conv_layer_config"] = [tuple(x) for x in params[
        "extractor_conv_layer_config"]]
    model = wav2vec2_model(**params)
    torch.save(model.state_dict(), root / "model.pt")
    return root / "model.pt"


def build_whisper(volume: Path, seed: int = 0) -> Path:
    """A tiny random Whisper (d_model 16, one layer each side) with the files of a hub
    repo (config, generation config, weights, feature extractor, tokenizer), saved by
    transformers itself; returns its folder. Its tokenizer is byte-level BPE over the 256
    byte symbols with no merges, plus Whisper's special tokens. Its transcripts are
    gibberish, deterministic for a seed."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = volume / ASR
    folder.mkdir(parents=True, exist_ok=True)
    symbols = {symbol: index for index, symbol in enumerate(bytes_to_unicode().values())}
    tokenizer = WhisperTokenizer(vocab=symbols, merges=[], pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(ASR_SPECIALS[1:])})
    ids = dict(zip(ASR_SPECIALS, tokenizer.convert_tokens_to_ids(list(ASR_SPECIALS)),
                   strict=True))
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    space = symbols["\u0120"]  # byte-level BPE's symbol for b" "
    words = {symbols[letter] for letter in string.ascii_letters} | {space}
    features = WhisperFeatureExtractor()  # Whisper's 80 mel bins at 16 kHz, 30 s windows
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=features.feature_size, d_model=16,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=64, pad_token_id=end,
        bos_token_id=end, eos_token_id=end, decoder_start_token_id=start,
        # Generation settings live in the generation config alone (the defaults here name
        # the real vocabulary's token ids).
        begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, bos_token_id=end, eos_token_id=end, pad_token_id=end,
        max_length=ASR_MAX_LENGTH, num_beams=1,  # greedy: the pipeline's default is 5 beams
        begin_suppress_tokens=[space],
        suppress_tokens=[i for i in range(len(tokenizer)) if i not in words],
        is_multilingual=True,
        lang_to_id={f"<|{lang}|>": ids[f"<|{lang}|>"] for lang in ASR_LANGUAGES},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"])
    model.save_pretrained(folder)
    features.save_pretrained(folder)  # preprocessor_config.json, as the hub's repos have
    tokenizer.save_pretrained(folder)
    return folder


def build(volume: Path, seed: int = 0) -> dict[str, str]:
    import torch
    from f5_tts.model import CFM, DiT
    from safetensors.torch import save_file
    from vocos import Vocos

    root = volume / ROOT
    (root / "vocoder").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    (root / "vocab.txt").write_text("".join(f"{token}\n" for token in VOCAB))
    arch_yaml = "\n".join(f"    {k}: {'null' if v is None else v}" for k, v in ARCH.items())
    mel_yaml = "\n".join(f"    {k}: {v}" for k, v in MEL.items())
    (root / "tiny.yaml").write_text(
        f"model:\n  name: tiny\n  tokenizer: custom\n  backbone: DiT\n  arch:\n{arch_yaml}\n"
        f"  mel_spec:\n{mel_yaml}\n")
    model_arch = {k: v for k, v in ARCH.items() if v is not None}
    cfm = CFM(transformer=DiT(**model_arch, text_num_embeds=len(VOCAB), mel_dim=100),
              mel_spec_kwargs={k: v for k, v in MEL.items() if k != "mel_spec_type"}
              | {"mel_spec_type": "vocos"},
              vocab_char_map={c: i for i, c in enumerate(VOCAB)})
    state = {f"ema_model.{k}": v for k, v in _randomise(cfm.state_dict(), seed).items()}
    save_file(state, str(root / "model.safetensors"))

    (root / "vocoder" / "config.yaml").write_text(VOCODER_YAML)
    vocos = Vocos.from_hparams(str(root / "vocoder" / "config.yaml"))
    torch.save(_randomise(vocos.state_dict(), seed + 1), root / "vocoder" / "pytorch_model.bin")
    write_voice(volume / VOICES)
    build_aligner(volume, seed)
    build_whisper(volume, seed)
    return settings(volume)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    volume = Path(argv[0]).resolve()
    for key, value in build(volume).items():
        print(f'{key} = {int(value) if value.isdigit() else repr(value)}'.replace("'", '"'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
