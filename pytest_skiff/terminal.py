"""Messages to pytest's terminal, past output capture: a cluster taking 20 s to start
should say so even under -q, and a kept cluster must say how to reach it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def terminal_say(config: pytest.Config) -> Callable[..., None]:
    """A `say(message, *, err=False)` that writes to pytest's terminal."""
    reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
    capture: Any = config.pluginmanager.get_plugin("capturemanager")

    def say(message: str, *, err: bool = False) -> None:
        if reporter is None or capture is None:
            print(message, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(message)

    return say
