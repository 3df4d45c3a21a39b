"""The node image's name follows its content: the version, then a hash of what it is made
from (packages, Python requirements, the builder's code), so an unchanged recipe is reused
and any change builds a new image. Node names are checked before anything is made."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from cluster.errors import ClusterError
from cluster.nodehost import run_node
from cluster.nodeimage import PACKAGES, Recipe, project_recipe

REPO = Path(__file__).resolve().parents[3]


def test_the_recipe_is_this_checkouts_version_and_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    recipe = project_recipe()
    assert recipe.version == project["version"]
    assert list(recipe.requirements) == project["dependencies"]
    assert re.fullmatch(rf"skiff-node:{re.escape(recipe.version)}-[0-9a-f]{{12}}", recipe.tag)


def test_the_tag_changes_with_any_ingredient_and_only_then() -> None:
    base = Recipe(version="0.1.0", requirements=("grpcio>=1.85", "PyYAML>=6"), builder="b1")
    assert Recipe(version="0.1.0", requirements=("PyYAML>=6", "grpcio>=1.85"),
                  builder="b1").tag == base.tag  # the order of a list is no change
    changed = [
        replace(base, version="0.2.0"),
        replace(base, requirements=(*base.requirements, "cryptography>=42")),
        replace(base, packages=(*PACKAGES, "socat")),
        replace(base, builder="b2"),
    ]
    tags = {r.tag for r in changed}
    assert base.tag not in tags and len(tags) == len(changed)


def test_a_version_that_is_no_valid_tag_is_made_one() -> None:
    assert Recipe(version="0.1.0+dev.3", requirements=()).tag.startswith(
        "skiff-node:0.1.0_dev.3-")


@pytest.mark.parametrize("name", ["Node1", "node_1", "-node", "node-", "n" * 64, ""])
def test_a_node_name_that_is_no_dns_label_is_refused_before_anything_is_made(
        name: str) -> None:
    with pytest.raises(ClusterError, match="node name"):
        run_node(name, "bridge", image="skiff-node:none")
