"""`fleet-agent recorder` and its queries take `--db` before or after the query's name, and a
database they cannot use is one line and exit 2 (never a silent default database instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_agent import cli


@pytest.mark.parametrize(
    "argv",
    [
        ["recorder", "--db", "ftp://x", "report"],
        ["recorder", "report", "--db", "ftp://x"],
        ["recorder", "--db", "ftp://x", "history", "dev-1", "web"],
        ["recorder", "--db", "ftp://x", "failing"],
        ["recorder", "--db", "ftp://x"],
    ],
)
def test_the_database_given_is_the_one_used_wherever_db_stands(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLEET_RECORDER_DB", raising=False)
    monkeypatch.chdir(tmp_path)  # the default database would appear here
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "unsupported database URL 'ftp://x'" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_query_without_db_uses_the_environments_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_RECORDER_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert cli.main(["recorder", "failing"]) == 0
    assert (tmp_path / "env.db").exists()
    assert "0 services" in capsys.readouterr().out
