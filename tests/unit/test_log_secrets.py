"""Console logs never print the local variables of a failing frame (they hold secrets)."""

from __future__ import annotations

import logging

import pytest
import structlog

from fleet_agent import logs


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_an_exception_logged_with_a_secret_in_a_local_never_prints_the_secret(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")  # the console renderer's default formatter shows locals with it
    logs.configure(fmt, logging.INFO)  # prints to the captured stderr of this test
    try:
        environment = {"TOKEN": "-".join(["canary", "5e3f9a1c"])}  # not in the source text
        raise ValueError(f"bad target with {len(environment)} values")
    except ValueError:
        structlog.get_logger("test").exception("could not apply the target")
    finally:
        structlog.reset_defaults()  # later tests must not print to this test's closed stderr
    err = capsys.readouterr().err
    assert "could not apply the target" in err
    assert "ValueError: bad target with 1 values" in err
    assert "canary-5e3f9a1c" not in err
