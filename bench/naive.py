"""The script a user would write without fleet-agent: paho + the Docker SDK, sequential.

    python -m bench.naive DEVICE_ID [--mqtt 127.0.0.1:1883] [--prefix naive]

It subscribes to `{prefix}/{device}/target` and, for each target received, in the MQTT callback:
for each service in order, pull the image unless present, remove a container of the same name,
create and start; then remove its containers no longer in the target, and publish one status
line per service. No backoff, no events, no state: the baseline the benchmarks compare with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

import docker
import docker.errors
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

LABEL = "naive.device"


def apply(client: docker.DockerClient, device: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    wanted: set[str] = set()
    statuses = []
    for app in doc.get("apps", {}).values():
        for svc in app["services"]:
            name = f"naive.{device}.{svc['serviceName']}"
            wanted.add(name)
            config = svc.get("config", {})
            try:
                try:
                    client.images.get(svc["imageName"])
                except docker.errors.ImageNotFound:
                    client.images.pull(svc["imageName"])
                with contextlib.suppress(docker.errors.NotFound):
                    client.containers.get(name).remove(force=True)
                client.containers.run(
                    svc["imageName"],
                    config.get("command"),
                    name=name,
                    detach=True,
                    network_mode=config.get("networkMode", "none"),
                    environment=config.get("environment", {}),
                    labels={LABEL: device},
                )
                statuses.append({"service": svc["serviceName"], "state": "running"})
            except docker.errors.DockerException as exc:
                error = {"service": svc["serviceName"], "state": "error", "error": str(exc)}
                statuses.append(error)
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={device}"}):
        if container.name not in wanted:
            container.remove(force=True)
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("device")
    parser.add_argument("--mqtt", default="127.0.0.1:1883")
    parser.add_argument("--prefix", default="naive")
    args = parser.parse_args()
    docker_client = docker.from_env()
    base = f"{args.prefix}/{args.device}"

    def on_message(c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(message.payload) if message.payload else {"apps": {}}
            for status in apply(docker_client, args.device, doc):
                c.publish(f"{base}/status/{status['service']}", json.dumps(status), 1, True)
            c.publish(f"{base}/done", json.dumps({"version": doc.get("version")}), 1, True)
        except Exception as exc:  # a user's script would crash here; ours says why
            print(f"naive: {exc!r}", file=sys.stderr)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"naive-{args.device}")
    client.on_connect = lambda c, *_: c.subscribe(f"{base}/target", qos=1)
    client.on_message = on_message
    host, _, port = args.mqtt.partition(":")
    client.connect(host, int(port or 1883))
    client.loop_forever()


if __name__ == "__main__":
    main()
