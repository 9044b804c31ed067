"""Which images are on the device, so a pass can create at once instead of pulling first.

An image the engine listed a container of ours with, or that a pull found, is taken as present
without asking again. One not known is asked about in the background (a pass never waits for
the engine): until the answer comes, the service waits (no pull), and the pass the answer kicks
creates it or pulls. A create that finds the image gone (`docker image prune`), or a pull that
failed, marks it gone: it is pulled at once (a retry when due), asking nothing first (the pull
itself looks whether the image is there). Floating tags (`latest`) are never present: they are
pulled again for every new container.
"""

from __future__ import annotations

from collections.abc import Callable

from fleet_agent import reference
from fleet_agent.lookups import Lookups
from fleet_agent.ports import EngineAPI
from fleet_agent.runtime import Container
from fleet_agent.workers import Workers


class KnownImages:
    """Used by the pass thread only (the answers come back through `Lookups`)."""

    def __init__(self, engine: EngineAPI, workers: Workers, on_done: Callable[[], None]) -> None:
        self.engine = engine
        self._known: set[str] = set()
        self._gone: set[str] = set()
        self._asked: Lookups[str, bool] = Lookups(workers, on_done)

    def seen(self, containers: list[Container]) -> None:
        images = {c.image for c in containers if c.image}
        self._known |= images
        self._gone -= images

    def pulled(self, image: str) -> None:
        self._known.add(image)
        self._gone.discard(image)

    def gone(self, image: str) -> None:
        self._known.discard(image)
        self._gone.add(image)

    def present(self, image: str) -> bool | None:
        """Whether the image is on the device; None while the engine is being asked."""
        if image in self._known:
            return True
        if image in self._gone or _floating(image):
            return False
        answer = self._asked.ask(image, lambda: self.engine.image_present(image))
        if answer is None:
            return None
        found = answer is True  # an engine error: the pull that follows finds it, or says why
        if found:
            self._known.add(image)
        return found

    def asking(self) -> bool:
        return self._asked.under_way()

    def close(self, timeout: float) -> None:
        self._asked.close(timeout)


def _floating(image: str) -> bool:
    """A floating tag (`latest`), or a name that is no reference (the pull says why)."""
    try:
        return reference.parse(image).floating
    except ValueError:
        return True
