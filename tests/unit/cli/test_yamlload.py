"""Reading hostile YAML: nesting, alias bombs and anchors that contain themselves end in one
clear error naming the place, never in a RecursionError or gigabytes of expanded aliases;
ordinary anchors and merges still read as before. The alias cases are go-yaml's
(limit_test.go and decode_test.go), which kubectl reads YAML with."""

from __future__ import annotations

import pytest
import yaml
from fixtures.hostile import ALIAS_BOMB

from cli import yamlload
from cli.manifests import ManifestError, parse
from cli.yamlload import MAX_DEPTH, allowed_alias_ratio

DEPTH_ERROR = r"exceeded max(imum)? (nesting )?depth"


@pytest.fixture(autouse=True, params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case with libyaml's events and with PyYAML's own parser (a PyYAML built
    without libyaml)."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    monkeypatch.setattr(yamlload, "LIBYAML", request.param == "libyaml")


def values(text: str) -> list[object]:
    return [value for _, value in yamlload.documents(text)]


def test_billion_laughs_is_refused_where_the_budget_runs_out() -> None:
    with pytest.raises(ManifestError, match=r"^error parsing bomb.yaml: line 9, column \d+: "
                                            r"document contains excessive aliasing$"):
        parse(ALIAS_BOMB, "bomb.yaml")


def test_go_yaml_limits_maps_with_100_aliases_are_refused_maps_alone_are_not() -> None:
    # limit_test.go at a tenth of its size: "1000kb of maps with 100 aliases" and "1000kb of
    # maps" (each {a} is three decodes; a hundred aliases of 25,000 of them pass the budget).
    maps = ",{a}" * (100 * 1024 // 4 - 100)
    with pytest.raises(yamlload.LimitExceeded, match="document contains excessive aliasing"):
        values("{a: &a [{a}" + maps + "], b: &b [*a" + ",*a" * 99 + "]}")
    (doc,) = values("a: &a [{a}" + maps + "]")
    assert isinstance(doc, dict) and len(doc["a"]) == len(maps) // 4 + 1


def test_alias_ratio_follows_go_yaml() -> None:
    assert allowed_alias_ratio(1000) == allowed_alias_ratio(400_000) == 0.99
    assert allowed_alias_ratio(4_000_000) == allowed_alias_ratio(10**9) == 0.10
    assert allowed_alias_ratio(2_200_000) == pytest.approx(0.545)


def test_ordinary_anchors_aliases_and_merges_still_read() -> None:
    (doc,) = values("base: &base {image: busybox, args: &args [a, b]}\n"
                    "one: {<<: *base, name: one}\n"
                    "two: {<<: *base, name: two, args: *args}\n"
                    + "".join(f"x{i}: *args\n" for i in range(200)))
    assert isinstance(doc, dict)
    assert doc["one"] == {"image": "busybox", "args": ["a", "b"], "name": "one"}
    assert doc["x199"] == ["a", "b"]


@pytest.mark.parametrize("text", [
    "a: &a\n  b: *a\n",  # decode_test.go
    "a: &a [" + "[" * 50 + "*a" + "]" * 50 + "]\n",
])
def test_an_anchor_containing_itself_is_refused(text: str) -> None:
    with pytest.raises(yamlload.LimitExceeded, match="anchor 'a' value contains itself"):
        values(text)


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    "x: " + "{" * 100_000,
    "- " * 100_000,
    "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 2000)),
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
], ids=["lists", "flow-mappings", "block-lists", "block-mappings", "one-too-deep"])
def test_deep_nesting_is_one_clear_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ManifestError, match=rf"^error parsing deep.yaml: line \d+, column "
                                            rf"\d+: {DEPTH_ERROR}"):
        parse(text, "deep.yaml")


def test_nesting_up_to_the_limit_reads() -> None:
    (doc,) = values("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    depth = 0
    while isinstance(doc, list):
        depth, doc = depth + 1, doc[0] if doc else None
    assert depth == MAX_DEPTH


def test_aliases_count_towards_the_depth_they_expand_to() -> None:
    # Each anchor nests the one before 20 deep: 6 of them are 120 deep once expanded.
    text = "a0: &a0 " + "[" * 20 + "1" + "]" * 20 + "\n" + "".join(
        f"a{i}: &a{i} " + "[" * 20 + f"*a{i - 1}" + "]" * 20 + "\n" for i in range(1, 6))
    with pytest.raises(yamlload.LimitExceeded, match=r"line 5, .*exceeded max depth of 100 .*"
                                                     r"alias 'a3' expanded"):
        values(text)
    (shallower,) = values(text.rsplit("a4:", 1)[0])  # 4 anchors: 80 deep
    assert isinstance(shallower, dict) and len(shallower) == 4


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 500 + "]" * 500])
def test_deep_json_is_one_clear_error(text: str) -> None:
    with pytest.raises(ManifestError, match=rf"^error parsing deep.json: {DEPTH_ERROR} of "
                                            rf"{MAX_DEPTH}"):
        parse(text, "deep.json")


def test_scalars_python_cannot_hold_read_as_go_yaml_reads_them() -> None:
    (doc,) = values("big: " + "1" * 5000 + "\nhex: 0x" + "f" * 40 + "\nfloaty: "
                    + "9" * 30 + "\nok: 0x1f\nunderscores: 1_000\nnodate: 2001-13-45\n"
                    "noffset: 2001-12-14t21:59:43.10-99:99\nset: !!set {x, y}\n")
    assert doc == {"big": "1" * 5000, "hex": "0x" + "f" * 40, "floaty": 1e30, "ok": 31,
                   "underscores": 1000, "nodate": "2001-13-45",
                   "noffset": "2001-12-14t21:59:43.10-99:99", "set": {"x": None, "y": None}}
