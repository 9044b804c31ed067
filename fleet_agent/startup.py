"""Everything `fleet-agent run` checks before the agent starts, so that a configuration error
ends it at once with one line saying what is wrong (exit code 2), never a traceback.

The settings themselves are checked by `config.load`; here come the things only the machine can
answer: a state dir that can be created, a target file path that is not a directory, TLS files
that can be read and loaded, a Docker address the SDK can parse.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from fleet_agent import config, logs
from fleet_agent.agent import Agent
from fleet_agent.engine import EngineAddressError

CONFIG_ERROR = 2


def one_line(message: str) -> str:
    return f"fleet-agent: {' '.join(message.split())}"


def prepare(config_path: Path | None, target_file: Path | None) -> Agent | str:
    """The agent, ready to start, or the one line that says why it cannot be."""
    try:
        settings = config.load(config_path)
        admission = config.admission(settings)
        check_paths(settings, target_file)
        logs.configure(settings.resolved_log_format)
        return Agent(settings, target_file=target_file, admission=admission)
    except (config.ConfigError, EngineAddressError) as exc:
        return one_line(str(exc))
    except ssl.SSLError as exc:  # a TLS file that is not a certificate or key
        return one_line(f"the MQTT TLS files cannot be loaded: {exc}")
    except OSError as exc:
        return one_line(f"cannot start: {exc}")


def check_paths(settings: config.Settings, target_file: Path | None) -> None:
    """The state dir must be a directory we can create; the target file must not be one; the
    TLS files must be readable."""
    state_dir = Path(settings.state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise config.ConfigError(f"state_dir {str(state_dir)!r} cannot be used: {reason}") from None
    if not os.access(state_dir, os.R_OK | os.X_OK):
        raise config.ConfigError(f"state_dir {str(state_dir)!r} cannot be read")
    if target_file is not None and target_file.is_dir():
        raise config.ConfigError(f"--target-file {str(target_file)!r} is a directory")
    for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
        path = getattr(settings, name)
        if path is not None and settings.mqtt_enabled:
            try:
                Path(path).open("rb").close()
            except OSError as exc:
                raise config.ConfigError(f"{name} {path!r}: {exc.strerror or exc}") from None
