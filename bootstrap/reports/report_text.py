"""Boot reports for people: a list, one boot as a stage timeline, two boots compared."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bootstrap.kernel.exit_codes import ExitCode
from bootstrap.reports.report import BootReport

BAR_WIDTH = 40


def app_name(boot: BootReport) -> str:
    """The app the boot served, as the report's first line names it."""
    return f"app {boot.app.get('name') or '(none)'}"


def when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def total_ms(boot: BootReport) -> int | None:
    if boot.ended_at is None:
        return None
    return int((boot.ended_at - boot.started_at) * 1000)


def seconds(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def exit_name(code: int | None) -> str:
    if code is None:
        return "-"
    if code > ExitCode.SIGNAL_BASE:
        return f"{code} (signal {code - ExitCode.SIGNAL_BASE})"
    try:
        return f"{code} ({ExitCode(code).name})"
    except ValueError:
        return str(code)


def versions(boot: BootReport) -> dict[str, str]:
    """Package versions any stage reported (a ``versions`` fact)."""
    found: dict[str, str] = {}
    for stage in boot.stages:
        found.update(stage.get("facts", {}).get("versions", {}) or {})
    return found


def warnings(boot: BootReport) -> list[tuple[str, dict[str, str]]]:
    """Each stage's messages at warning level or above, with the stage that gave them."""
    return [(stage["stage"], message) for stage in boot.stages
            for message in stage.get("messages", [])
            if message.get("level") in ("warning", "error", "critical")]


def render_list(reports: list[tuple[Path, BootReport]]) -> str:
    lines = [f"{'started':<23}  {'worker':<16} {'run':<12} {'outcome':<8} {'exit':<14} total"]
    for _, boot in reports:
        lines.append(f"{when(boot.started_at):<23}  {boot.worker_id[:16]:<16} "
                     f"{boot.run_id:<12} {boot.outcome:<8} {exit_name(boot.exit_code):<14} "
                     f"{seconds(total_ms(boot))}")
    return "\n".join(lines)


def _bar(boot: BootReport, stage: dict[str, Any], span_ms: int) -> str:
    start = int(((stage.get("started_at") or boot.started_at) - boot.started_at) * 1000)
    left = min(BAR_WIDTH - 1, int(start / span_ms * BAR_WIDTH))
    width = max(1, int(stage.get("duration_ms", 0) / span_ms * BAR_WIDTH))
    mark = "x" if stage.get("status") == "fail" else "#"
    return " " * left + mark * min(width, BAR_WIDTH - left)


def render_timeline(boot: BootReport, path: Path) -> str:
    span = total_ms(boot) or max(
        (int(((s.get("started_at") or boot.started_at) - boot.started_at) * 1000)
         + s.get("duration_ms", 0) for s in boot.stages), default=1)
    span = max(span, 1)
    lines = [f"boot {boot.run_id} on worker {boot.worker_id} ({boot.mode} mode, "
             f"{app_name(boot)}), {when(boot.started_at)}",
             f"outcome: {boot.outcome}, exit code {exit_name(boot.exit_code)}, "
             f"total {seconds(total_ms(boot))}, ready after {seconds(boot.ready_ms)}",
             f"report: {path}", "",
             f"  {'stage':<12} {'status':<6} {'start':>8} {'took':>9}  |{'timeline':<{BAR_WIDTH}}|"]
    for stage in boot.stages:
        start = ((stage.get("started_at") or boot.started_at) - boot.started_at)
        lines.append(f"  {stage['stage']:<12} {stage['status']:<6} {start:>7.1f}s "
                     f"{seconds(stage.get('duration_ms')):>9}  "
                     f"|{_bar(boot, stage, span):<{BAR_WIDTH}}|")
    found_warnings = warnings(boot)
    if found_warnings:
        lines += ["", "warnings:"]
        for stage_name, message in found_warnings:
            lines.append(f"  {stage_name}: ({message['id']}) {message['msg']}")
            if message.get("hint"):
                lines.append(f"    HINT: {message['hint']}")
    if boot.failure:
        failure = boot.failure
        code = f"({failure['code']}) " if failure.get("code") else ""
        lines += ["", f"failed at stage {failure['stage']}: {code}{failure['msg']}"]
        if failure.get("hint"):
            lines.append(f"  HINT: {failure['hint']}")
        if failure.get("cause"):
            lines.append(f"  cause: {failure['cause']}")
        if failure.get("traceback"):
            lines += ["", failure["traceback"]]
        if failure.get("output_tail"):
            lines += ["", "last output:", *(f"  {line}" for line in failure["output_tail"])]
    found = versions(boot)
    if found:
        lines += ["", "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(found.items()))]
    if boot.worker:
        worker = ", ".join(f"{k}={v}" for k, v in boot.worker.items())
        lines += ["", f"worker process: {worker}"]
    return "\n".join(lines)


def render_compare(a: BootReport, b: BootReport) -> str:
    """What changed from boot A to boot B: outcome, stage durations, versions."""
    lines = [f"{'':<14} {'A ' + a.run_id:<28} {'B ' + b.run_id:<28}",
             f"{'started':<14} {when(a.started_at):<28} {when(b.started_at):<28}",
             f"{'worker':<14} {a.worker_id:<28} {b.worker_id:<28}",
             f"{'outcome':<14} {a.outcome + ' ' + exit_name(a.exit_code):<28} "
             f"{b.outcome + ' ' + exit_name(b.exit_code):<28}",
             f"{'total':<14} {seconds(total_ms(a)):<28} {seconds(total_ms(b)):<28}", ""]
    a_stages = {s["stage"]: s for s in a.stages}
    b_stages = {s["stage"]: s for s in b.stages}
    order = list(a_stages) + [name for name in b_stages if name not in a_stages]
    lines.append(f"{'stage':<14} {'A':>10} {'B':>10} {'change':>12}")
    for name in order:
        sa, sb = a_stages.get(name), b_stages.get(name)
        da = sa.get("duration_ms") if sa else None
        db = sb.get("duration_ms") if sb else None
        change = ""
        if da is not None and db is not None:
            change = f"{db - da:+d} ms" + (f" ({db / da:.2f}x)" if da else "")
        status = ""
        if sa and sb and sa["status"] != sb["status"]:
            status = f"  {sa['status']} -> {sb['status']}"
        elif not sa or not sb:
            status = "  only in " + ("B" if not sa else "A")
        lines.append(f"{name:<14} {seconds(da):>10} {seconds(db):>10} {change:>12}{status}")
    va, vb = versions(a), versions(b)
    changed = [f"{k}: {va.get(k, '-')} -> {vb.get(k, '-')}"
               for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
    lines += ["", "versions changed: " + ("; ".join(changed) if changed else "none")]
    for label, boot in (("A", a), ("B", b)):
        if boot.failure:
            lines.append(f"{label} failed at stage {boot.failure['stage']}: "
                         f"{boot.failure['msg']}")
    return "\n".join(lines)
