"""The MQTT socket sends each packet at once (no Nagle delay behind the broker's ACK)."""

from __future__ import annotations

import socket

from fleet_agent.commands import CommandResult
from fleet_agent.config import Settings
from fleet_agent.mqtt import MqttLink


def test_the_mqtt_socket_gets_tcp_nodelay_when_it_opens() -> None:
    link = MqttLink(
        Settings(device_id="dev-1", mqtt_url="mqtt://127.0.0.1:1"),
        None,
        lambda _n, _p, respond: respond(CommandResult(command="x", ok=True)),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        callback = link.client.on_socket_open
        assert callback is not None
        callback(link.client, None, sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
