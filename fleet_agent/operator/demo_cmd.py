"""`fleet-agent demo [--cleanup]`: the origin story, live and narrated, against a real agent,
engine, registry and broker.

A target with a healthy service and one whose image tag does not exist; the healthy one runs,
the broken one backs off (a countdown, a `warning` alert) until its retries run out (`critical`);
the target is fixed; the device heals; the alert clears. Timings are compressed (2 s doubling,
4 attempts). The agent is left running for a look around, or everything is torn down with
`--cleanup` (`--stop` tears down what an earlier demo left).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fleet_agent.operator import connection, render
from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.common import (
    BAD_INPUT,
    FOUND_ERROR,
    OK,
    Exit,
    add_connection_arguments,
    console,
    run_command,
)
from fleet_agent.operator.connection import DEFAULT_URL, Connection
from fleet_agent.operator.demo_setup import AGENT_SETTINGS, DemoAgent, teardown
from fleet_agent.operator.errors import WaitTimeout
from fleet_agent.operator.fleet import Device, parse_time
from fleet_agent.operator.narrator import Narrator
from fleet_agent.operator.status_cmd import table
from fleet_agent.operator.wire import ServiceStatus

STEP_TIMEOUT = 120.0
APP = {"appId": 1001, "appName": "demo"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="dev-001", help="the demo device id (dev-001)")
    parser.add_argument(
        "--registry",
        default=os.environ.get("FLEET_TEST_REGISTRY", "127.0.0.1:5000"),
        help="registry with fleet-test/app:1 and :2 (default $FLEET_TEST_REGISTRY or :5000)",
    )
    parser.add_argument("--cleanup", action="store_true", help="tear everything down at the end")
    parser.add_argument("--stop", action="store_true", help="only tear down an earlier demo")
    parser.add_argument(
        "--home",
        type=Path,
        default=Path("/tmp/fleet-agent-demo"),
        help="where the demo agent keeps its state and log",
    )
    add_connection_arguments(parser)


def target(registry: str, broken_tag: str) -> dict[str, object]:
    config = {"networkMode": "none", "command": ["sh", "-c", "echo up; exec sleep 86400"]}
    services = [
        {
            "serviceId": 1,
            "serviceName": "web",
            "imageName": f"{registry}/fleet-test/app:1",
            "config": config,
        },
        {
            "serviceId": 2,
            "serviceName": "broken",
            "imageName": f"{registry}/fleet-test/app:{broken_tag}",
            "config": config,
        },
    ]
    return {"apps": {"1001": {**APP, "services": services}}}


def program() -> str:
    """How to call `fleet-agent` from the user's shell (the venv may not be on PATH)."""
    here = Path(sys.argv[0])
    if shutil.which("fleet-agent") or here.name != "fleet-agent" or not here.exists():
        return "fleet-agent"
    try:
        return str(here.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def connect_flag(conn: Connection) -> str:
    """` --url ...` unless the user's shell reaches the broker by the defaults."""
    same = os.environ.get("FLEET_AGENT_MQTT_URL", DEFAULT_URL) == conn.mqtt_url
    return "" if same and conn.mqtt_url == DEFAULT_URL else f" --url {conn.mqtt_url}"


def service(device: Device | None, name: str) -> ServiceStatus | None:
    return device.services.get(name) if device else None


def running(name: str, version: int | None) -> Callable[[Device | None], bool]:
    def check(device: Device | None) -> bool:
        status = service(device, name)
        return bool(
            status
            and status.service_status == "running"
            and status.error is None
            and status.target_version == version
        )

    return check


def backoff_line(device: Device | None, now: float) -> str:
    status = service(device, "broken")
    if status is None or status.error is None:
        return f"broken: {status.service_status if status else 'waiting'}"
    error = status.error
    when = render.next_retry(status, now)
    if error.next_retry and not error.exhausted:
        left = max(0.0, (parse_time(error.next_retry) or now) - now)
        when = f"next retry in {left:.1f}s"
    return f"broken: {error.type}, attempt {error.retry_count}/{error.max_retries}, {when}"


class Demo:
    def __init__(self, args: argparse.Namespace, client: FleetClient, agent: DemoAgent) -> None:
        self.args = args
        self.client = client
        self.agent = agent
        self.device_id = agent.device_id
        self.say = Narrator(console(), steps=8)

    def device(self) -> Device | None:
        return self.client.device(self.device_id)

    def wait(
        self,
        until: Callable[[Device | None], object],
        line: Callable[[Device | None, float], str] | None = None,
        timeout: float = STEP_TIMEOUT,
    ) -> Device:
        return self.say.wait(self.client, self.device_id, until, line, timeout)

    def start(self) -> None:
        self.say.step("Start a real agent for the device")
        if self.agent.pid() is not None or self.device() is not None:
            self.say.info("an earlier demo is still around: cleaning it up first")
            teardown(self.client, self.agent)
        device = self.device()
        if device is not None and device.online:
            raise Exit(
                BAD_INPUT, f"{self.device_id} is online already (another agent?); use --device"
            )
        pid = self.agent.start()
        self.say.info(f"fleet-agent run, pid {pid}, log {self.agent.log}")
        timings = f"backoff {AGENT_SETTINGS['FLEET_AGENT_BACKOFF_INITIAL']}s doubling, "
        timings += f"{AGENT_SETTINGS['FLEET_AGENT_MAX_RETRIES']} attempts (defaults: 10s, 10)"
        self.say.info(f"compressed timings for the demo: {timings}")
        self.wait(lambda d: d is not None and d.online)
        self.say.ok(f"{self.device_id} is online on {self.client.connection.mqtt_url}")

    def publish(self, doc: dict[str, object], what: str) -> int | None:
        ack = self.client.apply(self.device_id, doc, timeout=STEP_TIMEOUT)
        if not ack.accepted:
            raise Exit(FOUND_ERROR, f"the device rejected the target ({ack.code}): {ack.errors}")
        self.say.ok(f"target version {ack.version} accepted ({ack.code}): {what}")
        return ack.version

    def broken_target(self) -> int | None:
        self.say.step("Publish a target: one healthy service, one whose image tag does not exist")
        doc = target(self.args.registry, "nope")
        self.say.info(f"web     {self.args.registry}/fleet-test/app:1")
        self.say.info(f"broken  {self.args.registry}/fleet-test/app:nope   <- no such tag")
        return self.publish(doc, "web and broken")

    def healthy_runs(self, version: int | None) -> None:
        self.say.step("The healthy service runs; the broken one does not hold it up")
        self.wait(
            running("web", version),
            lambda d, _: f"web: {render.state_text(s) if (s := service(d, 'web')) else 'waiting'}",
        )
        self.say.ok("web is running")

    def backoff(self) -> None:
        self.say.step("The broken one backs off, Kubernetes style, and raises a warning alert")
        failing = self.wait(lambda d: (s := service(d, "broken")) and s.error, backoff_line)
        status = service(failing, "broken")
        assert status is not None and status.error is not None
        self.say.bad(f"broken: {status.error.type}: {status.error.message}")
        alert = self.wait(lambda d: d and d.alerts.get("broken"), backoff_line).alerts["broken"]
        where = f"{self.client.prefix}/{self.device_id}/alerts/broken"
        self.say.warn(f"alert {alert.severity} {alert.type} on {where}")

    def escalation(self) -> None:
        self.say.step("Each retry waits twice as long; when the retries run out, it escalates")
        seen = set()

        def progress(device: Device | None, now: float) -> str:
            status = service(device, "broken")
            if (
                status is not None
                and status.error is not None
                and status.error.retry_count not in seen
            ):
                seen.add(status.error.retry_count)
                self.say.info(backoff_line(device, now).replace(", next retry in", ", retry in"))
            return backoff_line(device, now)

        done = self.wait(
            lambda d: (a := d and d.alerts.get("broken")) and a.severity == "critical", progress
        )
        status = service(done, "broken")
        alert = done.alerts["broken"]
        if status is not None and status.error is not None:
            kind = status.error.type
            self.say.bad(f"broken: {kind}, retries exhausted: no more until something changes")
        self.say.warn(f"alert escalated: {alert.severity} {alert.type}")

    def fix(self) -> int | None:
        self.say.step("Fix the target: broken gets an image that exists")
        self.say.info(f"broken  {self.args.registry}/fleet-test/app:2")
        return self.publish(target(self.args.registry, "2"), "broken fixed")

    def heal(self, version: int | None) -> None:
        self.say.step("The device heals by itself and the alert clears")
        self.wait(
            running("broken", version),
            lambda d, _: (
                f"broken: {render.state_text(s) if (s := service(d, 'broken')) else 'waiting'}"
            ),
        )
        self.say.ok("broken is running")
        self.wait(lambda d: d is not None and "broken" not in d.alerts)
        self.say.ok("alert cleared")
        self.wait(
            lambda d: (
                d is not None
                and d.state is not None
                and d.state.converged
                and d.state.target_version == version
            )
        )
        self.say.out.print()
        device = self.device()
        if device is not None:
            self.say.out.print(table([device], time.time()))

    def finish(self) -> None:
        if self.args.cleanup:
            self.say.step("Clean up")
            for line in teardown(self.client, self.agent):
                self.say.ok(line)
            return
        url = self.client.connection
        self.say.step("Look around (the agent keeps running)")
        topic = f"{url.topic_prefix}/{self.device_id}/#"
        for command, note in (
            ("status", ""),
            ("watch", ""),
            ("dashboard", "then open http://127.0.0.1:8080/"),
            (f"describe {self.device_id} broken", ""),
            (f"retry {self.device_id} broken", ""),
            ("demo --stop", "tear it all down"),
        ):
            line = f"{program()} {command}{connect_flag(url)}"
            self.say.command(f"{line}    # {note}" if note else line)
        self.say.command(f"mosquitto_sub -h {url.host} -p {url.port} -v -t '{topic}'")

    def run(self) -> int:
        self.say.title(
            f"fleet-agent demo · device {self.device_id} · {self.client.connection.mqtt_url}"
        )
        self.start()
        version = self.broken_target()
        self.healthy_runs(version)
        self.backoff()
        self.escalation()
        version = self.fix()
        self.heal(version)
        self.finish()
        return OK


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        try:
            conn = connection.load(args.config, args.url)
        except connection.SettingsError as exc:
            raise Exit(BAD_INPUT, str(exc)) from exc
        agent = DemoAgent(args.device, conn, args.home / args.device)
        with FleetClient(conn, [args.device]) as client:
            if args.stop:
                for line in teardown(client, agent):
                    console().print(line, markup=False)
                return OK
            try:
                return Demo(args, client, agent).run()
            except WaitTimeout as exc:
                raise Exit(FOUND_ERROR, f"{exc}; the agent's log: {agent.log}") from exc

    return run_command("demo", body)
