"""F5-TTS on a GPU: load time, VRAM and real-time factor, through the worker's own stages.

    pip install -e '.[f5]'            # ~5 min on a fresh machine (torch is most of it)
    python bench/gpu_f5tts.py --out bench/results/gpu_f5tts.json

Builds a full-size F5TTS_v1_Base with random weights (337 M parameters, the same compute
as the trained model: the sampler's work depends on the shapes and the text length, not
on the weights) and a full-size random Vocos, boots them through the cuda, audio, model
and warmup stages exactly as a worker does, then times synthesis at 16 and 32 NFE steps
for a short and a long text, and the time to first audio beside the whole job's time for
four sentences at 16 NFE on both streamed paths (bench/first_audio.py: the queue handler's
stream and the OpenAI speech API over HTTP; goal: first audio under 250 ms). Writes one
JSON document. Needs no network.

``--tiny --allow-cpu`` runs the same logic with the tiny model on a CPU, to check the
script itself where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import first_audio  # noqa: E402
from bootstrap.kernel import events  # noqa: E402
from bootstrap.kernel.config import from_settings  # noqa: E402
from bootstrap.kernel.context import Context  # noqa: E402
from bootstrap.kernel.runner import run_stage  # noqa: E402
from bootstrap.stages import cuda  # noqa: E402
from f5worker import refclip, voices  # noqa: E402
from f5worker import settings as f5settings  # noqa: E402
from f5worker import state as f5state  # noqa: E402
from f5worker.stages import audio, model, warmup  # noqa: E402

SHORT = "The quick brown fox jumps over the lazy dog."
LONG = ("Speech synthesis has come a long way. Modern models speak in any voice from a few "
        "seconds of reference audio, and they do it faster than real time on a single GPU. "
        "This paragraph is long enough to be split into several chunks, which is how long "
        "requests are served in production, one chunk after another, cross-faded together.")
# charactr/vocos-mel-24khz's architecture.
VOCOS_SIZE = {"dim": 512, "intermediate_dim": 1536, "num_layers": 8}


def build_full(volume: Path) -> dict[str, Any]:
    """A random F5TTS_v1_Base, its vocab, a random full-size Vocos and the example voice,
    at the default paths under ``volume``; the settings that select them."""
    import torch
    from f5_tts.model import CFM, DiT
    from safetensors.torch import save_file
    from vocos import Vocos

    from f5worker import f5
    from f5worker.handler.tiny_model import _randomise

    package = f5.package_dir()
    assert package, "f5_tts is not installed"
    arch = f5.read_arch(package / "configs" / "F5TTS_v1_Base.yaml")
    root = volume / "models" / "F5TTS_v1_Base"
    root.mkdir(parents=True)
    shutil.copyfile(package / "infer" / "examples" / "vocab.txt", root / "vocab.txt")
    vocab = f5.read_vocab(root / "vocab.txt")
    torch.manual_seed(0)
    cfm = CFM(transformer=DiT(**arch.arch, text_num_embeds=len(vocab), mel_dim=100),
              mel_spec_kwargs=arch.mel, vocab_char_map={c: i for i, c in enumerate(vocab)})
    state = {f"ema_model.{k}": v for k, v in _randomise(cfm.state_dict(), 0).items()}
    # float32, as the published checkpoint (1.35 GB); F5-TTS casts to fp16 on sm >= 7.
    save_file(state, str(root / "model_1250000.safetensors"))
    params = sum(v.numel() for v in cfm.parameters())
    del cfm, state
    vocoder = volume / "models" / "vocos-mel-24khz"
    vocoder.mkdir(parents=True)
    from f5worker.handler.tiny_model import vocoder_yaml

    (vocoder / "config.yaml").write_text(vocoder_yaml(**VOCOS_SIZE))
    vocos = Vocos.from_hparams(str(vocoder / "config.yaml"))
    torch.save(_randomise(vocos.state_dict(), 1), vocoder / "pytorch_model.bin")
    # No Whisper is built here and nothing may be downloaded: transcription (on by
    # default) is off for the full-size bench.
    return {"model_repo": "", "vocoder_repo": "", "transcribe": False, "warmup_nfe": 16,
            "parameters": params}


def timed(ctx: Context, text: str, nfe: int, repeats: int) -> dict[str, Any]:
    import torch

    f5model = f5state.of(ctx).model
    voice = voices.library(ctx.config).get(f5settings.of(ctx.config).warmup_voice)
    assert voice is not None, "the warm-up stage has proven this voice exists"
    ref = refclip.of_voice(voice.audio, f5model.sample_rate).samples
    runs = []
    for i in range(repeats):
        if f5model.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        wave, _ = f5model.synthesize(ref, voice.text, text, nfe_step=nfe, seed=i)
        if f5model.device.startswith("cuda"):
            torch.cuda.synchronize()
        runs.append((time.perf_counter() - started, len(wave) / f5model.sample_rate))
    compute = statistics.median(r[0] for r in runs)
    seconds = runs[0][1]
    return {"nfe_step": nfe, "text_chars": len(text), "audio_s": round(seconds, 3),
            "compute_s": round(compute, 3), "rtf": round(compute / seconds, 4),
            "runs_s": [round(r[0], 3) for r in runs]}


def vram(device: str) -> dict[str, int]:
    import torch

    if not device.startswith("cuda"):
        return {}
    free, total = torch.cuda.mem_get_info(device)
    return {"allocated_mb": torch.cuda.memory_allocated(device) >> 20,
            "peak_mb": torch.cuda.max_memory_allocated(device) >> 20,
            "reserved_mb": torch.cuda.memory_reserved(device) >> 20,
            "used_on_device_mb": (total - free) >> 20, "total_mb": total >> 20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_f5tts.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tiny model (script check)")
    parser.add_argument("--allow-cpu", action="store_true")
    args = parser.parse_args()
    events.configure("json", stream=sys.stderr)
    started = time.monotonic()
    result: dict[str, Any] = {"python": platform.python_version(), "tiny": args.tiny}
    with tempfile.TemporaryDirectory(prefix="bench-f5-") as tmp:
        volume = Path(tmp)
        build_started = time.monotonic()
        if args.tiny:
            from f5worker.handler import tiny_model

            # The settings are strings (as in bootstrap.toml), typed by from_settings.
            settings: dict[str, Any] = dict(tiny_model.build(volume))
        else:
            settings = build_full(volume)
            result["parameters"] = settings.pop("parameters")
        result["build_s"] = round(time.monotonic() - build_started, 2)
        config = from_settings({"app": "f5worker.app:APP", **settings, "volume": volume,
                                "mode": "local", "allow_cpu": args.allow_cpu})
        ctx = Context(config, run_id="bench", worker_id="bench")
        stages: dict[str, Any] = {}
        for stage in (cuda, audio, model, warmup):
            outcome = run_stage(stage.STAGE, ctx)
            stages[stage.STAGE.name] = outcome.to_dict()
            if outcome.failure:
                result["stages"] = stages
                print(json.dumps(result, indent=2))
                return 1
        result["stages"] = stages
        device = ctx.device
        import torch

        result["torch"] = torch.__version__
        result["device"] = device
        if device.startswith("cuda"):
            result["gpu"] = torch.cuda.get_device_name(device)
        result["load_s"] = stages["model"]["facts"]["load_s"]
        result["import_s"] = stages["model"]["facts"]["import_s"]
        result["memory_after_load"] = stages["model"]["facts"]["after"]
        result["rtf"] = [timed(ctx, text, nfe, args.repeats)
                         for nfe in (16, 32) for text in (SHORT, LONG)]
        result["first_audio"] = {
            **first_audio.measure(ctx, first_audio.FOUR, 16, args.repeats,
                                  f5settings.of(ctx.config).warmup_voice),
            "goal_first_s": 0.25}
        result["vram"] = vram(device)
    result["total_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
