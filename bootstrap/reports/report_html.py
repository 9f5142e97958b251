"""One boot report as a single self-contained HTML page: a waterfall of the stages, the
failure with its hint, and the versions. No external asset, so it opens offline and can
be attached to a ticket as it is."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from bootstrap.reports.report import BootReport
from bootstrap.reports.report_text import (
    app_name,
    exit_name,
    seconds,
    total_ms,
    versions,
    warnings,
    when,
)

COLOURS = {"ok": "#2e9d58", "warn": "#d9a21b", "skip": "#9aa3ad", "fail": "#d64545"}
ROW, LABEL, CHART, PAD = 30, 130, 640, 10

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:860px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px} .meta{color:#5a6472;margin-bottom:16px}
.outcome{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.failure{border-left:4px solid #d64545;background:#fdf1f1;padding:10px 14px;margin:16px 0}
.warning{border-left:4px solid #d9a21b;background:#fdf6e0;padding:10px 14px;margin:16px 0}
.hint{font-weight:600} pre{background:#f3f4f6;padding:10px;overflow-x:auto;font-size:12px}
table{border-collapse:collapse} td,th{padding:3px 12px 3px 0;text-align:left}
svg text{font:12px system-ui,sans-serif}
"""


def _waterfall(boot: BootReport) -> str:
    span = total_ms(boot) or 1
    for stage in boot.stages:
        end = int(((stage.get("started_at") or boot.started_at) - boot.started_at) * 1000
                  ) + stage.get("duration_ms", 0)
        span = max(span, end, 1)
    height = PAD * 2 + ROW * len(boot.stages) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL + CHART + 90}" '
             f'height="{height}" role="img" aria-label="stage waterfall">']
    for i, stage in enumerate(boot.stages):
        y = PAD + i * ROW
        offset = ((stage.get("started_at") or boot.started_at) - boot.started_at) * 1000
        x = LABEL + offset / span * CHART
        width = max(2.0, stage.get("duration_ms", 0) / span * CHART)
        colour = COLOURS.get(stage.get("status", ""), "#6b7785")
        parts.append(f'<text x="0" y="{y + 18}">{escape(stage["stage"])}</text>'
                     f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 10}" '
                     f'rx="3" fill="{colour}"><title>{escape(stage["stage"])}: '
                     f'{escape(stage.get("status", ""))}, '
                     f'{seconds(stage.get("duration_ms"))}</title></rect>'
                     f'<text x="{x + width + 6:.1f}" y="{y + 18}">'
                     f'{seconds(stage.get("duration_ms"))}</text>')
    axis_y = PAD + ROW * len(boot.stages) + 12
    parts.append(f'<line x1="{LABEL}" y1="{axis_y - 8}" x2="{LABEL + CHART}" y2="{axis_y - 8}" '
                 f'stroke="#c4c9d0"/><text x="{LABEL}" y="{axis_y + 6}">0 s</text>'
                 f'<text x="{LABEL + CHART - 40}" y="{axis_y + 6}">{span / 1000:.1f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _failure(failure: dict[str, Any]) -> str:
    code = f"({escape(failure['code'])}) " if failure.get("code") else ""
    out = [f'<div class="failure"><div><b>failed at stage {escape(failure["stage"])}:</b> '
           f'{code}{escape(failure["msg"])}</div>']
    if failure.get("hint"):
        out.append(f'<div class="hint">HINT: {escape(failure["hint"])}</div>')
    if failure.get("cause"):
        out.append(f"<div>cause: {escape(failure['cause'])}</div>")
    if failure.get("traceback"):
        out.append(f"<pre>{escape(failure['traceback'])}</pre>")
    out.append("</div>")
    return "".join(out)


def _warning(stage: str, message: dict[str, str]) -> str:
    out = [f'<div class="warning"><div><b>warning at stage {escape(stage)}:</b> '
           f'({escape(message["id"])}) {escape(message["msg"])}</div>']
    if message.get("hint"):
        out.append(f'<div class="hint">HINT: {escape(message["hint"])}</div>')
    out.append("</div>")
    return "".join(out)


def render_html(boot: BootReport) -> str:
    outcome_colour = {"ok": "#2e9d58", "ready": "#2e9d58", "failed": "#d64545"}.get(
        boot.outcome, "#9aa3ad")
    body = [f"<h1>boot {escape(boot.run_id)} on worker {escape(boot.worker_id)}</h1>",
            f'<div class="meta">{escape(boot.mode)} mode, {escape(app_name(boot))}, '
            f"{when(boot.started_at)}, "
            f"total {seconds(total_ms(boot))}, ready after {seconds(boot.ready_ms)}, "
            f"exit code {escape(exit_name(boot.exit_code))}</div>",
            f'<span class="outcome" style="background:{outcome_colour}">'
            f"{escape(boot.outcome)}</span>",
            "<h2>Stages</h2>", _waterfall(boot)]
    body += [_warning(stage, message) for stage, message in warnings(boot)]
    if boot.failure:
        body.append(_failure(boot.failure))
    found = versions(boot)
    if found:
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>"
                       for k, v in sorted(found.items()))
        body.append(f"<h2>Versions</h2><table>{rows}</table>")
    details = json.dumps({"stages": boot.stages, "worker": boot.worker, "host": boot.host},
                         indent=2, default=str)
    body.append(f"<details><summary>all facts</summary><pre>{escape(details)}</pre></details>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>boot {escape(boot.run_id)}: {escape(boot.outcome)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
