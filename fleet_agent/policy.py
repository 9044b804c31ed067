"""The device policy: what a target may ask of this host, decided on the device and never widened.

Whoever can publish a target runs containers as root on the device. The policy (a local file,
else the contract's default) bounds that: which registries and images, which host paths may be
bound (after `..` and symlinks are resolved), whether `privileged`, which devices and added
capabilities, and whether `host` or `container:` networking. `violations` is pure: the caller
injects how a host path is resolved (`os.path.realpath` on the device, `normpath` offline), and
gets back one error per violation, with the path of the offending key.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from fleet_agent import hostkeys, reference
from fleet_agent.model import FieldError, Service, Target

# Refused as bind sources (and as parents of one) unless the policy lists them explicitly.
SENSITIVE = (
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/var/lib/docker",
)
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
Resolve = Callable[[str], str]


class PolicyError(Exception):
    pass


def clean(path: str) -> str:
    """`..` and `.` folded, repeated slashes too (`//etc` is `/etc` to the engine, while
    `normpath` keeps a leading `//`)."""
    return "/" + posixpath.normpath(path).lstrip("/")


class Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Keys of the policy file (TOML); without a file these defaults hold."""

    registries: list[str] | None = None  # None: any registry ("docker.io" for Docker Hub)
    image_prefixes: list[str] | None = None  # None: any image
    bind_prefixes: list[str] = msgspec.field(default_factory=lambda: ["/srv"])
    privileged: bool = False
    devices: list[str] = []  # host device paths, globs allowed (`/dev/ttyUSB*`)
    cap_add: list[str] = []
    host_network: bool = False
    container_network: bool = False  # `container:<a service of this device>`


class Context(msgspec.Struct, frozen=True):
    device_id: str
    state_dir: str | None = None
    resolve: Resolve = clean


def load(path: Path) -> Policy:
    """Read a policy file; any problem is a PolicyError saying what is wrong."""
    try:
        raw = tomllib.loads(path.read_text())
        return msgspec.convert(raw, Policy, strict=True)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise PolicyError(f"invalid policy {path}: {exc}") from exc


def violations(target: Target, policy: Policy, ctx: Context) -> list[FieldError]:
    """Every way the target breaks the policy; empty when it may be taken."""
    pairs = (
        [(f"$.apps.{key}", app) for key, app in target.apps.items()]
        if isinstance(target.apps, dict)
        else [(f"$.apps[{i}]", app) for i, app in enumerate(target.apps)]
    )
    names = {s.service_name for _, app in pairs for s in app.services}
    errors: list[FieldError] = []
    for app_path, app in pairs:
        for index, service in enumerate(app.services):
            path = f"{app_path}.services[{index}]"
            errors += _service(service, path, policy, ctx, names)
    return errors


def _service(
    service: Service, path: str, policy: Policy, ctx: Context, names: set[str]
) -> Iterator[FieldError]:
    config, cpath = service.config, f"{path}.config"
    yield from _image(service.image_name, f"{path}.imageName", policy)
    for index, volume in enumerate(config.volumes):
        yield from _volume(volume, f"{cpath}.volumes[{index}]", policy, ctx)
    if config.privileged and not policy.privileged:
        yield FieldError(f"{cpath}.privileged", "privileged containers are refused by the policy")
    for index, device in enumerate(config.devices):
        yield from _device(device, f"{cpath}.devices[{index}]", policy, ctx)
    allowed_caps = {hostkeys.capability(c) for c in policy.cap_add}
    for index, cap in enumerate(config.cap_add):
        if hostkeys.capability(cap) not in allowed_caps:
            message = f"capability {cap!r} is not allowed by the policy"
            yield FieldError(f"{cpath}.capAdd[{index}]", message)
    if config.network_mode is not None:
        yield from _network(
            config.network_mode, service, f"{cpath}.networkMode", policy, ctx, names
        )


def _image(image: str, path: str, policy: Policy) -> Iterator[FieldError]:
    try:
        repository = reference.parse(image).repository
    except ValueError:
        return  # validation reports it
    registry = registry_of(repository)
    if policy.registries is not None:
        allowed = {_registry_key(r) for r in policy.registries}
        if _registry_key(registry) not in allowed:
            yield FieldError(path, f"registry {registry!r} is not allowed by the policy")
    if policy.image_prefixes is not None:
        forms = {image, normalised(repository)}
        if not any(f.startswith(p) for f in forms for p in policy.image_prefixes):
            yield FieldError(path, f"image {image!r} matches no allowed image prefix")


def registry_of(repository: str) -> str:
    """The registry part as the engine reads it: the first component when it looks like a host."""
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first
    return "docker.io"


def normalised(repository: str) -> str:
    """`nginx` -> `docker.io/library/nginx`: the full name policy prefixes can match."""
    registry = registry_of(repository)
    if _registry_key(registry) != "docker.io":
        return repository
    path = repository.removeprefix(registry + "/")
    return f"docker.io/{path if '/' in path else 'library/' + path}"


def _registry_key(registry: str) -> str:
    lowered = registry.lower()
    return "docker.io" if lowered in _DOCKER_HUB else lowered


def _under(path: str, parent: str) -> bool:
    return parent in ("/", path) or path.startswith(parent + "/")


def _volume(volume: str, path: str, policy: Policy, ctx: Context) -> Iterator[FieldError]:
    source = volume.split(":", 1)[0]
    if not source.startswith("/"):
        if not _VOLUME_NAME.fullmatch(source):
            message = f"{source!r} is neither a volume name nor an absolute host path"
            yield FieldError(path, message)
        return
    resolved = clean(ctx.resolve(clean(source)))
    # The state dir is protected where it really is (it may be a symlink into an allowed prefix).
    state_dir = clean(ctx.resolve(ctx.state_dir)) if ctx.state_dir else None
    reason = bind_refusal(resolved, policy, state_dir)
    if reason is not None:
        shown = source if resolved == source else f"{source} (resolved to {resolved})"
        yield FieldError(path, f"bind of {shown} is refused: {reason}")


def bind_refusal(host: str, policy: Policy, state_dir: str | None) -> str | None:
    """Why a (resolved) host path may not be bound, or None when it may.

    A protected path (`SENSITIVE`, the state dir) is reachable only through an allowed prefix
    at or below it (`/etc/myapp` allows `/etc/myapp/x`), and a bind that contains one (`/`)
    only when the policy names that protected path itself."""
    allowed = [clean(p) for p in policy.bind_prefixes]
    if not any(_under(host, a) for a in allowed):
        return f"outside the allowed host paths {', '.join(allowed) or '(none)'}"
    protected = [*SENSITIVE, *([clean(state_dir)] if state_dir else [])]
    for spot in protected:
        named = spot in allowed
        if spot == host or (spot != "/" and _under(host, spot)):
            if not named and not any(
                a != "/" and _under(host, a) and _under(a, spot) for a in allowed
            ):
                return f"{spot} is protected; only a policy naming it may allow it"
        elif _under(spot, host) and not named:
            return f"it contains {spot}, which is protected"
    return None


def _device(device: str, path: str, policy: Policy, ctx: Context) -> Iterator[FieldError]:
    try:
        host = hostkeys.device_mapping(device).host
    except ValueError:
        return  # validation reports it
    resolved = clean(ctx.resolve(clean(host)))  # the device a symlink really names
    if not any(fnmatch.fnmatchcase(resolved, glob) for glob in policy.devices):
        shown = host if resolved == host else f"{host} (resolved to {resolved})"
        yield FieldError(path, f"device {shown} is not allowed by the policy")


def _network(
    mode: str, service: Service, path: str, policy: Policy, ctx: Context, names: set[str]
) -> Iterator[FieldError]:
    if mode == "host" and not policy.host_network:
        yield FieldError(path, "host networking is refused by the policy")
    if not mode.startswith("container:"):
        return
    other = mode.removeprefix("container:")
    own = other.removeprefix(f"fleet.{ctx.device_id}.")
    if not policy.container_network:
        yield FieldError(path, "container: networking is refused by the policy")
    elif own not in names or own == service.service_name:
        message = f"{other!r} is not another service of this device"
        yield FieldError(path, message)
