"""Home Assistant MQTT discovery (pure): the one retained device config that announces us.

Home Assistant's device discovery (`{ha}/device/{id}/config`) takes one message naming the
device and all its entities ("components"). Every entity reads one of our existing topics
through a template, so status payloads never change for Home Assistant's sake:

- per service `s`: status (enum sensor over `services/s`), problem (binary sensor, on while
  `alerts/s` holds an alert), next retry (timestamp sensor), restarts, and a Retry button that
  publishes `{"service": "s"}` on `cmd/retry`;
- per device: converged (binary sensor) and target version (sensor), over `state`.

Availability is our `availability` topic. A service that leaves the target is removed by a
component holding only its platform, as Home Assistant's device discovery expects.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fleet_agent import __version__
from fleet_agent.jsondoc import Malformed, load
from fleet_agent.model import ServiceState

STATES: tuple[ServiceState, ...] = (
    "pending", "downloading", "starting", "running", "stopping", "stopped", "exited", "error",
)  # fmt: skip
# A cleared retained topic arrives as an empty payload: `None` makes the entity unknown.
_GUARD = "{% if not value %}None{% else %}"
NEXT_RETRY = (
    _GUARD + "{{ value_json.error.nextRetry if value_json.error and value_json.error.nextRetry"
    " else 'None' }}{% endif %}"
)
ATTRIBUTES = "{{ value if value else '{}' }}"  # a cleared topic: no attributes, no warning
PLATFORMS = {"status": "sensor", "problem": "binary_sensor", "next_retry": "sensor",
             "restarts": "sensor", "retry": "button"}  # fmt: skip


class Discovery(msgspec.Struct, frozen=True):
    """Where we live on MQTT and in Home Assistant."""

    device_id: str
    base: str  # `{p}/{d}`
    ha_prefix: str = "homeassistant"

    @property
    def node(self) -> str:
        return f"fleet-agent-{self.device_id}"

    @property
    def config_topic(self) -> str:
        return f"{self.ha_prefix}/device/{self.node}/config"

    @property
    def status_topic(self) -> str:
        """Home Assistant's birth and will: `online` means it wants our config again."""
        return f"{self.ha_prefix}/status"


def _service_components(where: Discovery, name: str) -> dict[str, dict[str, Any]]:
    status_topic, uid = f"{where.base}/services/{name}", f"{where.node}-{name}"
    return {
        f"{name}_status": {
            "p": "sensor", "name": f"{name} status", "uniq_id": f"{uid}-status",
            "dev_cla": "enum", "ops": list(STATES), "stat_t": status_topic,
            "val_tpl": _GUARD + "{{ value_json.serviceStatus }}{% endif %}",
            "json_attr_t": status_topic, "json_attr_tpl": ATTRIBUTES, "ic": "mdi:docker",
        },
        f"{name}_problem": {
            "p": "binary_sensor", "name": f"{name} problem", "uniq_id": f"{uid}-problem",
            "dev_cla": "problem", "stat_t": f"{where.base}/alerts/{name}",
            "val_tpl": "{{ 'ON' if value else 'OFF' }}",
            "json_attr_t": f"{where.base}/alerts/{name}", "json_attr_tpl": ATTRIBUTES,
        },
        f"{name}_next_retry": {
            "p": "sensor", "name": f"{name} next retry", "uniq_id": f"{uid}-next-retry",
            "dev_cla": "timestamp", "stat_t": status_topic, "val_tpl": NEXT_RETRY,
        },
        f"{name}_restarts": {
            "p": "sensor", "name": f"{name} restarts", "uniq_id": f"{uid}-restarts",
            "stat_cla": "total_increasing", "stat_t": status_topic, "ic": "mdi:restart",
            "val_tpl": _GUARD + "{{ value_json.restartCount }}{% endif %}",
        },
        f"{name}_retry": {
            "p": "button", "name": f"{name} retry", "uniq_id": f"{uid}-retry",
            "cmd_t": f"{where.base}/cmd/retry", "qos": 1, "ic": "mdi:refresh",
            "pl_prs": msgspec.json.encode({"service": name}).decode(),
        },
    }  # fmt: skip


def _device_components(where: Discovery) -> dict[str, dict[str, Any]]:
    state_topic = f"{where.base}/state"
    return {
        "converged": {
            "p": "binary_sensor", "name": "converged", "uniq_id": f"{where.node}-converged",
            "stat_t": state_topic, "json_attr_t": state_topic, "json_attr_tpl": ATTRIBUTES,
            "val_tpl": _GUARD + "{{ 'ON' if value_json.converged else 'OFF' }}{% endif %}",
        },
        "target_version": {
            "p": "sensor", "name": "target version", "uniq_id": f"{where.node}-target-version",
            "stat_t": state_topic,
            "val_tpl": _GUARD + "{{ value_json.targetVersion if value_json.targetVersion is"
            " not none else 'None' }}{% endif %}",
        },
    }  # fmt: skip


def device_config(where: Discovery, services: list[str], removed: list[str]) -> bytes:
    """The device discovery message for these services; `removed` ones get platform-only
    components, which makes Home Assistant remove their entities."""
    components = _device_components(where)
    for name in sorted(services):
        components |= _service_components(where, name)
    for name in sorted(set(removed) - set(services)):
        components |= {f"{name}_{kind}": {"p": p} for kind, p in PLATFORMS.items()}
    doc = {
        "dev": {
            "ids": [where.node], "name": where.device_id, "mf": "fleet-agent",
            "mdl": "fleet-agent device", "sw": __version__,
        },
        "o": {"name": "fleet-agent", "sw": __version__},
        "avty": [{"t": f"{where.base}/availability"}],
        "qos": 1,
        "cmps": components,
    }  # fmt: skip
    return msgspec.json.encode(doc)


def announced_services(payload: bytes) -> set[str]:
    """The services a device config (ours, maybe from an earlier run) announces; nothing for
    a payload that is not one."""
    try:  # whoever can publish there can send anything: read within bounds
        doc, _ = load(payload)
    except Malformed:
        return set()
    components = doc.get("cmps", {}) if isinstance(doc, dict) else {}
    if not isinstance(components, dict):
        return set()
    return {
        key.removesuffix("_status")
        for key, value in components.items()
        if key.endswith("_status") and isinstance(value, dict) and "stat_t" in value
    }
