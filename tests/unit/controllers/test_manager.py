"""The controller manager's --controllers flag, as kube-controller-manager reads it."""

from __future__ import annotations

import pytest

from controllers.main import CONTROLLERS, chosen_controllers


def test_star_runs_every_controller_and_minus_leaves_one_out() -> None:
    assert chosen_controllers("*") == list(CONTROLLERS)
    assert "podgc" not in chosen_controllers("*,-podgc")
    assert chosen_controllers("job,cronjob") == ["job", "cronjob"]


def test_an_unknown_controller_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown controller 'replicaseet'"):
        chosen_controllers("replicaseet")
