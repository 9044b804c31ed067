"""The device policy: what a target may ask of the host, with one error per violation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleet_agent import policy
from fleet_agent.admission import Admission
from fleet_agent.model import FieldError, Target
from fleet_agent.planner import Create
from fleet_agent.policy import Context, Policy, PolicyError, bind_refusal, violations
from fleet_agent.spec import ContainerSpec, build_spec, desired_services
from fleet_agent.steps import StepRunner
from fleet_agent.validate import decode_target

from .factories import encode, target_doc
from .fake_engine import FakeEngine
from .scenario import Inline

SVC = "$.apps.1001.services[0]"
CTX = Context("dev-001", "/var/lib/fleet-agent")
DEFAULT = Policy()


def decoded(**config: Any) -> Target:
    doc = target_doc(7, config=config)
    result = decode_target(encode(doc))
    assert isinstance(result, Target), result
    return result


def paths(target: Target, rules: Policy = DEFAULT, ctx: Context = CTX) -> list[str]:
    return [e.path for e in violations(target, rules, ctx)]


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"privileged": True}, "config.privileged"),
        ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}, "config.volumes[0]"),
        ({"volumes": ["/run/docker.sock:/s"]}, "config.volumes[0]"),
        ({"volumes": ["/:/host"]}, "config.volumes[0]"),
        ({"volumes": ["/etc:/etc:ro"]}, "config.volumes[0]"),
        ({"volumes": ["data:/d", "/srv/../etc:/x"]}, "config.volumes[1]"),
        ({"volumes": ["/var/lib/fleet-agent:/state"]}, "config.volumes[0]"),
        ({"devices": ["/dev/ttyUSB0"]}, "config.devices[0]"),
        ({"capAdd": ["NET_ADMIN"]}, "config.capAdd[0]"),
        ({"networkMode": "host"}, "config.networkMode"),
        ({"networkMode": "container:fleet.other-dev.db"}, "config.networkMode"),
    ],
)
def test_the_default_policy_refuses_what_reaches_into_the_host(
    config: dict[str, Any], path: str
) -> None:
    assert paths(decoded(**config)) == [f"{SVC}.{path}"]


def test_the_default_policy_allows_named_volumes_binds_below_srv_and_plain_networks() -> None:
    target = decoded(
        volumes=["data:/data", "/srv/app:/config:ro", "/srv/a/../b:/b"],
        networkMode="none",
        user="1000:1000",
        readOnly=True,
        memLimit="64m",
        cpus=0.5,
    )

    assert paths(target) == []


def test_every_violation_of_a_target_is_reported_at_once() -> None:
    target = decoded(privileged=True, networkMode="host", volumes=["/:/h", "/etc:/e"])

    assert paths(target) == [
        f"{SVC}.config.volumes[0]",
        f"{SVC}.config.volumes[1]",
        f"{SVC}.config.privileged",
        f"{SVC}.config.networkMode",
    ]


def test_a_bind_through_dotdot_is_judged_where_it_lands_and_says_so() -> None:
    [error] = violations(decoded(volumes=["/srv/x/../../etc:/x"]), Policy(), CTX)

    assert error == FieldError(
        f"{SVC}.config.volumes[0]",
        "bind of /srv/x/../../etc (resolved to /etc) is refused: "
        "outside the allowed host paths /srv",
    )


def test_a_symlink_below_srv_that_points_at_etc_is_refused(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "link").symlink_to("/etc")
    rules = Policy(bind_prefixes=[str(tmp_path / "srv")])
    ctx = Context("dev-001", None, os.path.realpath)

    errors = violations(decoded(volumes=[f"{tmp_path}/srv/link/passwd:/p"]), rules, ctx)

    assert [e.path for e in errors] == [f"{SVC}.config.volumes[0]"]
    assert "resolved to /etc/passwd" in errors[0].message


def test_a_policy_allows_what_it_names_and_nothing_wider() -> None:
    rules = Policy(
        privileged=True,
        devices=["/dev/ttyUSB*"],
        cap_add=["net_admin"],
        host_network=True,
        bind_prefixes=["/srv", "/etc/myapp"],
    )
    allowed = decoded(
        privileged=True,
        devices=["/dev/ttyUSB0:/dev/ttyS0"],
        capAdd=["CAP_NET_ADMIN"],
        networkMode="host",
        volumes=["/etc/myapp/conf:/conf"],
    )
    wider = decoded(devices=["/dev/sda"], capAdd=["SYS_ADMIN"], volumes=["/etc/passwd:/p"])

    assert paths(allowed, rules) == []
    assert paths(wider, rules) == [
        f"{SVC}.config.volumes[0]",
        f"{SVC}.config.devices[0]",
        f"{SVC}.config.capAdd[0]",
    ]


@pytest.mark.parametrize(
    ("host", "prefixes", "refused"),
    [
        ("/", ["/"], True),  # / also holds /etc, /proc, ...
        ("/etc", ["/"], True),
        ("/tmp/x", ["/"], False),
        ("/var", ["/"], True),  # holds the Docker socket
        ("/etc/myapp", ["/etc/myapp"], False),
        ("/etc", ["/etc"], False),
        ("/srv", ["/srv"], False),
        ("/srvx", ["/srv"], True),
        ("/var/lib/fleet-agent/x", ["/"], True),
    ],
)
def test_protected_paths_need_naming_and_parents_of_them_too(
    host: str, prefixes: list[str], refused: bool
) -> None:
    reason = bind_refusal(host, Policy(bind_prefixes=prefixes), "/var/lib/fleet-agent")

    assert (reason is not None) == refused, reason


def test_the_state_dir_below_an_allowed_prefix_stays_protected() -> None:
    rules = Policy(bind_prefixes=["/srv"])

    assert bind_refusal("/srv/fleet-agent/target.json", rules, "/srv/fleet-agent") is not None
    assert bind_refusal("/srv", rules, "/srv/fleet-agent") is not None
    assert bind_refusal("/srv/app", rules, "/srv/fleet-agent") is None


def test_a_state_dir_that_is_a_symlink_is_protected_where_it_really_lies(tmp_path: Path) -> None:
    (tmp_path / "srv" / "fleet-state").mkdir(parents=True)
    (tmp_path / "state").symlink_to(tmp_path / "srv" / "fleet-state")
    rules = Policy(bind_prefixes=[str(tmp_path / "srv")])
    ctx = Context("dev-001", str(tmp_path / "state"), os.path.realpath)

    errors = violations(decoded(volumes=[f"{tmp_path}/srv/fleet-state:/x"]), rules, ctx)

    assert [e.path for e in errors] == [f"{SVC}.config.volumes[0]"]
    assert "is protected" in errors[0].message


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("127.0.0.1:5000/fleet/app:1", True),
        ("registry.example.com/app:1", False),
        ("nginx:1", False),
        ("localhost:5000/x:1", False),
    ],
)
def test_registries_can_be_restricted(image: str, allowed: bool) -> None:
    rules = Policy(registries=["127.0.0.1:5000"])
    target = decode_target(encode(target_doc(7, imageName=image)))
    assert isinstance(target, Target)

    assert paths(target, rules) == ([] if allowed else [f"{SVC}.imageName"])


def test_docker_hub_is_one_registry_whatever_its_name_and_prefixes_match_full_names() -> None:
    hub = Policy(registries=["docker.io"])
    prefixed = Policy(image_prefixes=["docker.io/library/"])
    for image, ok in (("nginx:1", True), ("index.docker.io/library/nginx:1", True)):
        target = decode_target(encode(target_doc(7, imageName=image)))
        assert isinstance(target, Target)
        assert (paths(target, hub) == []) is ok
        assert (paths(target, prefixed) == []) is ok
    other = decode_target(encode(target_doc(7, imageName="acme/tool:1")))
    assert isinstance(other, Target)
    assert paths(other, prefixed) == [f"{SVC}.imageName"]


def _two_services(mode: str) -> Target:
    doc = target_doc(7)
    app = doc["apps"]["1001"]
    app["services"].append({"serviceId": 2, "serviceName": "db", "imageName": "db:1", "config": {}})
    app["services"][0]["config"] = {"networkMode": mode}
    result = decode_target(encode(doc))
    assert isinstance(result, Target)
    return result


def test_container_networking_only_ever_joins_another_service_of_this_device() -> None:
    rules = Policy(container_network=True)

    assert paths(_two_services("container:db"), rules) == []
    assert paths(_two_services("container:fleet.dev-001.db"), rules) == []
    assert paths(_two_services("container:fleet.dev-002.db"), rules) == [
        f"{SVC}.config.networkMode"
    ]
    assert paths(_two_services("container:nodered"), rules) == [f"{SVC}.config.networkMode"]
    assert paths(_two_services("container:db")) == [f"{SVC}.config.networkMode"]


def test_a_policy_file_is_read_and_its_errors_are_said(tmp_path: Path) -> None:
    good = tmp_path / "policy.toml"
    good.write_text('bind_prefixes = ["/srv", "/data"]\ncap_add = ["NET_ADMIN"]\n')
    typo = tmp_path / "typo.toml"
    typo.write_text("privilegd = true\n")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('privileged = "yes"\n')

    assert policy.load(good) == Policy(bind_prefixes=["/srv", "/data"], cap_add=["NET_ADMIN"])
    for path in (typo, wrong, tmp_path / "missing.toml"):
        with pytest.raises(PolicyError, match=path.name):
            policy.load(path)


def test_a_device_is_judged_by_what_its_symlink_names(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB9").symlink_to("/dev/null")
    rules = Policy(devices=[f"{tmp_path}/ttyUSB*"])
    ctx = Context("dev-001", None, os.path.realpath)

    [error] = violations(decoded(devices=[f"{tmp_path}/ttyUSB9"]), rules, ctx)

    assert error.path == f"{SVC}.config.devices[0]"
    assert "resolved to /dev/null" in error.message
    assert paths(decoded(devices=["/dev/null"]), Policy(devices=["/dev/null"]), ctx) == []


@pytest.mark.parametrize("source", ["//etc", "///etc/", "/srv/./../etc", "/srv//..//etc"])
def test_repeated_slashes_and_dots_never_hide_a_protected_path(source: str) -> None:
    rules = Policy(bind_prefixes=["/"])

    [error] = violations(decoded(volumes=[f"{source}:/x"]), rules, CTX)

    assert "/etc is protected" in error.message


def test_the_example_policy_file_is_a_valid_policy() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "device-policy.toml"

    rules = policy.load(example)

    assert rules.devices == ["/dev/ttyUSB*", "/dev/ttyACM*"] and rules.privileged is False


def test_a_bind_whose_symlink_changed_after_acceptance_is_refused_at_create(
    tmp_path: Path,
) -> None:
    srv = tmp_path / "srv"
    (srv / "data").mkdir(parents=True)
    (srv / "link").symlink_to(srv / "data")
    admission = Admission("dev-001", Policy(bind_prefixes=[str(srv)]), None, None, os.path.realpath)
    accepted = decoded(volumes=[f"{srv}/link:/data"])
    assert admission.violations(accepted) == []
    [desired] = desired_services(accepted)
    create = Create(desired.service.service_name, build_spec("dev-001", desired))
    engine = FakeEngine({create.spec.image})
    binds: list[list[str]] = []
    engine_create = engine.create

    def create_spy(spec: ContainerSpec) -> str:
        binds.append(spec.binds)
        return engine_create(spec)

    engine.create = create_spy  # type: ignore[method-assign]
    runner = StepRunner(engine, Inline(), lambda: None, admission.at_create)

    runner.submit({create.service: [create]})  # as accepted: created with the resolved path
    [first] = runner.collect()
    (srv / "link").unlink()
    (srv / "link").symlink_to("/etc")  # changed on the host after acceptance
    engine.containers.clear()
    runner.submit({create.service: [create]})
    [second] = runner.collect()

    assert first.ok and binds == [[f"{srv}/data:/data"]]  # the engine never sees the link
    assert second.error_kind == "failed" and second.message is not None
    assert f"bind of {srv}/link (now resolved to /etc) is refused" in second.message
