"""`fleet-agent dashboard` refuses bad settings with one line and exit code 2, before serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_agent import cli


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["dashboard", *args])
    return code, capsys.readouterr().err.strip()


def test_binding_beyond_loopback_without_a_token_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(capsys, "--listen", "0.0.0.0:8080")
    assert code == 2
    assert err == (
        "fleet-agent dashboard: listening on 0.0.0.0 (not loopback) needs a token: "
        "--token or --token-file"
    )


def test_a_bad_listen_address_token_file_or_broker_url_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "--listen", "nowhere")[0] == 2
    code, err = run(capsys, "--token-file", str(tmp_path / "missing"))
    assert code == 2 and "cannot read the token file" in err and "\n" not in err
    code, err = run(capsys, "--url", "http://broker")
    assert code == 2 and "mqtt_url" in err and "\n" not in err


def test_an_unreachable_broker_ends_the_dashboard_with_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(capsys, "--url", "mqtt://127.0.0.1:9", "--connect-timeout", "0.5")
    assert code == 1 and "cannot reach the broker" in err


def test_a_recorder_database_that_cannot_be_opened_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run(capsys, "--db", "mysql://db/x")
    assert code == 2 and "unsupported database URL" in err and "\n" not in err
    code, err = run(capsys, "--db", f"sqlite:///{tmp_path}/no/such/dir/rec.db")
    assert code == 2 and "cannot open" in err and "\n" not in err
