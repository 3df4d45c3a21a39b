"""What `-f` names, and the objects a command acts on.

Sources: a file, a folder (its *.yaml, *.yml and *.json files, sorted; with `recursive`, those
of its subfolders too), or `-` for standard input. A file holds one or more YAML documents
(`---` between them, `...` ending one, empty ones skipped) or JSON; a `kind: List` document
stands for its items. Every document of every source is read and checked (YAML syntax within
bounds on nesting and aliases, a mapping, a served apiVersion and kind, field types, a request
size the server accepts) before a command sends anything, so a bad file leaves nothing
half-applied. Errors name the file, and the line where YAML can tell it.

The second half resolves what a command acts on from its arguments (`TYPE NAME...`,
`TYPE/NAME...`, `-f`, `TYPE -l SELECTOR`, `TYPE --all`): `delete`, `label` and `annotate`
share it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from cli import oversize, yamlload
from cli.errors import CliError, one_line
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


def parse(text: str, source: str) -> list[Manifest]:
    """The objects of one source's text; raises ManifestError naming `source`."""
    manifests: list[Manifest] = []
    for number, (line, doc) in enumerate(_documents(text, source), start=1):
        if doc is None:
            continue  # an empty document: `---` twice, or only comments
        where = f"document {number}" + (f" (line {line})" if line else "")
        for data in _flatten(yamlload.json_shaped(doc), source, where):
            manifests.append(_manifest(data, source))
    return manifests


def _documents(text: str, source: str) -> Iterator[tuple[int | None, Any]]:
    """(first line, value) of each document, read within yamlload's bounds (depth, aliases)."""
    if source.lower().endswith(".json"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(
                f"error parsing {source}: line {err.lineno}, column {err.colno}: {err.msg}"
            ) from None
        except RecursionError:
            value = None  # deeper than Python's JSON reader goes: past MAX_DEPTH anyway
            too_deep = True
        else:
            too_deep = yamlload.too_deep(value)
        if too_deep:
            raise ManifestError(
                f"error parsing {source}: exceeded max depth of {yamlload.MAX_DEPTH} "
                "(lists and mappings nested inside each other)"
            )
        yield 1, value
        return
    try:
        yield from yamlload.documents(text)
    except yaml.YAMLError as err:
        raise ManifestError(f"error parsing {source}: {_yaml_problem(err)}") from None


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
    subject = convert.describe(data)
    oversize.check_request(source, subject, data)  # cheap; converting 100 MiB is not
    try:
        convert.from_dict(data)
    except convert.ConversionError as err:
        raise ManifestError(
            f"{source}: {err.subject or subject} is invalid: " + "; ".join(err.errors)
        ) from None
    return Manifest(source, data, kind)


def check_outgoing(manifest: Manifest, data: dict[str, Any]) -> None:
    """What a command sends for a manifest (its namespace set, maybe the last-applied
    annotation) within the server's request limit; raises before anything goes."""
    oversize.check_request(manifest.source, manifest.describe(), data)


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
        print(f"Warning: {one_line(warning)}", file=sys.stderr, flush=True)
