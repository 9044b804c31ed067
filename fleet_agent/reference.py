"""Image reference grammar (Docker's distribution/reference), so bad names are refused at the door.

A target whose image reference the engine would refuse is rejected with 400 before anything is
done, and pulls need the repository and the tag apart (pulling a bare repository would fetch
every tag).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# The first component is a registry only when it looks like one (a dot, a port, localhost),
# as Docker decides; otherwise it is part of the (lowercase) repository path.
_DOMAIN = (
    rf"(?:localhost(?::[0-9]+)?|{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})+(?::[0-9]+)?"
    rf"|{_DOMAIN_COMPONENT}:[0-9]+|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"
)
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_MAX_NAME = 255
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class ImageRef(NamedTuple):
    repository: str
    tag: str | None
    digest: str | None

    @property
    def pull_tag(self) -> str:
        """What the engine's pull API wants beside the repository: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def floating(self) -> bool:
        """`latest` (or no tag) moves, so it is pulled again whenever a container is created."""
        return self.digest is None and self.tag in (None, "latest")


def parse(reference: str) -> ImageRef:
    """Split a reference; raise ValueError with the engine's wording when it is invalid."""
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        if reference != reference.lower() and _REFERENCE.fullmatch(reference.lower()):
            raise ValueError("invalid reference format: repository name must be lowercase")
        raise ValueError("invalid reference format")
    if len(match["name"]) > _MAX_NAME:
        raise ValueError(
            "invalid reference format: repository name must not be more than 255 characters"
        )
    digest = match["digest"]
    if digest is not None:
        algorithm, _, hexdigest = digest.partition(":")
        if len(hexdigest) != _DIGEST_LENGTHS.get(algorithm, len(hexdigest)):
            raise ValueError(
                f"invalid reference format: invalid checksum digest length ({algorithm})"
            )
        if hexdigest != hexdigest.lower():  # the engine takes lowercase hex only
            raise ValueError("invalid reference format: invalid checksum digest format")
    return ImageRef(match["name"], match["tag"], digest)
