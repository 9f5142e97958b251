"""What the driver (NVML) and torch say about the GPUs, as plain facts.

This is the seam the cuda stage's tests substitute: no GPU exists on the machines that
run the suite, so the GPU paths are tested against fakes of :class:`Nvml` and
:class:`TorchCuda`; the real classes here are what runs on a worker. Both import their
libraries lazily: the supervisor imports the stage list and must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class NvmlUnavailable(Exception):
    """NVML could not be used: no library (no driver mounted) or no driver loaded."""


class TorchUnavailable(Exception):
    """torch is not importable in this interpreter."""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total_mb: int
    free_mb: int
    capability: tuple[int, int]

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"


@dataclass(frozen=True)
class DriverFacts:
    driver: str  # e.g. "550.54.15"
    cuda: tuple[int, int]  # the newest CUDA this driver supports, e.g. (12, 4)
    gpus: tuple[Gpu, ...] = ()


@dataclass(frozen=True)
class TorchFacts:
    version: str
    cuda: str | None  # torch.version.cuda; None for a CPU-only build
    available: bool
    device_count: int = 0
    arch_list: tuple[str, ...] = ()
    # Why torch.cuda could not initialise (its own words), when it could not.
    error: str = ""
    names: tuple[str, ...] = field(default=())
    capabilities: tuple[tuple[int, int], ...] = field(default=())


class Nvml(Protocol):
    def read(self) -> DriverFacts: ...


class TorchCuda(Protocol):
    def read(self) -> TorchFacts: ...

    def smoke(self, device: str) -> None:
        """A matmul and a convolution (cuDNN on a GPU) on ``device``; raises on failure."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RealNvml:
    def read(self) -> DriverFacts:
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlUnavailable(f"nvidia-ml-py is not installed ({exc})") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            # LibraryNotFound: no libnvidia-ml (no GPU passed through); DriverNotLoaded.
            raise NvmlUnavailable(str(exc)) from exc
        try:
            version = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12040
            gpus = []
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                gpus.append(Gpu(index, _text(pynvml.nvmlDeviceGetName(handle)),
                                int(memory.total) >> 20, int(memory.free) >> 20,
                                (int(major), int(minor))))
            return DriverFacts(_text(pynvml.nvmlSystemGetDriverVersion()),
                               (version // 1000, version % 1000 // 10), tuple(gpus))
        except pynvml.NVMLError as exc:
            raise NvmlUnavailable(str(exc)) from exc
        finally:
            pynvml.nvmlShutdown()


class RealTorch:
    def read(self) -> TorchFacts:
        try:
            import torch
        except ImportError as exc:
            raise TorchUnavailable(str(exc)) from exc

        error = ""
        try:
            # is_available() hides the reason; initialising says it ("driver too old").
            torch.cuda.init()
            available = torch.cuda.is_available()
        except Exception as exc:  # torch raises RuntimeError/AssertionError/... here
            available, error = False, f"{type(exc).__name__}: {exc}"
        count = torch.cuda.device_count() if available else 0
        return TorchFacts(
            version=torch.__version__,
            cuda=torch.version.cuda,
            available=available,
            device_count=count,
            arch_list=tuple(torch.cuda.get_arch_list()) if available else (),
            error=error,
            names=tuple(torch.cuda.get_device_name(i) for i in range(count)),
            capabilities=tuple(torch.cuda.get_device_capability(i) for i in range(count)),
        )

    def smoke(self, device: str) -> None:
        import torch

        dev = torch.device(device)
        a = torch.randn(64, 64, device=dev)
        product = a @ a.T
        conv = torch.nn.functional.conv1d(torch.randn(1, 8, 128, device=dev),
                                          torch.randn(8, 8, 3, device=dev), padding=1)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if not (torch.isfinite(product).all() and torch.isfinite(conv).all()):
            raise RuntimeError(f"non-finite result on {device}")
