"""What `-f` names, and the objects a command acts on.

Sources: a file, a folder (its *.yaml, *.yml and *.json files, sorted; with `recursive`, those
of its subfolders too), or `-` for standard input. A file holds one or more YAML documents
(`---` between them, `...` ending one, empty ones skipped) or JSON; a `kind: List` document
stands for its items. Every document of every source is read and checked (YAML syntax, a
mapping, a served apiVersion and kind, field types) before a command sends anything, so a bad
file leaves nothing half-applied. Errors name the file, and the line where YAML can tell it.

The second half resolves what a command acts on from its arguments (`TYPE NAME...`,
`TYPE/NAME...`, `-f`, `TYPE -l SELECTOR`, `TYPE --all`): `delete`, `label` and `annotate`
share it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from cli.errors import CliError
from skiff.api import convert, kinds

STDIN = "-"
EXTENSIONS = (".yaml", ".yml", ".json")


class ManifestError(CliError):
    """A source that cannot be read as objects; nothing has been sent."""


@dataclass(frozen=True)
class Manifest:
    """One object of a source, as the file gives it (JSON-shaped: string keys, no dates)."""

    source: str  # the file as messages name it; "STDIN" for standard input
    data: dict[str, Any]
    kind: kinds.Kind

    @property
    def name(self) -> str:
        return self._metadata_text("name")

    @property
    def namespace(self) -> str:
        return self._metadata_text("namespace")

    def _metadata_text(self, field: str) -> str:
        meta = self.data.get("metadata")
        value = meta.get(field) if isinstance(meta, dict) else None
        return value if isinstance(value, str) else ""

    def describe(self) -> str:
        return convert.describe(self.data)


# ---- reading sources ----


def load(
    sources: Sequence[str], *, recursive: bool = False, stdin: TextIO | None = None
) -> list[Manifest]:
    """Every object of every source, in order; raises ManifestError for the first problem."""
    manifests: list[Manifest] = []
    stdin_read = False
    for source in sources:
        if source == STDIN:
            if stdin_read:
                raise ManifestError("standard input can be read only once (-f - given twice)")
            stdin_read = True
            text = (stdin or sys.stdin).read()
            manifests.extend(parse(text, "STDIN"))
            continue
        for path in expand(source, recursive=recursive):
            manifests.extend(parse(_read(path), str(path)))
    return manifests


def expand(source: str, *, recursive: bool = False) -> list[Path]:
    """The files a source names: itself, or a folder's manifest files in name order."""
    if source.startswith(("http://", "https://")):
        raise ManifestError(
            f"{source}: reading manifests from a URL is not supported; "
            "download it and pass the file"
        )
    path = Path(source)
    if path.is_dir():
        return sorted(_folder_files(path, recursive))
    if not path.exists():
        raise ManifestError(f'the path "{source}" does not exist')
    return [path]


def _folder_files(folder: Path, recursive: bool) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            if recursive:
                yield from _folder_files(entry, recursive)
        elif entry.suffix.lower() in EXTENSIONS and entry.is_file():
            yield entry


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(
            f"error reading {path}: not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except OSError as err:
        raise ManifestError(f"error reading {path}: {err.strerror or err}") from None


# ---- parsing ----


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with two changes. Keys become strings as they are built, as
    Kubernetes' YAML-to-JSON step makes them (`1`, `true`): a Python dict would otherwise merge
    the keys `1` and `true`, which are equal in Python. And a key given twice is an error, as in
    Kubernetes' YAML reader: a mapping naming `image` twice is a mistake to report, not one to
    guess about."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)  # the error for a non-mapping
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may repeat keys on purpose: the explicit one wins
            key = _key_text(self.construct_object(key_node, deep=True))
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f'mapping key "{key}" already defined at line {lines[key] + 1}',
                    key_node.start_mark,
                )
            lines[key] = key_node.start_mark.line
        self.flatten_mapping(node)  # resolves `<<` merge keys into node.value, first to last
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _key_text(self.construct_object(key_node, deep=True))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def parse(text: str, source: str) -> list[Manifest]:
    """The objects of one source's text; raises ManifestError naming `source`."""
    manifests: list[Manifest] = []
    for number, (line, doc) in enumerate(_documents(text, source), start=1):
        if doc is None:
            continue  # an empty document: `---` twice, or only comments
        where = f"document {number}" + (f" (line {line})" if line else "")
        for data in _flatten(_json_shaped(doc), source, where):
            manifests.append(_manifest(data, source))
    return manifests


def _documents(text: str, source: str) -> Iterator[tuple[int | None, Any]]:
    """(first line, value) of each document. This is yaml.safe_load_all, composed document by
    document so that messages can say on which line a document starts."""
    if source.lower().endswith(".json"):
        try:
            yield 1, json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(
                f"error parsing {source}: line {err.lineno}, column {err.colno}: {err.msg}"
            ) from None
        return
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else None
            yield line, loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ManifestError(f"error parsing {source}: {_yaml_problem(err)}") from None
    finally:
        loader.dispose()


def _yaml_problem(err: yaml.YAMLError) -> str:
    if not isinstance(err, yaml.MarkedYAMLError):
        return str(err)
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = err.problem or err.context or "invalid YAML"
    if err.context and err.problem:
        context_mark = err.context_mark
        at = (
            f" that starts on line {context_mark.line + 1}"
            if context_mark and (mark is None or context_mark.line != mark.line)
            else ""
        )
        problem += f" ({err.context}{at})"
    return where + problem


def _json_shaped(value: Any) -> Any:
    """A YAML value as JSON has it, which is what the server reads: keys become strings as
    Kubernetes' YAML-to-JSON step makes them (`true`, `1`), unquoted timestamps RFC 3339
    strings, `!!binary` base64."""
    if isinstance(value, dict):
        return {_key_text(k): _json_shaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_shaped(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        text = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return text
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(_json_shaped(key))


def _flatten(doc: Any, source: str, where: str) -> Iterator[dict[str, Any]]:
    """A document's objects: itself, or the items of a List."""
    if not isinstance(doc, dict):
        raise ManifestError(
            f"error parsing {source}: {where} is {_a(doc)}, not an object "
            "(a mapping with apiVersion, kind and metadata)"
        )
    kind = doc.get("kind")
    if isinstance(kind, str) and _is_list_kind(kind) and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(
                f"error parsing {source}: {where}: items of a {kind} must be "
                f"a list, got {_a(items)}"
            )
        for index, item in enumerate(items):
            yield from _flatten(item, source, f"{where} item {index}")
        return
    yield doc


def _is_list_kind(kind: str) -> bool:
    if kind == "List":
        return True
    try:
        kinds.by_kind(kind.removesuffix("List"))
    except kinds.UnknownKindError:
        return False
    return kind.endswith("List")


def _a(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _manifest(data: dict[str, Any], source: str) -> Manifest:
    """Checks what can be checked without the server, as the server will: a served kind at a
    served apiVersion, and every field of the right type."""
    api_version, kind_name = data.get("apiVersion", ""), data.get("kind", "")
    if not isinstance(api_version, str) or not isinstance(kind_name, str):
        raise ManifestError(
            f"{source}: {convert.describe(data)}: apiVersion and kind must be strings"
        )
    try:
        kind = kinds.for_manifest(api_version, kind_name)
    except kinds.UnknownKindError as err:
        raise ManifestError(f"{source}: {convert.describe(data)}: {err}") from None
    try:
        convert.from_dict(data)
    except convert.ConversionError as err:
        raise ManifestError(
            f"{source}: {err.subject or convert.describe(data)} is invalid: "
            + "; ".join(err.errors)
        ) from None
    return Manifest(source, data, kind)


# ---- where objects go ----


def target_namespace(manifest: Manifest, explicit: str | None, default: str) -> str:
    """The namespace of a manifest's object: its own, else `-n`, else the default; "" for a
    kind without namespaces. An object naming another namespace than `-n` is an error, as in
    kubectl: the flag must not silently send it elsewhere, nor be silently ignored."""
    if not manifest.kind.namespaced:
        return ""
    own = manifest.namespace
    if own and explicit and own != explicit:
        raise ManifestError(
            f'the namespace from the provided object "{own}" does not match the namespace '
            f"\"{explicit}\". You must pass '--namespace={own}' to perform this operation."
        )
    return own or explicit or default


def print_warnings(warnings: Sequence[str]) -> None:
    """Server warnings, one line each on stderr, as kubectl prints them."""
    for warning in warnings:
        print(f"Warning: {warning}", file=sys.stderr, flush=True)
