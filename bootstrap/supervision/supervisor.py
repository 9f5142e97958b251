"""The supervisor: ``bootstrap run``.

A light process (system Python, never torch) that runs the supervisor stages, starts the
worker in the prepared environment, and outlives it: whatever happens to the worker, the
supervisor turns it into a cause, writes the boot report, prints one final summary line,
and exits with the documented code. It may be PID 1 (no tini), so it forwards stop
signals and reaps orphans.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from types import FrameType

import bootstrap
from bootstrap import pipeline, runpod_failed_job
from bootstrap.environment.envbuild import PYTHON
from bootstrap.health.watch import HealthWatch
from bootstrap.kernel import app as apps
from bootstrap.kernel import events, redaction
from bootstrap.kernel.config import Config
from bootstrap.kernel.context import Context
from bootstrap.kernel.exit_codes import ExitCode, for_signal
from bootstrap.kernel.protocol import Failure, StageResult, Status
from bootstrap.kernel.runner import Shutdown, StageLoop
from bootstrap.kernel.stage import Lifecycle, Phase
from bootstrap.reports import report
from bootstrap.supervision import worker
from bootstrap.supervision.monitor import Monitor, WorkerEnd, read_from
from bootstrap.supervision.worker import FAULT_LOG


def worker_identity() -> str:
    return os.environ.get("RUNPOD_POD_ID") or socket.gethostname()


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.ctx = Context(config, uuid.uuid4().hex[:12], worker_identity())
        self.lifecycle = Lifecycle()
        self.report = report.BootReport(self.ctx.run_id, self.ctx.worker_id, config.mode,
                                        {"name": apps.load(config.app).name,
                                         "target": config.app})
        self.started = time.monotonic()
        self.monitor: Monitor | None = None
        # How long a report may take to reach the volume; None: as long as it takes.
        self.report_wait_s: float | None = None
        # Taken by the thread that writes the summary, never given back: when the watchdog
        # thread ends a stuck boot, a main thread that wakes up late must not write a second.
        self._one_summary = threading.RLock()
        # The supervisor's own stages: deadlines watched in this process.
        self.loop = StageLoop(self.ctx, watch=True, on_stuck=self._end_stuck_stage,
                              on_result=lambda result: self.report.stages.append(result.to_dict()))
        # The health path of a load-balancing endpoint, answered from the first second.
        self.health = HealthWatch(config, self._current_stage)

    # -- entry point ----------------------------------------------------------------------

    def run(self) -> int:
        events.bind(run_id=self.ctx.run_id, worker_id=self.ctx.worker_id, process="supervisor")
        self.health.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        events.emit("info", "boot", msg="boot started", mode=self.config.mode,
                    version=bootstrap.__version__, pid=os.getpid(),
                    volume=str(self.config.volume))
        report.announce_previous(self.config, self.ctx.worker_id)
        # Saved as "booting" now, so that if this whole container is SIGKILLed mid-boot
        # the next boot on the volume can still say so.
        report.save(self.report, self.config)
        try:
            self.lifecycle.advance(Phase.BOOTING)
            failed = self.loop.run(pipeline.supervisor_stages())
            if failed is not None and failed.failure is not None:
                return self._finish_failed(failed.failure)
            return self._run_worker()
        except Shutdown as stop:
            current = self.loop.current
            return self._finish_stopped(stop.signum, current.name if current else None)
        except Exception as exc:  # a bug in bootstrap itself: still one summary, one report
            return self._finish_failed(Failure(
                stage="supervisor", exit_code=int(ExitCode.INTERNAL),
                msg=f"unexpected error in bootstrap: {type(exc).__name__}: {exc}",
                hint="this is a bug in bootstrap; please report it with the boot report",
                cause="internal", traceback=redaction.redact(traceback.format_exc())))

    def _on_stop_signal(self, signum: int, _: FrameType | None) -> None:
        if self.monitor is not None:
            events.emit("warn", "stop", signal=signal.Signals(signum).name,
                        msg="stop requested; forwarding to the worker")
            self.monitor.request_stop(signum)
        elif not self.lifecycle.finished:
            raise Shutdown(signum)

    def _end_stuck_stage(self, failure: Failure) -> None:
        """A stage interrupted at its deadline did not stop (a wait no signal ends): the
        boot ends from the watchdog's thread, with the same report and summary.

        The volume may be what hangs, so the report waits for it at most ``stop_grace_s``
        before it goes to the fallback directory. A request a FUSE daemon took and never
        answers holds even a killed thread: the process then ends only when the volume
        answers or the platform removes the container, but its story is already out."""
        self.report_wait_s = self.config.stop_grace_s  # the volume may be what hangs
        started_at = self.loop.started_at or time.time()
        self.report.stages.append(StageResult(
            failure.stage, Status.FAIL, int((time.time() - started_at) * 1000), failure=failure,
            started_at=started_at).to_dict())
        os._exit(self._finish_failed(failure))

    # -- the worker -----------------------------------------------------------------------

    def _run_worker(self) -> int:
        report.save(self.report, self.config)  # the supervisor stages, before the worker
        python = str(PYTHON.get(self.ctx) or sys.executable)
        run_dir = Path(tempfile.mkdtemp(prefix=f"bootstrap-{self.ctx.run_id}-"))
        argv = [python, "-m", "bootstrap.supervision.worker"]
        events.emit("info", "worker.start", argv=argv, msg="starting the worker")
        # Not through bootstrap.kernel.command: that wrapper is for bounded commands whose output is
        # a tail; the worker lives as long as the boot and the Monitor owns its every line.
        # The protocol's own channel: the worker writes events here, its stdout is the app's.
        events_read, events_write = os.pipe()
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=worker.environment(self.config, self.ctx.run_id, self.ctx.worker_id, run_dir,
                                       events_write),
                text=True, errors="replace", pass_fds=(events_write,))
        except OSError as exc:
            os.close(events_read)
            shutil.rmtree(run_dir, ignore_errors=True)
            return self._finish_failed(Failure(
                stage="worker", exit_code=int(ExitCode.WORKER_START),
                msg=f"the worker could not be started: {exc.strerror or exc}",
                hint=f"the interpreter {python} is missing or not executable; "
                     "the venv stage decides which one is used",
                cause="exec"))
        finally:
            os.close(events_write)  # the worker's copy is the only writer: EOF when it ends
        channel = open(events_read, encoding="utf-8", errors="replace")  # noqa: SIM115 - the pump's
        self.monitor = Monitor(proc, channel, run_dir / FAULT_LOG, self.config.stop_grace_s,
                               stages=self.report.stages, on_ready=self._on_ready)
        end = self.monitor.watch()
        if end.unfinished_stage is not None:  # the worker died inside it: no end event came
            stage = end.unfinished_stage
            self.report.stages.append(StageResult(
                stage.name, Status.FAIL, int((time.monotonic() - stage.started) * 1000),
                started_at=stage.started_at).to_dict())
        self.report.worker = end.death.to_dict()
        crash_stack = redaction.redact(read_from(run_dir / FAULT_LOG, 0).strip())
        shutil.rmtree(run_dir, ignore_errors=True)  # one per boot in /tmp: never left behind
        if end.stopped_by is not None:
            last = self.report.stages[-1]["stage"] if self.report.stages else None
            return self._finish_stopped(end.stopped_by, "serve" if self.report.ready_ms
                                        is not None else last)
        failure = end.failure or self._failure_from_death(end, crash_stack)
        if failure is not None:
            return self._finish_failed(failure, end.output_tail)
        return self._finish_ok()

    def _on_ready(self) -> None:
        self.lifecycle.advance(Phase.READY)
        self.report.outcome = "ready"
        self.report.ready_ms = self._elapsed_ms()
        report.save(self.report, self.config)
        events.emit("info", "boot.ready", msg="boot complete; the worker is serving",
                    ready_ms=self.report.ready_ms, stages=self.report.stage_durations())
        self.health.worker_ready()
        self._tasks_ready()

    def _tasks_ready(self) -> None:
        """What the supervisor's stages left running may now do what waits for a ready boot."""
        for task in self.loop.tasks:
            task.ready()

    def _failure_from_death(self, end: WorkerEnd, crash_stack: str) -> Failure | None:
        """A failure the worker could not report itself: a signal, or an exit mid-stage.
        ``crash_stack`` is what faulthandler wrote when the worker crashed, if it did."""
        death, stage = end.death, end.unfinished_stage
        where = f" during stage {stage.name}" if stage else " before its first stage"
        name = stage.name if stage else "worker"
        if death.signal is not None:
            return Failure(name, for_signal(death.signal), death.describe() + where,
                           hint=death.hint(), cause="oom" if death.oom_killed
                           else death.signal_name, traceback=crash_stack)
        if stage is None and death.exit_code == 0:
            return None
        code = stage.fail_exit_code if stage else int(ExitCode.WORKER_START)
        hint = ("the lines before this one are its last words; a stage should raise "
                "StageFailed instead of ending the process" if stage else
                "the worker's interpreter could not start bootstrap; its output is above")
        return Failure(name, code, death.describe() + where, hint=hint,
                       cause=f"exit {death.exit_code}", traceback=crash_stack)

    # -- the end: report first, then the one summary line ---------------------------------

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _summary(self, level: str, status: str, exit_code: int, **fields: object) -> int:
        self._one_summary.acquire()  # a second caller waits here for the first one's exit
        for task in self.loop.tasks:  # the summary is the boot's last line: theirs come first
            task.finish(self.config.stop_grace_s)
        self.report.exit_code = exit_code
        self.report.ended_at = time.time()
        path = report.save(self.report, self.config, self.report_wait_s)
        if status == "fail" and self.report.ready_ms is None:  # a boot that never served
            runpod_failed_job.after_failed_boot(self.config, self.report.failure or {}, path,
                                                self.ctx.run_id, self.ctx.worker_id)
        events.emit(level, "summary", status=status, exit_code=exit_code,
                    total_ms=self._elapsed_ms(), stages=self.report.stage_durations(),
                    report=str(path) if path else None, **fields)
        return exit_code

    def _finish_ok(self) -> int:
        if self.report.ready_ms is None:  # a boot that does not serve is never ready
            self._tasks_ready()
        self.lifecycle.advance(Phase.STOPPED)
        self.report.outcome = "ok"
        return self._summary("info", "ok", int(ExitCode.OK), msg="the worker finished cleanly")

    def _finish_stopped(self, signum: int, stage: str | None) -> int:
        """A stop signal ended the boot: where it found it, and what usually sends one."""
        ready = self.report.ready_ms is not None
        self.health.stopped()
        self.lifecycle.advance(Phase.STOPPING)
        self.lifecycle.advance(Phase.STOPPED)
        self.report.outcome = "stopped"
        name = signal.Signals(signum).name
        where = stage or "before its first stage"
        if ready:
            hint = ("the platform stopped a worker that was serving (scaling down, an idle "
                    "timeout, a new release): a normal end")
        else:
            hint = (f"stopped before it was ready, in {where}: the platform scaling the "
                    "endpoint down, or the boot running past the endpoint's initialization "
                    "timeout; the stage timings show where the time went (bootstrap report)")
        return self._summary("warn", "stopped", for_signal(signum), stage=stage,
                             msg=f"stopped on {name} in {where}", hint=hint, cause=name)

    def _finish_failed(self, failure: Failure, output_tail: list[str] | None = None) -> int:
        self.lifecycle.advance(Phase.SETUP_FAILED)
        self.report.outcome = "failed"
        self.report.failure = failure.to_dict()
        if output_tail:
            self.report.failure["output_tail"] = output_tail
        if not any(s.get("stage") == failure.stage for s in self.report.stages):
            self.report.stages.append(
                StageResult(failure.stage, Status.FAIL, 0, started_at=time.time()).to_dict())
        fields = failure.to_dict()
        del fields["exit_code"]
        self.health.failed(failure.to_dict())
        code = self._summary("error", "fail", failure.exit_code, **fields)
        self.health.hold()
        return code

    def _current_stage(self) -> str | None:
        """The stage running now, the worker's or this process's (the health path's 204)."""
        if self.monitor is not None:
            return self.monitor.stage.name if self.monitor.stage else None
        return self.loop.current.name if self.loop.current else None
