"""`fleet-agent keygen`, `sign` and `validate --policy`, and a policy tightened under a target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_agent import cli
from fleet_agent.admission import Admission
from fleet_agent.policy import Policy
from fleet_agent.store import TargetStore

from .factories import T0, encode, target_doc


def test_keygen_sign_and_validate_round_trip_and_rotate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["keygen", "k1", "--private", "k1.jwk", "--public", "trusted.jwks"]) == 0
    assert cli.main(["keygen", "k2", "--private", "k2.jwk", "--public", "trusted.jwks"]) == 0
    assert (tmp_path / "k1.jwk").stat().st_mode & 0o777 == 0o600
    keyset = json.loads((tmp_path / "trusted.jwks").read_text())
    assert [k["kid"] for k in keyset["keys"]] == ["k1", "k2"]
    assert all("d" not in k for k in keyset["keys"])  # public halves only
    (tmp_path / "t.json").write_bytes(encode(target_doc(3)))
    for kid in ("k1", "k2"):
        out = f"{kid}.jws"
        assert (
            cli.main(["sign", "t.json", "--key", f"{kid}.jwk", "--device", "d1", "--out", out]) == 0
        )
        assert cli.main(["validate", out, "--keys", "trusted.jwks", "--device", "d1"]) == 0
    assert cli.main(["validate", "k1.jws", "--keys", "trusted.jwks", "--device", "d2"]) == 2
    assert "$.deviceId" in capsys.readouterr().out


def test_keygen_never_overwrites_and_sign_needs_a_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["keygen", "k1"]) == 0
    assert cli.main(["keygen", "k1"]) == 2
    assert cli.main(["keygen", "k1", "--private", "other.jwk"]) == 2  # kid already in the set
    assert not (tmp_path / "other.jwk").exists()
    (tmp_path / "t.json").write_bytes(encode({"apps": {}}))
    assert cli.main(["sign", "t.json", "--key", "signing-key.jwk", "--device", "d1"]) == 2
    assert "version" in capsys.readouterr().err


def test_validate_prints_every_violation_with_its_path_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = target_doc(1, config={"privileged": True, "volumes": ["/srv/../etc:/e"]})
    (tmp_path / "t.json").write_bytes(encode(doc))
    (tmp_path / "p.toml").write_text('bind_prefixes = ["/srv"]\nprivileged = true\n')

    assert cli.main(["validate", str(tmp_path / "t.json")]) == 2
    out = capsys.readouterr().out
    assert "code 403" in out
    assert "$.apps.1001.services[0].config.privileged:" in out
    assert "$.apps.1001.services[0].config.volumes[0]: bind of /srv/../etc" in out
    assert (
        cli.main(["validate", str(tmp_path / "t.json"), "--policy", str(tmp_path / "p.toml")]) == 2
    )
    out = capsys.readouterr().out
    assert "privileged" not in out and "volumes[0]" in out
    assert cli.main(["validate", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "ok.json").write_bytes(encode(target_doc(1)))
    assert cli.main(["validate", str(tmp_path / "ok.json")]) == 0


def test_a_persisted_target_that_a_tightened_policy_forbids_is_not_run(tmp_path: Path) -> None:
    lenient = TargetStore(tmp_path, Admission("d1", Policy(privileged=True)))
    assert lenient.offer(encode(target_doc(4, config={"privileged": True})), T0).ack.code == 200

    strict = TargetStore(tmp_path, Admission("d1"))
    assert strict.load() is None and strict.current() is None
    assert strict.offer(encode(target_doc(3)), T0).ack.code == 409  # its version still counts


def test_the_agent_refuses_to_start_on_a_bad_policy_or_key_file_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "policy.toml").write_text("privileged = maybe\n")
    monkeypatch.setenv("FLEET_AGENT_DEVICE_ID", "dev-1")
    monkeypatch.setenv("FLEET_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FLEET_AGENT_POLICY_FILE", str(tmp_path / "policy.toml"))

    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "policy.toml" in err and "Traceback" not in err

    monkeypatch.delenv("FLEET_AGENT_POLICY_FILE")
    monkeypatch.setenv("FLEET_AGENT_TRUSTED_KEYS", str(tmp_path / "missing.jwks"))
    assert cli.main(["run"]) == 2
    assert "missing.jwks" in capsys.readouterr().err


def test_validate_reads_yaml_and_compose_files_like_apply_and_applies_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "target.yaml").write_text(
        "version: 3\napps:\n  '1001':\n    appId: 1001\n    appName: web\n    services:\n"
        "      - serviceId: 1\n        serviceName: web\n        imageName: nginx:1.27\n"
    )
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: nginx:1.27\n    volumes: ['/srv/data:/data']\n"
    )
    (tmp_path / "p.toml").write_text('bind_prefixes = ["/opt"]\n')

    assert cli.main(["validate", str(tmp_path / "target.yaml")]) == 0
    assert "valid (version 3)" in capsys.readouterr().out
    assert cli.main(["validate", str(tmp_path / "compose.yaml")]) == 0
    policy = ["--policy", str(tmp_path / "p.toml")]
    assert cli.main(["validate", str(tmp_path / "compose.yaml"), *policy]) == 2
    out = capsys.readouterr().out
    assert "code 403" in out and "bind of /srv/data is refused" in out
    (tmp_path / "bad.yaml").write_text("apps: [\n")
    assert cli.main(["validate", str(tmp_path / "bad.yaml")]) == 2
    assert "invalid YAML: line" in capsys.readouterr().out
