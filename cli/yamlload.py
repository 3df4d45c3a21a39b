"""YAML as Kubernetes reads it, within bounds a hostile file cannot break.

A manifest is read by libyaml's event parser when PyYAML has it (a 100 MiB document in half a
second, against tens of seconds in pure Python), composed into nodes here, in Python, so that
three things are checked before anything is built from them:

- Nesting: at most MAX_DEPTH lists and mappings inside each other, aliases expanded (a chain
  of anchors, each nesting the one before, is deeper than any of them). go-yaml stops at 10000,
  but every step after parsing here (construction, conversion, merging) recurses in Python,
  whose stack holds about 1000 frames; no Kubernetes object nests more than a few dozen
  levels, and protobuf refuses messages nested past 100.
- Aliases: a "billion laughs" document is a few KB of anchors whose aliases expand into
  billions of nodes. go-yaml (which kubectl reads YAML with) counts the nodes it decodes and
  how many of them come from expanding aliases, and refuses a document when that share
  passes a ratio that shrinks as the document grows ("document contains excessive
  aliasing"). The same budget is kept here, with each node's expanded size computed once,
  so a bomb is refused after composing its few KB, never expanded.
- An anchor whose value contains an alias of itself (go-yaml: "anchor 'a' value contains
  itself"), which would expand forever.

Two of Kubernetes' reading rules are kept too: keys become strings as they are built, as its
YAML-to-JSON step makes them (`1`, `true`; a Python dict would merge `1` and `true`, which are
equal in Python), and a key given twice is an error, as in its YAML reader.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, Event, MappingStartEvent, NodeEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

LIBYAML: bool = yaml.__with_libyaml__  # else the pure-Python parser, slower

MAX_DEPTH = 100

# go-yaml's alias budget (yaml.v2 and v3, decode.go): below these counts a document is too
# small to police; above them, the share of decoded nodes that may come from expanding
# aliases falls from 99% to 10% as the document grows from 400,000 to 4,000,000 nodes.
_ALIASES_FLOOR = 100
_DECODES_FLOOR = 1000
_RATIO_RANGE_LOW = 400_000
_RATIO_RANGE_HIGH = 4_000_000


def allowed_alias_ratio(decodes: int) -> float:
    """The share of `decodes` nodes that may come from aliases (go-yaml's allowedAliasRatio)."""
    if decodes <= _RATIO_RANGE_LOW:
        return 0.99
    if decodes >= _RATIO_RANGE_HIGH:
        return 0.10
    span = _RATIO_RANGE_HIGH - _RATIO_RANGE_LOW
    return 0.99 - 0.89 * (decodes - _RATIO_RANGE_LOW) / span


class LimitExceeded(yaml.YAMLError):
    """A document past one of the bounds above; says where, as PyYAML's errors do."""

    def __init__(self, problem: str, event: Event) -> None:
        mark = event.start_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        super().__init__(where + problem)


class _BoundedComposer(Composer):
    """PyYAML's composer, counting depth and alias expansion as it goes.

    go-yaml checks its budget at every node it decodes; the share of aliases only grows while
    an alias expands and the allowed share only shrinks as the count grows, so checking once
    after adding an alias's whole expanded size refuses exactly the same documents."""

    if TYPE_CHECKING:
        def peek_event(self) -> Event | None: ...

    def __init__(self) -> None:
        super().__init__()
        self._start_document()

    def _start_document(self) -> None:
        self._depth = 0
        self._open_anchors: set[str] = set()  # anchors whose value is being composed
        self._expanded: dict[int, int] = {}  # id(node) -> nodes it stands for, expanded
        self._height: dict[int, int] = {}  # id(node) -> collections nested in it, expanded
        self._decodes = 1  # go-yaml counts the document node
        self._aliases = 0

    def compose_document(self) -> Node | None:
        self._start_document()
        try:
            return super().compose_document()
        finally:
            self._expanded, self._height = {}, {}  # the nodes live on; their counts need not

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            return self._compose_alias(event, parent, index)
        if isinstance(event, SequenceStartEvent | MappingStartEvent):
            return self._compose_collection(event, parent, index)
        return self._counted(super().compose_node(parent, index))

    def _compose_collection(self, event: NodeEvent, parent: Node | None,
                            index: int) -> Node | None:
        if self._depth == MAX_DEPTH:
            raise LimitExceeded(f"exceeded max depth of {MAX_DEPTH} (lists and mappings "
                                "nested inside each other)", event)
        self._depth += 1
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if event.anchor is not None:
                self._open_anchors.discard(event.anchor)
        return self._counted(node)

    def _counted(self, node: Node | None) -> Node | None:
        """A node just composed, not through an alias: one decode, and its expanded size
        (its children's were counted before it)."""
        if node is not None:
            children = _children(node)
            self._expanded[id(node)] = 1 + sum(self._expanded[id(c)] for c in children)
            self._height[id(node)] = (
                1 + max((self._height[id(c)] for c in children), default=0)
                if isinstance(node, SequenceNode | MappingNode) else 0)
        self._decodes += 1
        return node

    def _compose_alias(self, event: AliasEvent, parent: Node | None, index: int) -> Node | None:
        if event.anchor in self._open_anchors:
            raise LimitExceeded(f"anchor {event.anchor!r} value contains itself", event)
        node = super().compose_node(parent, index)  # the anchored node, or "undefined alias"
        assert node is not None
        if self._depth + self._height[id(node)] > MAX_DEPTH:
            raise LimitExceeded(f"exceeded max depth of {MAX_DEPTH} (lists and mappings "
                                f"nested inside each other, alias {event.anchor!r} expanded)",
                                event)
        size = self._expanded[id(node)]
        self._decodes += 1 + size
        self._aliases += size
        if (self._aliases > _ALIASES_FLOOR and self._decodes > _DECODES_FLOOR
                and self._aliases / self._decodes > allowed_alias_ratio(self._decodes)):
            raise LimitExceeded("document contains excessive aliasing", event)
        return node


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _KubernetesConstructor(SafeConstructor):
    """Keys as strings, no key twice, and scalars that Python cannot hold read as go-yaml
    reads them rather than failing."""

    def _int(self, node: ScalarNode) -> int | float | str:
        # go-yaml: an integer past 64 bits is a float when it reads as one, else a string.
        # Python would build it, or refuse past 4300 digits; neither JSON nor the server
        # could take it.
        try:
            value: int | None = self.construct_yaml_int(node)
        except ValueError:
            value = None
        if value is not None and -(2**63) <= value < 2**64:
            return value
        try:
            number = float(node.value)
        except ValueError:
            return str(node.value)
        return number if math.isfinite(number) else str(node.value)

    def _timestamp(self, node: ScalarNode) -> Any:
        # go-yaml: a timestamp-looking scalar that is no date (2001-13-45) is a string.
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return str(node.value)

    def _set(self, node: MappingNode) -> Iterator[dict[Any, Any]]:
        # go-yaml reads !!set as the mapping it is (its values null), which JSON can hold.
        data: dict[Any, Any] = {}
        yield data
        data.update(self.construct_mapping(node))

    yaml_constructors = {
        **SafeConstructor.yaml_constructors,
        "tag:yaml.org,2002:int": _int,
        "tag:yaml.org,2002:timestamp": _timestamp,
        "tag:yaml.org,2002:set": _set,
    }

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            return super().construct_mapping(node, deep=deep)  # the error for a non-mapping
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may repeat keys on purpose: the explicit one wins
            key = key_text(self.construct_object(key_node, deep=True))
            if key in lines:
                raise ConstructorError(
                    None,
                    None,
                    f'mapping key "{key}" already defined at line {lines[key] + 1}',
                    key_node.start_mark,
                )
            lines[key] = key_node.start_mark.line
        self.flatten_mapping(node)  # resolves `<<` merge keys into node.value, first to last
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_text(self.construct_object(key_node, deep=True))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def key_text(key: Any) -> str:
    """A mapping key as Kubernetes' YAML-to-JSON step writes it."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(json_shaped(key))


def json_shaped(value: Any) -> Any:
    """A YAML value as JSON has it, which is what the server reads: keys become strings,
    unquoted timestamps RFC 3339 strings, `!!binary` base64."""
    if isinstance(value, dict):
        return {key_text(k): json_shaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_shaped(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def too_deep(value: Any) -> bool:
    """Whether lists and mappings nest deeper than MAX_DEPTH in a value (read without
    recursion: a JSON file is parsed before it is checked)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth == MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


def documents(text: str) -> Iterator[tuple[int | None, Any]]:
    """(first line, value) of each document of a YAML stream, as yaml.safe_load_all reads
    them but within the bounds above; raises yaml.YAMLError."""
    loader: _FastLoader | _PureLoader = _FastLoader(text) if LIBYAML else _PureLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else None
            yield line, loader.construct_document(node)
    finally:
        loader.dispose()


class _PureLoader(Reader, Scanner, Parser, _BoundedComposer, _KubernetesConstructor, Resolver):
    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _KubernetesConstructor.__init__(self)
        Resolver.__init__(self)


if LIBYAML:
    from yaml._yaml import CParser

    class _FastLoader(CParser, _BoundedComposer, _KubernetesConstructor, Resolver):
        """libyaml's events, composed and constructed in Python."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            _KubernetesConstructor.__init__(self)
            Resolver.__init__(self)

        # CParser composes in C, where nothing above can count: use the Python composer.
        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
