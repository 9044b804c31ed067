"""Logging set-up and the one-summary-per-pass view people read on a terminal.

structlog renders readable lines on a terminal and JSON otherwise. A pass that did something
ends with one summary, like `kubectl describe` would show: the steps run, what failed and why,
and when each failed service will be tried again.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from fleet_agent.model import Event, ServiceStatus
from fleet_agent.outcomes import StepResult, step_action
from fleet_agent.planner import Pull, subject
from fleet_agent.report import Report

log = structlog.get_logger("fleet_agent.pass")
_console = {"on": False}


LIBRARY_LEVEL = logging.WARNING  # paho, urllib3, docker chatter below this is noise


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Ours and the libraries' logs (APScheduler, paho, urllib3, docker: stdlib `logging`)
    rendered alike, JSON lines or console lines, on stderr."""
    renderer: Any = (
        # plain_traceback: the default (Rich, when installed) prints every frame's local
        # variables, and those hold payloads, targets and environment values (secrets).
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt != "console":
        processors.append(structlog.processors.format_exc_info)
    _console["on"] = fmt == "console"
    _route_library_logs(processors, renderer)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _route_library_logs(processors: list[Any], renderer: Any) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]  # configuring twice must not log twice
    root.setLevel(LIBRARY_LEVEL)
    # A job that raised is worth an error line; "run time of job was missed" warnings are not.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def _problem(status: ServiceStatus) -> str | None:
    error = status.error
    if error is None:
        return None
    attempt = f"attempt {error.retry_count}/{error.max_retries}"
    if error.next_retry:
        when = f"retry at {error.next_retry}"
    else:
        when = "retries exhausted" if error.exhausted else "not retried until the target changes"
    return f"{status.service_name}: {error.type}: {error.message} ({attempt}, {when})"


def summary_lines(
    report: Report, results: list[StepResult], events: list[Event], pulls: list[Pull]
) -> list[str]:
    lines = [f"started pull {p.service}: {p.image}" for p in pulls]
    for event in events:
        if event.type == "pull":
            mark = "ok" if event.ok else "FAILED"
            lines.append(f"pull {event.service}: {mark} {event.message}")
    for result in results:
        outcome = "ok" if result.ok else f"FAILED: {result.message}"
        lines.append(
            f"{step_action(result.step)} {result.step.service} ({subject(result.step)}): {outcome}"
        )
    lines += [p for p in map(_problem, report.services) if p]
    return lines


def log_pass(
    report: Report, results: list[StepResult], events: list[Event], pulls: list[Pull]
) -> None:
    """One summary for a pass that did something; a quiet pass logs at debug only."""
    state = report.state
    counts = ", ".join(f"{n} {s}" for s, n in state.counts.items()) or "no services"
    fields: dict[str, Any] = {
        "target_version": state.target_version,
        "converged": state.converged,
        "counts": state.counts,
    }
    if not (results or events or pulls):
        log.debug("reconcile pass: nothing to do", **fields)
        return
    failed = sum(1 for r in results if not r.ok) + sum(1 for e in events if not e.ok)
    headline = (
        f"reconcile pass: {len(results) + len(events)} outcomes, {failed} failed; "
        f"{counts}; {'converged' if state.converged else 'not converged'}"
    )
    lines = summary_lines(report, results, events, pulls)
    if _console["on"]:
        log.info(headline + "".join(f"\n    {line}" for line in lines))
    else:
        log.info("reconcile pass", summary=lines, failed=failed, **fields)
