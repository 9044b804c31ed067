"""Which images are on the device, so a pass can create at once instead of pulling first.

An image the engine listed a container of ours with, or that a pull or an inspect found, is
taken as present without asking again; a create that finds it gone makes it be asked again.
Floating tags (`latest`) are never present: they are pulled again for every new container.
"""

from __future__ import annotations

from fleet_agent import reference
from fleet_agent.ports import EngineAPI, EngineError
from fleet_agent.runtime import Container


class KnownImages:
    """Used by the pass thread only."""

    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine
        self._known: set[str] = set()

    def seen(self, containers: list[Container]) -> None:
        self._known.update(c.image for c in containers if c.image)

    def pulled(self, image: str) -> None:
        self._known.add(image)

    def gone(self, image: str) -> None:
        self._known.discard(image)

    def present(self, image: str) -> bool:
        try:
            if reference.parse(image).floating:
                return False
            if image not in self._known and not self.engine.image_present(image):
                return False
        except (EngineError, ValueError):
            return False  # the pull that follows says why
        self._known.add(image)
        return True
