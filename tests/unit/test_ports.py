"""The cancel token the engine's pulls listen to."""

from __future__ import annotations

from fleet_agent.ports import Cancel


def test_a_cancel_calls_what_was_registered_once() -> None:
    cancel, calls = Cancel(), []
    cancel.on_cancel(lambda: calls.append("closed"))
    cancel.cancel()
    cancel.cancel()
    assert cancel.cancelled
    assert calls == ["closed"]


def test_registering_after_a_cancel_calls_at_once() -> None:
    cancel, calls = Cancel(), []
    cancel.cancel()
    cancel.on_cancel(lambda: calls.append("closed"))
    assert calls == ["closed"]


def test_an_unregistered_callback_is_not_called() -> None:
    cancel, calls = Cancel(), []
    forget = cancel.on_cancel(lambda: calls.append("closed"))
    forget()
    cancel.cancel()
    assert calls == []
