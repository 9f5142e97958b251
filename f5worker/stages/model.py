"""model: proves the F5-TTS assets on the volume, fetches what is missing, then loads the
model and vocoder onto the device the cuda stage chose. With word timings enabled it does
the same for the aligner (``state.of(ctx).aligner``); without, it never looks at it. With
transcription enabled (the default) it does the same for the Whisper model that transcribes
a reference sent without its text (``state.of(ctx).transcriber``); without, likewise never.

Order matters: the files are checked (present, complete, shapes and vocab agreeing with
the architecture) before anything is imported, because a wrong checkpoint fails deep
inside ``load_state_dict`` or, worse, loads and speaks gibberish. When the files are
complete ``HF_HUB_OFFLINE=1`` is set before ``f5_tts`` is imported: a hub lookup that
misses costs ~23 s of retries per file otherwise.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bootstrap import hub
from bootstrap.kernel import events
from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.kernel.message import Message, error, info, warning
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed
from bootstrap.stages.cuda import DEVICE
from f5worker import aligner, checkpoint, f5, settings, state, transcriber, voices
from f5worker.exit_codes import F5ExitCode
from f5worker.timings_default import timings_on

E001 = error("model.E001", "checkpoint {path} is missing",
             "copy it there, set BOOTSTRAP_MODEL_CKPT, or set BOOTSTRAP_MODEL_REPO to fetch it")
E002 = error("model.E002", "checkpoint {path} is not usable: {why}",
             "an interrupted copy or download; delete the file and copy it again")
E003 = error("model.E003", "vocab {path} is missing or malformed: {why}",
             "one token per line, a space on line 0; set BOOTSTRAP_MODEL_VOCAB")
E004 = error("model.E004", "vocab {path} has {found} tokens; the checkpoint expects {need}",
             "use the vocab.txt the checkpoint was trained with")
E005 = error("model.E005", "vocoder directory {path} has no {file}",
             "it needs config.yaml and pytorch_model.bin (charactr/vocos-mel-24khz)")
E006 = error("model.E006", "checkpoint {path} does not fit arch {arch}: {why}",
             "set BOOTSTRAP_MODEL_ARCH to the architecture the checkpoint was trained as")
E007 = error("model.E007", "architecture {arch} is not found",
             "use a config name of f5_tts (F5TTS_v1_Base, ...) or a path to a .yaml")
E008 = error("model.E008", "the hub refused {file}: {why}",
             "set HF_TOKEN to a token with access to {repo} (accept its terms on the hub)")
E009 = error("model.E009", "the hub kept rate-limiting {file} (429)",
             "too many workers fetching at once; pre-load the volume, or retry later")
E010 = error("model.E010", "downloading {file} failed: {why}",
             "the cause says why; check the network, HF_ENDPOINT and the volume's free space")
E011 = error("model.E011", "loading the model onto {device} failed",
             "the cause is F5-TTS's own error; out of memory and corrupt files are typical")
E012 = error("model.E012", "f5_tts is not importable: {why}",
             "install the f5 extra into the worker's environment (pip install '.[f5]')")
E013 = error("model.E013", "no device was chosen; the cuda stage must run before model",
             "keep cuda before model in the pipeline; the model is never placed implicitly")
E014 = error("model.E014", "aligner {path} is missing (word timings are enabled)",
             "copy MMS_FA's model.pt there, set BOOTSTRAP_ALIGNER_URL, or BOOTSTRAP_TIMINGS=0")
E015 = error("model.E015", "aligner {path} is not usable: {why}",
             "an interrupted copy or download; delete the file and copy it again")
E016 = error("model.E016", "aligner {path} does not fit arch {arch}: {why}",
             "use MMS_FA's weights, or set BOOTSTRAP_ALIGNER_ARCH to the weights' own arch")
E017 = error("model.E017", "aligner architecture {arch} is not usable: {why}",
             "set BOOTSTRAP_ALIGNER_ARCH to MMS_FA or a .json of wav2vec2_model parameters")
E018 = error("model.E018", "loading the aligner onto {device} failed",
             "the cause is torchaudio's own error; out of memory and corrupt files are typical")
E019 = error("model.E019", "downloading the aligner from {url} failed: {why}",
             "check the network and BOOTSTRAP_ALIGNER_URL, or copy the file to {path}")
E020 = error("model.E020", "recognition model {path} lacks {files} (transcription is on)",
             "copy a Whisper model's files there, set BOOTSTRAP_ASR_MODEL to fetch them, or "
             "BOOTSTRAP_TRANSCRIBE=0 (then every job must send ref_text)")
E021 = error("model.E021", "recognition model {path} is not usable: {why}",
             "an interrupted copy or download, or files of two models; delete the folder and "
             "fetch or copy it again")
E022 = error("model.E022", "loading the recognition model onto {device} failed",
             "the cause is transformers' own error; out of memory and corrupt files are typical")
E023 = error("model.E023", "downloading {file} of the recognition model {repo} failed: {why}",
             "check BOOTSTRAP_ASR_MODEL (a Whisper repo), HF_TOKEN and the network, or copy "
             "the files to {path}")
W001 = warning("model.W001", "no voices in {path}",
               "store NAME.wav with its reference text in NAME.txt there")
I001 = info("model.I001", "{path} is missing: would download it from {repo}",
            "to skip the download, copy the file there before the boot")
I002 = info("model.I002", "aligner {path} is missing: would download it from {url}",
            "to skip the download, copy the file there before the boot")
I004 = info("model.I004", "{file} of {repo} is served from {source}: {path}",
            "runpod-cache is the endpoint's cached model; volume-cache the volume's Hugging "
            "Face cache (hf download writes there with HF_HOME=<volume>/.cache/huggingface)")
I003 = info("model.I003", "recognition model {path} lacks {files}: would download them from "
            "{repo}", "to skip the download, copy the files there before the boot")


@dataclass(frozen=True)
class Assets:
    arch_spec: str
    arch: Path | None
    ckpt: Path
    vocab: Path
    vocoder: Path
    voices: Path

    @classmethod
    def of(cls, ctx: Context) -> Assets:
        c = ctx.config
        own = settings.of(c)
        arch = f5.arch_file(own.model_arch)
        return cls(own.model_arch, c.on_volume(arch) if arch else None, c.on_volume(own.model_ckpt),
                   c.on_volume(own.model_vocab), c.on_volume(own.model_vocoder),
                   c.on_volume(own.model_voices))


VOCODER_FILES = ("config.yaml", "pytorch_model.bin")


def _vocab_problem(path: Path) -> str | None:
    if not path.is_file():
        return "no such file"
    tokens = f5.read_vocab(path)
    if not tokens:
        return "empty"
    if tokens[0] != " ":
        return f"line 0 is {tokens[0]!r}, not a space"
    return None


def inspect(assets: Assets, can_download: bool, final: bool = False) -> list[Message]:
    """What is wrong with the files, read-only. Before fetching, a missing file that will
    be downloaded or copied is not an error; ``final`` excuses nothing."""
    found: list[Message] = []
    if assets.arch is None or not assets.arch.is_file():
        found.append(E007.at(assets.arch or assets.arch_spec, arch=assets.arch_spec))
    for name in VOCODER_FILES:
        if not (assets.vocoder / name).is_file() and not can_download:
            found.append(E005.at(assets.vocoder / name, path=assets.vocoder, file=name))
    vocab_why = _vocab_problem(assets.vocab)
    from_package = not final and not assets.arch_spec.endswith((".yaml", ".yml"))
    if vocab_why and not (vocab_why == "no such file" and (can_download or from_package)):
        found.append(E003.at(assets.vocab, path=assets.vocab, why=vocab_why))
    if not assets.ckpt.is_file():
        if not can_download:
            found.append(E001.at(assets.ckpt, path=assets.ckpt))
        return found
    try:
        shapes = checkpoint.shapes(assets.ckpt)
    except checkpoint.CheckpointError as exc:
        found.append(E002.at(assets.ckpt, path=assets.ckpt, why=exc))
        return found
    need = checkpoint.vocab_size(shapes)
    if vocab_why is None and need is not None:
        tokens = len(f5.read_vocab(assets.vocab))
        if tokens != need:
            found.append(E004.at(assets.vocab, path=assets.vocab, found=tokens, need=need))
    return found


def check(ctx: Context) -> list[Message]:
    own = settings.of(ctx.config)
    assets, served = _located(ctx.config, Assets.of(ctx))
    found = inspect(assets, can_download=bool(own.model_repo))
    found += _served(served)
    if own.model_repo:  # say what `run` would fetch (the same list `_fetch` uses)
        found += [I001.at(dest, path=dest, repo=remote.repo)
                  for remote, dest in _wanted(ctx.config, assets) if not dest.is_file()]
    if not voices.library(ctx.config).all():
        found.append(W001.at(assets.voices, path=assets.voices))
    if timings_on(ctx.config):
        weights, url = ctx.config.on_volume(own.aligner_model), own.aligner_url
        found += inspect_aligner(ctx.config, can_download=bool(url))
        if url and not weights.is_file():
            found.append(I002.at(weights, path=weights, url=url))
    if own.transcribe:
        folder, repo = asr_folder(ctx.config), own.asr_model
        found += inspect_asr(ctx.config, can_download=bool(repo))
        if folder != ctx.config.on_volume(own.asr_dir):
            found.append(I004.at(folder, file="the recognition model", repo=repo,
                                 source=_asr_source(ctx.config, folder), path=folder))
        lacking = transcriber.missing(folder)
        if repo and lacking:  # the files `_fetch_asr` would fetch
            found.append(I003.at(folder, path=folder, files=", ".join(lacking), repo=repo))
    return found


def _aligner_arch(c: Config) -> str:
    own = settings.of(c)
    spec = own.aligner_arch
    return str(c.on_volume(Path(spec))) if spec.endswith(".json") else spec


def inspect_aligner(c: Config, can_download: bool) -> list[Message]:
    """What is wrong with the aligner's files, read-only (no torchaudio import)."""
    own = settings.of(c)
    found: list[Message] = []
    weights, arch = c.on_volume(own.aligner_model), _aligner_arch(c)
    try:
        aligner.read_params(arch)
    except aligner.AlignerFileError as exc:
        found.append(E017.at(arch, arch=arch, why=exc))
    if not weights.is_file():
        if not can_download:
            found.append(E014.at(weights, path=weights))
        return found
    try:
        checkpoint.shapes(weights)
    except checkpoint.CheckpointError as exc:
        found.append(E015.at(weights, path=weights, why=exc))
    return found


def _fetch_aligner(ctx: Context) -> int:
    from bootstrap import download

    c = ctx.config
    own = settings.of(c)
    weights = c.on_volume(own.aligner_model)
    try:
        return download.ensure(download.Url(own.aligner_url), weights,
                               c.volume / ".bootstrap" / "locks", ctx.worker_id)
    except download.DownloadError as exc:
        raise StageFailed(E019.at(own.aligner_url, url=own.aligner_url, path=weights, why=exc),
                          cause=str(exc),
                          transient=exc.kind in ("rate_limited", "failed", "incomplete")
                          ) from exc


def _load_aligner(ctx: Context, device: str) -> dict[str, object]:
    """The aligner, proven against its architecture, into ``state.of(ctx).aligner``."""
    c = ctx.config
    own = settings.of(c)
    weights, arch = c.on_volume(own.aligner_model), _aligner_arch(c)
    params = aligner.read_params(arch)
    found = {aligner.canonical_key(k): v for k, v in checkpoint.shapes(weights).items()}
    why = checkpoint.mismatch(found, aligner.expected_shapes(params))
    if why:
        raise StageFailed(E016.at(weights, path=weights, arch=arch, why=why))
    started = time.monotonic()
    try:
        state.of(ctx).aligner = aligner.load(params, weights, device)
    except Exception as exc:
        raise StageFailed(E018.at(device, device=device),
                          cause=f"{type(exc).__name__}: {exc}") from exc
    return {"path": str(weights), "arch": own.aligner_arch,
            "load_s": round(time.monotonic() - started, 2)}


def inspect_asr(c: Config, can_download: bool) -> list[Message]:
    """What is wrong with the recognition model's files, read-only (no transformers
    import). Before fetching, missing files that will be downloaded are not an error."""
    folder = asr_folder(c)
    lacking = transcriber.missing(folder)
    if lacking and not can_download:
        return [E020.at(folder, path=folder, files=", ".join(lacking))]
    try:
        transcriber.verify(folder)
    except transcriber.WhisperFileError as exc:
        return [E021.at(folder, path=folder, why=exc)]
    return []


def _hub_caches(c: Config) -> tuple[list[tuple[str, Path]], Path]:
    """Where the hub's files are looked for, in order, and the cache downloads go to."""
    volume_cache = c.volume / ".cache" / "huggingface" / "hub"
    return hub.caches(volume_cache, c.on_volume(settings.of(c).model_cache)), volume_cache


def asr_folder(c: Config) -> Path:
    """The recognition model's folder: ``asr_dir`` when it holds every file, else a
    snapshot of ``asr_model`` in a Hugging Face cache that does, else ``asr_dir``."""
    own = settings.of(c)
    folder = c.on_volume(own.asr_dir)
    if not transcriber.missing(folder) or not own.asr_model:
        return folder
    where, _ = _hub_caches(c)
    found = hub.find(hub.HubFile(own.asr_model, transcriber.REQUIRED[0]), where)
    if found is not None and not transcriber.missing(found.path.parent):
        return found.path.parent
    return folder


def _asr_source(c: Config, folder: Path) -> str:
    where, _ = _hub_caches(c)
    return next((source for source, cache in where if folder.is_relative_to(cache)), "volume")


def _fetch_asr(ctx: Context) -> dict[str, dict[str, object]]:
    """The recognition model's files from ``asr_model`` through huggingface_hub, into one
    snapshot of the volume's cache, under the lease like every other asset; what served
    each (nothing when ``asr_dir`` or a cache already holds them all)."""
    c = ctx.config
    own = settings.of(c)
    if not transcriber.missing(asr_folder(c)):  # complete: a warm boot asks the hub nothing
        return {}
    where, volume_cache = _hub_caches(c)
    served: dict[str, dict[str, object]] = {}
    for name in (*transcriber.REQUIRED, *transcriber.OPTIONAL):
        remote = hub.HubFile(own.asr_model, name)
        try:
            served[name] = hub.resolve(remote, where, volume_cache, _locks(c),
                                       ctx.worker_id).describe()
        except hub.DownloadError as exc:
            if name in transcriber.OPTIONAL and exc.kind == "not_found":
                continue  # not every Whisper repo has the older tokenizer files
            raise StageFailed(E023.at(remote.url(), file=name, repo=own.asr_model,
                                      path=c.on_volume(own.asr_dir), why=exc),
                              cause=str(exc), transient=exc.transient) from exc
    return served


def _load_transcriber(ctx: Context, device: str) -> dict[str, object]:
    """The recognition model, its files proven, into ``state.of(ctx).transcriber``."""
    c = ctx.config
    own = settings.of(c)
    folder = asr_folder(c)
    started = time.monotonic()
    try:
        loaded = transcriber.load(folder, device)
    except Exception as exc:
        raise StageFailed(E022.at(device, device=device),
                          cause=f"{type(exc).__name__}: {exc}") from exc
    state.of(ctx).transcriber = loaded
    return {"path": str(folder), "repo": own.asr_model, "dtype": loaded.dtype,
            "source": _asr_source(c, folder),
            "load_s": round(time.monotonic() - started, 2)}


def _locks(c: Config) -> Path:
    return c.volume / ".bootstrap" / "locks"


def _wanted(c: Config, assets: Assets) -> list[tuple[hub.HubFile, Path]]:
    """The files the hub provides and the path each is configured at on the volume."""
    own = settings.of(c)
    wanted = [(hub.HubFile(own.vocoder_repo, name), assets.vocoder / name)
              for name in VOCODER_FILES]
    if not assets.arch_spec.endswith((".yaml", ".yml")):
        wanted.append((hub.HubFile(own.model_repo, f"{assets.arch_spec}/{assets.ckpt.name}"),
                       assets.ckpt))
    return wanted


def _missing(c: Config, assets: Assets) -> list[tuple[hub.HubFile, Path]]:
    """The hub's files not at their configured paths. The vocoder's two go together (when
    either is missing, both come from one snapshot: the vocoder is their folder)."""
    wanted = _wanted(c, assets)
    vocoder = wanted[:len(VOCODER_FILES)]
    missing = vocoder if any(not dest.is_file() for _, dest in vocoder) else []
    return missing + [(remote, dest) for remote, dest in wanted[len(VOCODER_FILES):]
                      if not dest.is_file()]


def _with(assets: Assets, served: dict[Path, hub.Found]) -> Assets:
    """``assets`` with each served file's path in place of its configured one."""
    ckpt = served.get(assets.ckpt)
    config = served.get(assets.vocoder / VOCODER_FILES[0])
    return replace(assets, ckpt=ckpt.path if ckpt else assets.ckpt,
                   vocoder=config.path.parent if config else assets.vocoder)


def _located(c: Config, assets: Assets) -> tuple[Assets, dict[Path, tuple[hub.HubFile,
                                                                          hub.Found]]]:
    """The files found in a Hugging Face cache (RunPod's, the volume's), asking the
    network nothing; ``assets`` pointing at them."""
    if not settings.of(c).model_repo:
        return assets, {}
    where, _ = _hub_caches(c)
    served = {}
    for remote, dest in _missing(c, assets):
        found = hub.find(remote, where)
        if found is not None:
            served[dest] = (remote, found)
    return _with(assets, {dest: found for dest, (_, found) in served.items()}), served


def _served(served: dict[Path, tuple[hub.HubFile, hub.Found]]) -> list[Message]:
    return [I004.at(found.path, file=remote.filename, repo=remote.repo, source=found.source,
                    path=found.path) for remote, found in served.values()]


def _fetch(ctx: Context, assets: Assets) -> tuple[Assets, dict[str, dict[str, object]]]:
    """Each missing file from the first cache holding it, else downloaded; ``assets``
    pointing at them, and what served each."""
    where, volume_cache = _hub_caches(ctx.config)
    served: dict[Path, hub.Found] = {}
    facts: dict[str, dict[str, object]] = {}
    for remote, dest in _missing(ctx.config, assets):
        try:
            served[dest] = hub.resolve(remote, where, volume_cache, _locks(ctx.config),
                                       ctx.worker_id)
        except hub.DownloadError as exc:
            fields = {"file": remote.filename, "repo": remote.repo, "why": str(exc)}
            kind = {"auth": E008, "forbidden": E008, "rate_limited": E009}.get(exc.kind, E010)
            raise StageFailed(kind.at(remote.url(), **fields), cause=str(exc),
                              transient=exc.transient) from exc
        facts[remote.filename] = served[dest].describe()
    return _with(assets, served), facts


def _from_package(ctx: Context, assets: Assets) -> None:
    """F5-TTS's default vocab and its English example voice ship inside the package; they
    are copied, not downloaded. The vocab only for the package's own architectures: a
    custom checkpoint has its own vocab, and a wrong one must be named, not replaced."""
    own = settings.of(ctx.config)
    package = f5.package_dir()
    if package is None:
        return
    if not assets.vocab.is_file() and not assets.arch_spec.endswith((".yaml", ".yml")):
        assets.vocab.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / "infer" / "examples" / "vocab.txt", assets.vocab)
    voice = own.warmup_voice
    if voice == "default" and voices.library(ctx.config).get(voice) is None:
        assets.voices.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / "infer" / "examples" / "basic" / "basic_ref_en.wav",
                        assets.voices / f"{voice}.wav")
        (assets.voices / f"{voice}.txt").write_text(
            "Some call me nature, others call me mother nature.\n")


def _memory(device: str) -> dict[str, int]:
    import psutil

    out = {"rss_mb": psutil.Process().memory_info().rss >> 20}
    if device.startswith("cuda"):
        import torch

        out["vram_allocated_mb"] = torch.cuda.memory_allocated(device) >> 20
        free, total = torch.cuda.mem_get_info(device)
        out["vram_free_mb"], out["vram_total_mb"] = free >> 20, total >> 20
    return out


def run(ctx: Context) -> Outcome:
    own = settings.of(ctx.config)
    device = DEVICE.get(ctx)
    if not device:
        raise StageFailed(E013.at("device"))
    assets = Assets.of(ctx)
    facts: dict[str, object] = {"device": device, "ckpt": str(assets.ckpt)}
    # Anything else F5-TTS or its libraries cache goes to the volume, not the small disk.
    os.environ.setdefault("HF_HOME", str(ctx.config.volume / ".cache" / "huggingface"))
    if own.model_repo:
        assets, sources = _fetch(ctx, assets)
        facts["sources"] = sources
        facts["fetched_bytes"] = {name: got["bytes"] for name, got in sources.items()}
        facts["ckpt"] = str(assets.ckpt)
    timings = timings_on(ctx.config)  # on by default with the replaced worker's settings
    if timings and own.aligner_url:
        facts["aligner_fetched_bytes"] = _fetch_aligner(ctx)
    transcribe = own.transcribe
    if transcribe and own.asr_model:
        asr_sources = _fetch_asr(ctx)
        facts["asr_sources"] = asr_sources
        facts["asr_fetched_bytes"] = sum(int(str(got["bytes"])) for got in asr_sources.values())
    _from_package(ctx, assets)
    problems = inspect(assets, can_download=False, final=True)
    # The aligner's and recognizer's files are proven before the slow F5 load, so a bad
    # one fails fast.
    problems += inspect_aligner(ctx.config, can_download=False) if timings else []
    problems += inspect_asr(ctx.config, can_download=False) if transcribe else []
    if problems:
        raise StageFailed(problems[0])
    assert assets.arch is not None  # inspect() named it otherwise
    # Complete on disk: nothing may reach for the hub from here on.
    hub.go_offline()
    started = time.monotonic()
    try:
        import f5_tts.infer.utils_infer  # noqa: F401  (timed on its own: seconds, ~1 GB)
    except Exception as exc:
        raise StageFailed(E012.at("f5_tts", why=f"{type(exc).__name__}: {exc}"),
                          cause=repr(exc)) from exc
    facts["import_s"] = round(time.monotonic() - started, 2)
    arch = f5.read_arch(assets.arch)
    vocab = f5.read_vocab(assets.vocab)
    why = checkpoint.mismatch(checkpoint.shapes(assets.ckpt), f5.expected_shapes(arch, vocab))
    if why:
        raise StageFailed(E006.at(assets.ckpt, path=assets.ckpt, arch=arch.name, why=why))
    facts["before"] = _memory(device)
    started = time.monotonic()
    try:
        model = f5.load(arch, assets.ckpt, assets.vocab, assets.vocoder, device)
    except Exception as exc:
        raise StageFailed(E011.at(device, device=device),
                          cause=f"{type(exc).__name__}: {exc}") from exc
    facts["load_s"] = round(time.monotonic() - started, 2)
    facts["after"] = _memory(device)
    facts["aligner"] = _load_aligner(ctx, device) if timings else "off (timings disabled)"
    facts["transcriber"] = (_load_transcriber(ctx, device) if transcribe
                            else "off (transcription disabled)")
    names = sorted(voices.library(ctx.config).all())
    facts["voices"] = names
    facts["arch"] = arch.name
    state.of(ctx).model = model
    events.emit("info", "model.loaded", **facts)
    messages = [] if names else [W001.at(assets.voices, path=assets.voices)]
    return Outcome(facts=facts, messages=messages)


STAGE = Stage(name="model", run=run, check=check, side=Side.WORKER, exit_code=F5ExitCode.MODEL,
              deadline_s=1800)  # a first boot downloads 1.35 GB (and Whisper's 1.6 GB)
