"""The cuda stage's GPU paths, against substituted NVML and torch answers.

No GPU exists where the suite runs, so these use fakes of the two probes (named as such);
the real no-GPU path is in ``tests/f5/test_stages.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from bootstrap.gpu import DriverFacts, Gpu, NvmlUnavailable, TorchFacts, TorchUnavailable
from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.kernel.message import Message
from bootstrap.kernel.stage import StageFailed
from bootstrap.stages import cuda

H100 = Gpu(0, "NVIDIA H100 80GB HBM3", 81559, 80000, (9, 0))
ARCHS = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")


@dataclass
class FakeNvml:
    """Stands in for the driver: what NVML would answer, or that it is missing."""

    facts: DriverFacts | None = None
    missing: str = "NVML Shared Library Not Found"

    def read(self) -> DriverFacts:
        if self.facts is None:
            raise NvmlUnavailable(self.missing)
        return self.facts


@dataclass
class FakeTorch:
    """Stands in for torch.cuda: its build, what it sees, and a smoke test that may fail."""

    facts: TorchFacts
    smoke_error: Exception | None = None
    smoked: list[str] = field(default_factory=list)

    def read(self) -> TorchFacts:
        return self.facts

    def smoke(self, device: str) -> None:
        self.smoked.append(device)
        if self.smoke_error:
            raise self.smoke_error


def cuda_torch(**over: object) -> TorchFacts:
    base: dict[str, object] = dict(version="2.9.1+cu128", cuda="12.8", available=True,
                                   device_count=1, arch_list=ARCHS, names=(H100.name,),
                                   capabilities=(H100.capability,))
    base.update(over)
    return TorchFacts(**base)  # type: ignore[arg-type]


def about(message: Message, obj: str) -> Message:
    """``message`` about ``obj``; messages compare by id and obj, so wording stays free."""
    return replace(message, obj=obj)


def make_ctx(tmp_path: Path, allow_cpu: bool = False, min_vram_mb: int = 3072) -> Context:
    return Context(Config(volume=tmp_path, allow_cpu=allow_cpu, min_vram_mb=min_vram_mb),
                   run_id="r", worker_id="w")


def driver(cuda_version: tuple[int, int] = (12, 8), *gpus: Gpu) -> DriverFacts:
    return DriverFacts("570.86.15", cuda_version, gpus or (H100,))


def test_healthy_gpu_is_chosen_and_smoke_tested(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    torch = FakeTorch(cuda_torch())
    outcome = cuda.run(ctx, FakeNvml(driver()), torch)
    assert ctx.device == "cuda:0"
    assert torch.smoked == ["cuda:0"]
    assert outcome.messages == []
    assert outcome.facts["gpus"][0]["sm"] == "sm_90"


def test_cpu_only_torch_on_a_gpu_machine_is_named(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    fake = FakeTorch(TorchFacts("2.9.1+cpu", None, False, error="Torch not compiled with CUDA"))
    with pytest.raises(StageFailed) as failed:
        cuda.run(ctx, FakeNvml(driver()), fake)
    assert failed.value.message == about(cuda.E001, "torch")
    assert "2.9.1+cpu" in failed.value.message.msg
    assert ctx.device is None


def test_driver_older_than_torch_cuda_is_named_with_both_versions(tmp_path: Path) -> None:
    fake = FakeTorch(cuda_torch(available=False, device_count=0,
                                error="RuntimeError: The NVIDIA driver on your system is too old"))
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(driver((11, 8))), fake)
    assert failed.value.message == about(cuda.E002, "driver")
    assert "CUDA 11.8" in failed.value.message.msg and "12.8" in failed.value.message.msg


def test_older_driver_that_still_works_is_a_warning(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    outcome = cuda.run(ctx, FakeNvml(driver((12, 4))), FakeTorch(cuda_torch()))
    assert outcome.messages == [about(cuda.W002, "driver")]
    assert ctx.device == "cuda:0"


def test_gpu_arch_missing_from_torch_is_named(tmp_path: Path) -> None:
    blackwell = Gpu(0, "NVIDIA RTX PRO 6000", 97000, 96000, (12, 0))
    fake = FakeTorch(cuda_torch(names=(blackwell.name,), capabilities=((12, 0),)))
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(driver((12, 8), blackwell)), fake)
    assert failed.value.message == about(cuda.E003, blackwell.name)
    assert "sm_120" in failed.value.message.msg
    assert fake.smoked == []


@pytest.mark.parametrize(("capability", "archs", "ok"), [
    ((8, 6), ("sm_80",), True),  # same major, newer minor runs the cubin
    ((8, 0), ("sm_86",), False),
    ((12, 0), ("sm_90", "compute_90"), True),  # PTX is JIT-compiled for newer GPUs
    ((7, 5), ("sm_80", "compute_80"), False),
])
def test_arch_compatibility_rules(capability: tuple[int, int], archs: tuple[str, ...],
                                  ok: bool) -> None:
    assert cuda.has_kernels(capability, archs) is ok


def test_too_little_free_vram_is_named(tmp_path: Path) -> None:
    busy = Gpu(0, "NVIDIA A10", 22731, 900, (8, 6))
    fake = FakeTorch(cuda_torch(names=(busy.name,), capabilities=((8, 6),)))
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(driver((12, 8), busy)), fake)
    assert failed.value.message == about(cuda.E005, "cuda:0")
    assert "900 MB" in failed.value.message.msg and "3072 MB" in failed.value.message.msg


def test_the_gpu_with_most_free_memory_is_chosen(tmp_path: Path) -> None:
    full = Gpu(0, "NVIDIA A100", 81000, 2000, (8, 0))
    empty = Gpu(1, "NVIDIA A100", 81000, 80000, (8, 0))
    ctx = make_ctx(tmp_path)
    cuda.run(ctx, FakeNvml(driver((12, 8), full, empty)),
             FakeTorch(cuda_torch(device_count=2, capabilities=((8, 0), (8, 0)))))
    assert ctx.device == "cuda:1"


def test_failed_smoke_test_is_named_with_the_cuda_error(tmp_path: Path) -> None:
    fake = FakeTorch(cuda_torch(), smoke_error=RuntimeError("CUDNN_STATUS_NOT_INITIALIZED"))
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(driver()), fake)
    assert failed.value.message == about(cuda.E006, "cuda:0")
    assert "CUDNN_STATUS_NOT_INITIALIZED" in failed.value.cause


def test_driver_sees_gpus_torch_cannot_use_them(tmp_path: Path) -> None:
    fake = FakeTorch(cuda_torch(available=False, device_count=0, error="CUDA error: unknown"))
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(driver()), fake)
    assert failed.value.message == about(cuda.E007, "torch")
    assert "CUDA error: unknown" in failed.value.cause


def test_no_gpu_fails_unless_cpu_is_allowed(tmp_path: Path) -> None:
    no_gpu = FakeTorch(cuda_torch(available=False, device_count=0, arch_list=(),
                                  error="Found no NVIDIA driver on your system"))
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(None), no_gpu)
    assert failed.value.message == about(cuda.E004, "cuda")

    ctx = make_ctx(tmp_path, allow_cpu=True)
    outcome = cuda.run(ctx, FakeNvml(None), no_gpu)
    assert ctx.device == "cpu"
    assert outcome.messages == [about(cuda.W001, "cpu")]
    assert no_gpu.smoked == ["cpu"]


def test_check_reports_without_smoke_testing(tmp_path: Path) -> None:
    fake = FakeTorch(TorchFacts("2.9.1+cpu", None, False))
    assert cuda.check(make_ctx(tmp_path), FakeNvml(driver()), fake) == [about(cuda.E001, "torch")]
    assert fake.smoked == []


class FakeMissingTorch(FakeTorch):
    """Stands in for an environment where ``import torch`` fails."""

    def read(self) -> TorchFacts:
        raise TorchUnavailable("No module named 'torch'")


def test_torch_not_installed_is_named(tmp_path: Path) -> None:
    fake = FakeMissingTorch(cuda_torch())
    with pytest.raises(StageFailed) as failed:
        cuda.run(make_ctx(tmp_path), FakeNvml(driver()), fake)
    assert failed.value.message == about(cuda.E008, "torch")
    assert "No module named 'torch'" in failed.value.cause
