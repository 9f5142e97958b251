"""A bounded load test: the real worker (tests/fixtures/serve_f5.py: the real stages, the tiny
model on the CPU, the RunPod SDK's local HTTP server on 127.0.0.1) in its own process, its
own working directory and its own fresh TMPDIR, takes CLIENTS clients at once for about
LOAD_S seconds, each sending a mix of good, bad and hostile jobs to /runsync
(tests/fixtures/job_mix.py says what each one is and what it must get).

The load runs once per module (the ``load`` fixture); each test reads one side of it:
answers, memory, descriptors, files. The worker's baseline is taken after a warm-up of good
and bad jobs; its memory is watched from outside the whole time (VmHWM, reset after the
warm-up, and a sampler that kills it past KILL_ABOVE_MB so that a runaway cannot take this
shared machine down with it).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import job_mix  # the mix and the worker harness, shared with the bench

MB = 1 << 20
CLIENTS = 4
LOAD_S = 60  # then each client finishes its round; the test as a whole takes ~1.5-2 min
MAX_ROUNDS = 300  # per client: a bound on the loop whatever the speed of the machine
# Bounds on the worker's resident set over its baseline (taken after the warm-up: 1.2 GB
# here: torch, F5-TTS, the recognizer, the SDK). Measured on this 2-core machine with this
# mix (main at 1046f00): the 60 s test peaked at +126 MB and settled at +59 MB after; the
# bench's 180 s run (4,156 jobs) peaked at +176 MB and settled at +28 MB; descriptors
# 14 -> 14 in both. The peak is the long answers' (a 70-80 s WAV, its base64 and the JSON
# around it: ~15 MB a copy, several copies) and the allocator's pools; before long texts and
# transcription were in the mix it was +29-43 MB. The bounds leave ~3x room for that
# noise. The after bound catches a leak of about 130 KB per job of any kind (150 MB /
# ~1,200 jobs); smaller leaks are for the bench's longer runs to show (its RSS by quarter).
# What the peak bound is for: one 3001 Hz reference took the code before the fixes from
# 1.17 GB to 3.45 GB during the job (a 24000 x 3000 resampling kernel; back to 1.17 GB
# after, so only the peak bound sees it), and one 48001 Hz reference went past +3 GB within
# a second (24000 x 48000) and was killed by the sampler below.
PEAK_OVER_MB = 500
AFTER_OVER_MB = 150
KILL_ABOVE_MB = 3000  # over baseline: stop a runaway before it reaches the machine's limit
# Open descriptors of the worker may differ from the baseline by this much: none is held
# per job, but the SDK's server may hold a socket of a client still closing its connection.
FD_SLACK = 2

pytestmark = pytest.mark.timeout(420)


@dataclass
class Load:
    worker: job_mix.Worker
    outcomes: list[job_mix.Outcome]
    wall_s: float
    baseline_rss: int
    baseline_fds: int
    baseline_temp: list[str]
    baseline_voices: list[str]
    baseline_tree: list[int]
    peak_hwm: int | None  # VmHWM since the warm-up; None when it could not be reset
    sampled_peak: int
    killed_at: int | None
    alive: bool
    after_rss: int | None
    after_fds: int | None
    after_temp: list[str]
    after_voices: list[str]
    after_tree: list[int]
    events: list[dict[str, Any]]
    outputs: list[str]

    def of(self, kind: str) -> list[job_mix.Outcome]:
        return [o for o in self.outcomes if o.job.kind == kind]

    def problems(self, kind: str) -> list[str]:
        """Each failing case once, with how often it failed and one of its problems."""
        failed: dict[str, tuple[int, str]] = {}
        for o in self.of(kind):
            if o.problem is not None:
                count, _ = failed.get(o.job.name, (0, ""))
                failed[o.job.name] = (count + 1, o.problem)
        sent = Counter(o.job.name for o in self.of(kind))
        return [f"{name}: {count} of {sent[name]} wrong; e.g. {problem}"
                for name, (count, problem) in sorted(failed.items())]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def load(tiny_volume: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Load]:
    workdir = tmp_path_factory.mktemp("load")
    volume = workdir / "volume"  # its own copy: voices are added and outputs written
    shutil.copytree(tiny_volume, volume)
    voices = volume / "models" / "voices"
    worker = job_mix.Worker(volume, workdir)
    worker.start()
    try:
        assets = job_mix.Assets()
        job_mix.warm_up(worker.port, assets)
        shutil.rmtree(volume / "outputs", ignore_errors=True)  # the warm-up's answers
        pid = worker.serving_pid()
        baseline_rss = worker.settled_rss(3)
        baseline_fds = worker.fds()
        baseline_temp, baseline_voices = worker.temp_entries(), _files(voices)
        baseline_tree = worker.tree()
        hwm_reset = job_mix.reset_hwm(pid)
        sampler = job_mix.Sampler(pid, kill_above=baseline_rss + KILL_ABOVE_MB * MB)
        sampler.start()
        outcomes, wall = job_mix.load(worker.port, CLIENTS, LOAD_S, MAX_ROUNDS, assets)
        sampled_peak = sampler.stop()
        alive = worker.alive()
        peak_hwm = job_mix.hwm_bytes(pid) if alive and hwm_reset else None
        after_rss = worker.settled_rss(5) if alive else None
        after_fds = worker.fds() if alive else None
        after_tree = worker.tree() if alive else []
        result = Load(worker, outcomes, wall, baseline_rss, baseline_fds, baseline_temp,
                      baseline_voices, baseline_tree, peak_hwm, sampled_peak,
                      sampler.killed_at, alive, after_rss, after_fds, worker.temp_entries(),
                      _files(voices), after_tree, worker.events(),
                      _files(volume / "outputs") if (volume / "outputs").exists() else [])
        print(f"\nload: {len(outcomes)} jobs in {wall:.1f} s "
              f"({Counter(o.job.kind for o in outcomes)}); RSS baseline "
              f"{baseline_rss / MB:.0f} MB, peak {(peak_hwm or sampled_peak) / MB:.0f} MB, "
              f"after {(after_rss or 0) / MB:.0f} MB; fds {baseline_fds} -> {after_fds}")
        yield result
    finally:
        worker.stop()


def test_the_load_ran_every_case_from_every_client(load: Load) -> None:
    """Guards the test itself: a load that sent nothing would pass everything below."""
    names = Counter(o.job.name for o in load.outcomes)
    every = [j.name for j in (*job_mix.good_jobs(0, 0, job_mix.Assets()), *job_mix.bad_jobs(),
                              *job_mix.hostile_jobs(job_mix.Assets()))]
    assert not [n for n in every if names[n] == 0], f"never sent: {names}"
    assert {o.client for o in load.outcomes} == set(range(CLIENTS))
    assert len(load.of("good")) >= CLIENTS * 6 * 3, "fewer than three rounds per client"


def test_the_worker_is_alive_and_never_ran_away(load: Load) -> None:
    assert load.killed_at is None, (
        f"the worker grew to {load.killed_at / MB:.0f} MB (baseline "
        f"{load.baseline_rss / MB:.0f} MB) and was killed; last jobs: "
        f"{[(o.job.name, o.problem) for o in load.outcomes[-5:]]}")
    assert load.alive, f"the worker died: {load.worker.log()[-2000:]}"
    assert load.after_tree == load.baseline_tree, "processes started or lost under load"


def test_every_good_job_is_answered_correctly(load: Load) -> None:
    assert not load.problems("good")


def test_every_bad_job_is_refused_naming_its_field(load: Load) -> None:
    assert not load.problems("bad")


def test_every_hostile_job_gets_what_it_must(load: Load) -> None:
    """Refused naming its field (or, where job_mix says so, answered) -- see
    ``job_mix.hostile_jobs`` for each case and why."""
    assert not load.problems("hostile")


def test_no_refused_job_reached_the_model(load: Load) -> None:
    """A refusal comes before any compute: the worker logged no synthesis progress for a
    job it refused (the job over the audio bound above all)."""
    refused = {o.job_id for o in load.outcomes if o.status == "FAILED"
               and not str(o.error).startswith("synthesis failed")}
    computed = {e.get("job_id") for e in load.events if e.get("event") == "job.progress"}
    answered = {o.job_id for o in load.outcomes if o.status == "COMPLETED" and o.synthesis}
    assert refused, "no refusal to check"
    # The probe works: every synthesis answered left its progress in the log.
    assert answered and answered <= computed
    assert not refused & computed


def test_peak_memory_stays_bounded(load: Load) -> None:
    peak = load.peak_hwm or load.sampled_peak
    assert peak - load.baseline_rss < PEAK_OVER_MB * MB, (
        f"peak {peak / MB:.0f} MB over a {load.baseline_rss / MB:.0f} MB baseline")


def test_memory_goes_back_to_its_baseline(load: Load) -> None:
    assert load.after_rss is not None, "the worker is gone"
    assert load.after_rss - load.baseline_rss < AFTER_OVER_MB * MB, (
        f"{load.after_rss / MB:.0f} MB after the load, {load.baseline_rss / MB:.0f} MB before")


def test_no_descriptor_is_left_open(load: Load) -> None:
    assert load.after_fds is not None, "the worker is gone"
    assert abs(load.after_fds - load.baseline_fds) <= FD_SLACK, (
        f"{load.after_fds} descriptors after the load, {load.baseline_fds} before")


def test_no_file_is_left_over(load: Load) -> None:
    """No temp dir of a job (``f5tts-*``) or anything else new in the worker's TMPDIR; the
    voice library as it was (every client deleted its voice; no staging or trash left);
    in the outputs folder (local mode keeps each answer) one file per synthesis answered,
    and nothing else."""
    assert not [n for n in load.after_temp if n.startswith("f5tts-")]
    assert load.after_temp == load.baseline_temp
    assert load.after_voices == load.baseline_voices
    answered = {o.job_id for o in load.outcomes if o.status == "COMPLETED" and o.synthesis}
    assert sorted(load.outputs) == sorted(f"{job_id}.wav" for job_id in answered)


def test_a_job_after_the_load_is_answered(load: Load) -> None:
    job = job_mix.good_jobs(7, 7, job_mix.Assets())[0]
    started = time.monotonic()
    status, answer = job_mix.post(load.worker.port, job.body, timeout=60)
    assert job.check(status, answer) is None, (time.monotonic() - started, answer)
