"""No traceback ever reaches a user: random and mutated manifests, fed to `skiff apply` and
`skiff create` against a real apiserver, end in exit 0 (the manifest happened to be valid) or
exit 1 with one `error:` line, and the apiserver never fails internally and keeps serving.

Manifests start from the project's examples and are mutated as a careless or hostile user
would: fields dropped or replaced by values of the wrong type, huge strings and numbers,
broken or alias-laden YAML text, random text. The CLI runs in this process (`cli.main.main`,
whose catch-all turns any unexpected exception into an `unexpected ... a bug in skiff` line,
which fails the test as a traceback would), so a hundred examples take seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.apiserver import ApiServerProcess
from fixtures.examples import project_documents
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cli.main import main
from skiff.api import limits

BASES = [p.values[0] for p in project_documents() if p.values[0]["kind"] != "Namespace"]
MIB = 1024 * 1024

# Values of every JSON type and of sizes that cross the limits, for fields to be replaced with.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "-", "0", "1.5", "500m", "10Gi", "Always", "TCP", "a" * 254,
                     "x" * (limits.MAX_ANNOTATIONS_BYTES + 1)]),
)
STRINGS = st.one_of(st.text(max_size=40), st.sampled_from(
    ["", " ", "-", "a" * 64, "A_B", "1", "-1", "0.5", "1e3", "500m", "1Ki", "10Gi", "Never",
     "*/1 * * * 1", "app=web", "x" * (limits.MAX_ANNOTATIONS_BYTES + 1)]))
INTEGERS = st.one_of(st.integers(-(2**31), 2**31), st.sampled_from([0, -1, 2**31, 2**63 - 1]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                      max_leaves=12)


# Words of the server's refusals (field.ErrorType's), to see how many examples reached it.
SERVER_WORDS = ("Invalid value", "Required value", "Unsupported value", "Forbidden",
                "Too long", "Duplicate value", "Too many", "field is immutable",
                "already exists")


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a manifest, to the document itself (()) included."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


# What a mangled manifest's text gets: YAML's syntax, and scalars and nesting that Python
# cannot take as they come (an integer of 5000 digits, a date that is none, deep nesting).
MANGLES = ["", ":", "- ", "\n", "  ", "[", "{", "&a ", "*a", "!!binary ", "!!set ", "---\n",
           "\t", '"', "'", " 2001-13-45", " " + "1" * 5000, " 0x" + "f" * 5000,
           "[" * 5000, "{a: " * 5000]


def same_type(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same JSON type: what gets past the CLI's type checks to the
    server's validation."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return INTEGERS
    if isinstance(value, float):
        return st.floats(allow_nan=False)
    if isinstance(value, str):
        return STRINGS
    if isinstance(value, list):
        return st.sampled_from([[], value + value, value[:1] * 3])
    if isinstance(value, dict):
        return st.sampled_from([{}, dict(list(value.items())[:1])])
    return st.none()


@st.composite
def mutated_objects(draw: st.DrawFn) -> Any:
    doc: Any = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(paths(doc))))
        if not path:
            doc = draw(VALUES) if draw(st.integers(0, 9)) == 0 else doc
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["drop", "retype", "same", "same", "same", "wrap",
                                       "add"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "retype":
            parent[path[-1]] = draw(VALUES)
        elif action == "same":
            parent[path[-1]] = draw(same_type(parent[path[-1]]))
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(max_size=12))] = draw(VALUES)
    return doc


@st.composite
def texts(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text) of a manifest: a mutated object as YAML or JSON, possibly with its
    text mangled, or YAML-looking noise."""
    kind = draw(st.sampled_from(["yaml", "yaml", "json", "mangled", "noise", "aliases"]))
    if kind == "noise":
        alphabet = st.sampled_from([*"abkind:Pod-v1 []{}&*!|>'\"#\n\t,?%@`0.~<=", "---"])
        return "m.yaml", "".join(draw(st.lists(alphabet, max_size=200)))
    doc = draw(mutated_objects())
    if kind == "json":
        return "m.json", json.dumps(doc, allow_nan=True)
    text = yaml.safe_dump(doc, sort_keys=False)
    if kind == "mangled":
        for _ in range(draw(st.integers(1, 5))):
            at = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 5))
            text = text[:at] + draw(st.sampled_from(MANGLES)) + text[at + cut:]
    elif kind == "aliases":
        text = "x: &a [" + ",".join(["lol"] * 9) + "]\n" + "".join(
            f"x{i}: &a{i} [{','.join([f'*a{i - 1}' if i > 1 else '*a'] * 9)}]\n"
            for i in range(1, draw(st.integers(1, 9)))) + text
    return "m.yaml", text


@pytest.fixture(scope="module")
def target(private_apiserver: ApiServerProcess, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[ApiServerProcess, Path, str]:
    """The private apiserver (its log is this module's alone), a folder for manifests and
    their client config, and a namespace to put what is valid in."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "config").write_text(f"server: {private_apiserver.address}\n")
    namespace = f"fuzz-{uuid.uuid4().hex[:6]}"
    assert run(folder, "create", "namespace", namespace)[0] == 0
    return private_apiserver, folder, namespace


def run(folder: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(folder / "config"), *args])
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=100, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(manifest=texts(), verb=st.sampled_from(["apply", "create"]))
def test_no_manifest_makes_a_traceback(target: tuple[ApiServerProcess, Path, str],
                                       manifest: tuple[str, str], verb: str) -> None:
    _, folder, namespace = target
    name, text = manifest
    (folder / name).write_text(text)
    code, _, stderr = run(folder, verb, "-f", str(folder / name), "-n", namespace)
    assert "Traceback" not in stderr and "a bug in skiff" not in stderr, stderr
    assert "Unexpected <class" not in stderr, stderr  # gRPC's words for a server exception
    errors = [line for line in stderr.splitlines() if not line.startswith("Warning: ")]
    event("exit 0" if code == 0 else "exit 1: refused by the server" if any(
        word in stderr for word in SERVER_WORDS) else "exit 1: refused by the CLI")
    if code == 0:
        assert errors == [], stderr
    else:
        assert code == 1, stderr
        assert len(errors) == 1 and errors[0].startswith("error: "), stderr


def test_the_apiserver_never_failed_and_still_serves(
        target: tuple[ApiServerProcess, Path, str]) -> None:
    # Runs after the property (file order): what it did must have left no trace in the log.
    server, folder, namespace = target
    log = server.log()
    for sign in ("Traceback", "INTERNAL", "storage error", "Exception calling application"):
        assert sign not in log, log[-3000:]
    code, out, err = run(folder, "create", "configmap", "after", "-n", namespace)
    assert (code, out) == (0, "configmap/after created\n"), err
