"""Library logs (APScheduler, paho, urllib3, docker) come out through structlog like ours."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from fleet_agent import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()  # ours wrote to this test's captured (now closed) stderr


def lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["apscheduler.scheduler", "paho.mqtt.client", "urllib3", "docker"])
def test_a_library_error_is_one_json_line_when_the_format_is_json(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json")

    logging.getLogger(name).error("connection pool is full, discarding %s", "conn")

    (line,) = lines(capsys.readouterr().err)
    record = json.loads(line)
    assert record["event"] == "connection pool is full, discarding conn"
    assert (record["level"], record["logger"]) == ("error", name)
    assert record["timestamp"].endswith("Z")


def test_a_library_exception_keeps_its_traceback_inside_the_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("json")

    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")

    (line,) = lines(capsys.readouterr().err)
    record = json.loads(line)
    assert record["level"] == "error"
    assert "ValueError: boom" in record["exception"]


def test_library_debug_chatter_is_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")

    logging.getLogger("paho.mqtt.client").debug("Sending PINGREQ")
    logging.getLogger("urllib3.connectionpool").info("Starting new connection")

    assert lines(capsys.readouterr().err) == []


def test_a_library_warning_is_a_console_line_when_the_format_is_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("console")

    logging.getLogger("urllib3").warning("retrying")

    (line,) = lines(capsys.readouterr().err)
    assert "retrying" in line and "warning" in line and not line.startswith("{")


def test_configuring_twice_does_not_log_twice(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")
    logs.configure("json")

    logging.getLogger("docker").warning("once")

    assert len(lines(capsys.readouterr().err)) == 1


@pytest.mark.parametrize("fmt", ["console", "json"])
@pytest.mark.parametrize("library", [False, True])
def test_an_exception_logged_with_a_secret_in_a_local_never_prints_the_secret(
    fmt: str, library: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")  # the console renderer's default formatter shows locals with it
    logs.configure(fmt)
    try:
        environment = {"TOKEN": "-".join(["canary", "5e3f9a1c"])}  # not in the source text
        raise ValueError(f"bad target with {len(environment)} values")
    except ValueError:
        if library:
            logging.getLogger("paho.mqtt.client").exception("could not apply the target")
        else:
            structlog.get_logger("test").exception("could not apply the target")
    err = capsys.readouterr().err
    assert "could not apply the target" in err
    assert "ValueError: bad target with 1 values" in err
    assert "canary-5e3f9a1c" not in err
