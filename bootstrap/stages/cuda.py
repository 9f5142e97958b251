"""cuda: proves the GPU before anything heavy is loaded onto it, and chooses the device.

The driver (through NVML) and torch are asked separately, because their disagreement is
the failure: a CPU-only torch on a GPU machine, a driver older than torch's CUDA, a GPU
whose ``sm_XY`` torch has no kernels for. A matmul and a convolution then run on the
chosen device. The device goes to ``ctx.device`` for the app's stages; the CPU is
chosen only when ``allow_cpu`` is set, and then a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bootstrap.gpu import (
    DriverFacts,
    Gpu,
    Nvml,
    NvmlUnavailable,
    RealNvml,
    RealTorch,
    TorchCuda,
    TorchFacts,
    TorchUnavailable,
)
from bootstrap.kernel import events
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.kernel.message import Message, error, warning
from bootstrap.kernel.output import Output
from bootstrap.kernel.stage import Outcome, Side, Stage, StageFailed

DEVICE: Output[str] = Output("device", __name__)  # "cuda:0", or "cpu" where allowed

E001 = error("cuda.E001", "torch {torch} is a CPU-only build on a machine with a GPU",
             "install a CUDA build of torch (the Linux wheel on PyPI is one), not a +cpu wheel")
E002 = error("cuda.E002", "driver {driver} supports CUDA {driver_cuda}; torch {torch} "
             "needs {torch_cuda}",
             "pick hosts with a newer driver (RunPod: filter workers by CUDA version) "
             "or a torch built for CUDA {driver_cuda}")
E003 = error("cuda.E003", "{gpu} is {sm}; torch {torch} has no kernels for it",
             "use a torch build whose arch list has {sm} (it has {archs}), or another GPU type")
E004 = error("cuda.E004", "no GPU is visible to this worker",
             "choose a GPU endpoint/pod; on a developer machine set BOOTSTRAP_ALLOW_CPU=1")
E005 = error("cuda.E005", "{free_mb} MB free on {device}; the model needs {need_mb} MB",
             "another process holds the GPU, or pick a larger GPU; BOOTSTRAP_MIN_VRAM_MB "
             "sets the need")
E006 = error("cuda.E006", "the smoke test (matmul + conv) failed on {device}",
             "the cause names the CUDA/cuDNN error; a wrong torch/CUDA pairing is typical")
E007 = error("cuda.E007", "the driver sees {count} GPU(s) but torch cannot use them",
             "the cause is torch's own reason; check the driver and torch's CUDA version")
E008 = error("cuda.E008", "torch is not importable in the worker's environment",
             "add torch to the environment (the app's requirements); the cause is the "
             "import error")
W001 = warning("cuda.W001", "running on the CPU: {reason}",
               "allowed by allow_cpu (local mode); a model runs many times slower there")
W002 = warning("cuda.W002", "driver CUDA {driver_cuda} is older than torch's {torch_cuda}",
               "it runs on CUDA minor-version compatibility; a newer driver is safer")


def _version(text: str) -> tuple[int, int]:
    major, _, rest = text.partition(".")
    return int(major), int(rest.partition(".")[0] or 0)


def _fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def has_kernels(capability: tuple[int, int], arch_list: tuple[str, ...]) -> bool:
    """Whether torch can run on a GPU of ``capability``.

    A cubin for sm_XY runs on the same major with an equal or higher minor; PTX
    (``compute_XY``) is JIT-compiled for any equal or newer GPU.
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


@dataclass
class Assessment:
    device: str = "cpu"
    messages: list[Message] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.is_serious]


def _cpu(result: Assessment, allow_cpu: bool, refusal: Message, reason: str) -> Assessment:
    result.device = "cpu"
    result.messages.append(W001.at("cpu", reason=reason) if allow_cpu else refusal)
    return result


def assess(driver: DriverFacts | None, nvml_error: str, tf: TorchFacts, allow_cpu: bool,
           min_vram_mb: int) -> Assessment:
    """The device to use and what is wrong, from what the driver and torch say."""
    result = Assessment(facts={
        "torch": tf.version, "torch_cuda": tf.cuda, "cuda_available": tf.available,
        "arch_list": list(tf.arch_list),
        "driver": driver.driver if driver else None,
        "driver_cuda": _fmt(driver.cuda) if driver else None,
        "gpus": [{"name": g.name, "sm": g.sm, "total_mb": g.total_mb, "free_mb": g.free_mb}
                 for g in (driver.gpus if driver else ())],
    })
    if nvml_error:
        result.facts["nvml"] = nvml_error
    gpus = driver.gpus if driver else ()
    if tf.cuda is None:
        if gpus:
            return _cpu(result, allow_cpu, E001.at("torch", torch=tf.version),
                        f"torch {tf.version} is a CPU-only build")
        return _cpu(result, allow_cpu, E004.at("cuda"), "no GPU and a CPU-only torch")
    if driver and _version(tf.cuda) > driver.cuda:
        fields = {"driver": driver.driver, "driver_cuda": _fmt(driver.cuda),
                  "torch": tf.version, "torch_cuda": tf.cuda}
        if not tf.available:
            result.messages.append(E002.at("driver", **fields))
            return result
        result.messages.append(W002.at("driver", **fields))
    if not tf.available:
        if gpus:
            result.messages.append(E007.at("torch", count=len(gpus)))
            result.facts["torch_error"] = tf.error
            return result
        return _cpu(result, allow_cpu, E004.at("cuda"), "no GPU is visible")
    if not gpus:  # NVML missing but torch sees devices: take torch's word for them
        gpus = tuple(Gpu(i, tf.names[i], 0, 0, tf.capabilities[i])
                     for i in range(tf.device_count))
    usable = [g for g in gpus if has_kernels(g.capability, tf.arch_list)]
    if not usable:
        gpu = gpus[0]
        result.messages.append(E003.at(gpu.name, gpu=gpu.name, sm=gpu.sm, torch=tf.version,
                                       archs=" ".join(tf.arch_list)))
        return result
    best = max(usable, key=lambda g: g.free_mb)
    result.device = f"cuda:{best.index}"
    # Without NVML the free memory is unknown here (0); the model stage reports it.
    if driver and best.free_mb < min_vram_mb:
        result.messages.append(E005.at(result.device, device=f"{result.device} ({best.name})",
                                       free_mb=best.free_mb, need_mb=min_vram_mb))
    return result


def inspect(ctx: Context, nvml: Nvml, torch: TorchCuda) -> Assessment:
    driver, nvml_error = None, ""
    try:
        driver = nvml.read()
    except NvmlUnavailable as exc:
        nvml_error = str(exc)
    try:
        facts = torch.read()
    except TorchUnavailable as exc:
        return Assessment(messages=[E008.at("torch")], facts={"torch_error": str(exc)})
    return assess(driver, nvml_error, facts, ctx.config.allow_cpu, ctx.config.min_vram_mb)


def check(ctx: Context, nvml: Nvml | None = None, torch: TorchCuda | None = None
          ) -> list[Message]:
    return inspect(ctx, nvml or RealNvml(), torch or RealTorch()).messages


def run(ctx: Context, nvml: Nvml | None = None, torch: TorchCuda | None = None) -> Outcome:
    torch = torch or RealTorch()
    result = inspect(ctx, nvml or RealNvml(), torch)
    events.emit("info", "cuda.facts", **result.facts)
    if result.errors:
        first = result.errors[0]
        raise StageFailed(first, cause=str(result.facts.get("torch_error", "")))
    try:
        torch.smoke(result.device)
    except Exception as exc:
        raise StageFailed(E006.at(result.device, device=result.device),
                          cause=f"{type(exc).__name__}: {exc}") from exc
    if result.device == "cpu":
        events.emit("warn", "cuda.cpu", msg="no GPU in use: the model will run on the CPU",
                    reason=result.messages[0].msg if result.messages else "")
    DEVICE.set(ctx, result.device)
    result.facts["device"] = result.device
    return Outcome(facts=result.facts, messages=result.messages)


STAGE = Stage(name="cuda", run=run, check=check, side=Side.WORKER, exit_code=ExitCode.CUDA,
              deadline_s=120)
