"""fleet-agent: reconciles a device's Docker containers toward a target and reports why."""

__version__ = "0.1.0"
