"""Which images a pass takes as present without asking the engine again."""

from __future__ import annotations

from typing import cast

from fleet_agent.images import KnownImages
from fleet_agent.ports import EngineAPI, EngineError
from fleet_agent.runtime import Container
from fleet_agent.workers import Workers

from .scenario import Held, Inline


class Inspector:
    def __init__(self, present: set[str], fail: bool = False) -> None:
        self.present = present
        self.fail = fail
        self.asked: list[str] = []

    def image_present(self, image: str) -> bool:
        self.asked.append(image)
        if self.fail:
            raise EngineError("unavailable", "engine unreachable")
        return image in self.present


def known(engine: Inspector, workers: Workers | None = None) -> KnownImages:
    return KnownImages(cast(EngineAPI, engine), workers or Inline(), lambda: None)


def test_an_image_found_once_is_not_asked_about_again_and_one_found_gone_is_not_present() -> None:
    engine = Inspector({"app:1"})
    images = known(engine)
    assert images.present("app:1") and images.present("app:1")
    assert engine.asked == ["app:1"]
    images.gone("app:1")  # a create found it pruned: pulled at once, without asking
    assert images.present("app:1") is False
    assert engine.asked == ["app:1"]
    images.pulled("app:1")
    assert images.present("app:1")


def test_an_image_not_known_is_asked_about_in_the_background_and_answered_later() -> None:
    engine, held = Inspector({"app:1"}), Held()
    images = known(engine, held)
    assert images.present("app:1") is None and images.asking()
    assert images.present("app:1") is None and len(held.jobs) == 1  # never asked twice at once
    held.jobs.pop()()
    assert not images.asking()
    assert images.present("app:1") is True
    assert engine.asked == ["app:1"]


def test_images_of_listed_containers_and_finished_pulls_are_known_without_asking() -> None:
    engine = Inspector(set())
    images = known(engine)
    images.seen([Container("c1", "n", "web", "h", "web:2", "running")])
    images.pulled("db:3")
    assert images.present("web:2") and images.present("db:3")
    assert engine.asked == []


def test_a_floating_tag_an_engine_error_or_a_bad_name_is_never_present() -> None:
    images = known(Inspector({"app:latest", "app"}))
    assert not images.present("app:latest") and not images.present("app")
    assert not known(Inspector(set(), fail=True)).present("app:1")
    assert not images.present("Bad Name")
