"""Tests for skiff.api.selectors: label/field selectors and name validation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from skiff.api.selectors import (
    NODE_SELECTOR_OPERATORS,
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    escape_field_value,
    field_selector_from_set,
    label_selector_from_proto_like,
    label_selector_from_set,
    match_everything,
    match_node_selector_requirement,
    match_nothing,
    parse_field_selector,
    parse_label_selector,
    unescape_field_value,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_key,
    validate_label_value,
    validate_node_selector_requirement,
)

# ---------------------------------------------------------------------------
# Label selector parsing
# ---------------------------------------------------------------------------

PARSE_CASES = [
    # (input, canonical string)
    ("", ""),
    ("   ", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("a", "a"),
    ("!a", "!a"),
    ("a in (x,y)", "a in (x,y)"),
    ("a in (y,x,y)", "a in (x,y)"),
    ("a notin (x,y)", "a notin (x,y)"),
    ("  a  =  b  ,  c  ", "a=b,c"),
    ("\ta\n=\rb", "a=b"),
    ("z=1,a=2,m", "a=2,m,z=1"),
    ("x in(a),!y,z", "x in (a),!y,z"),
    ("a=", "a="),
    ("a==", "a=="),
    ("a!=", "a!="),
    ("a=,b=c", "a=,b=c"),
    ("a in ()", "a in ()"),
    ("a notin ()", "a notin ()"),
    ("a in (b,)", "a in (,b)"),
    ("a in (,b)", "a in (,b)"),
    ("a in (,)", "a in ()"),
    ("a in (,,b)", "a in (,b)"),
    ("a in (b,,c)", "a in (,b,c)"),
    ("example.com/app=web", "example.com/app=web"),
    ("app.kubernetes.io/name in (web, api)", "app.kubernetes.io/name in (api,web)"),
    ("!example.com/canary", "!example.com/canary"),
    # "in" and "notin" are keywords only in operator position.
    ("in in (in)", "in in (in)"),
    ("notin notin (notin)", "notin notin (notin)"),
    ("in=notin", "in=notin"),
    ("in", "in"),
    ("!in", "!in"),
    ("a=in", "a=in"),
    ("Key_1.x-y=Val_2.z-w", "Key_1.x-y=Val_2.z-w"),
    ("a=b,a=b", "a=b,a=b"),
]


@pytest.mark.parametrize(("text", "canonical"), PARSE_CASES)
def test_parse_label_selector_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize(("text", "canonical"), PARSE_CASES)
def test_parse_label_selector_round_trips(text: str, canonical: str) -> None:
    selector = parse_label_selector(text)
    again = parse_label_selector(str(selector))
    assert again == selector
    assert hash(again) == hash(selector)
    assert str(again) == canonical


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", [Requirement("a", Operator.EQUALS, ("b",))]),
        ("a==b", [Requirement("a", Operator.DOUBLE_EQUALS, ("b",))]),
        ("a!=b", [Requirement("a", Operator.NOT_EQUALS, ("b",))]),
        ("a", [Requirement("a", Operator.EXISTS)]),
        ("!a", [Requirement("a", Operator.DOES_NOT_EXIST)]),
        ("a in (y,x)", [Requirement("a", Operator.IN, ("x", "y"))]),
        ("a notin (x)", [Requirement("a", Operator.NOT_IN, ("x",))]),
        ("a in ()", [Requirement("a", Operator.IN, ("",))]),
        (
            "b,a=1",
            [Requirement("a", Operator.EQUALS, ("1",)), Requirement("b", Operator.EXISTS)],
        ),
    ],
)
def test_parse_label_selector_requirements(text: str, expected: list[Requirement]) -> None:
    assert list(parse_label_selector(text).requirements) == expected


def test_requirement_order_does_not_affect_equality() -> None:
    first = parse_label_selector("a=1,b in (x,y),!c")
    second = parse_label_selector("!c, b in (y,x), a=1")
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


LABEL_PARSE_ERRORS = [
    # (input, substrings that must appear in the message)
    ("a in (b", ['"a in (b"', "expected ')'", "'b'", "end of string"]),
    ("a in b", ["expected '('", "'b'"]),
    ("a in (b c)", ["expected ')' or ','", "'c'"]),
    ("a notin", ["expected '(' after 'notin'", "end of string"]),
    ("a in (=)", ["expected a value", "'='"]),
    ("a in (b,=)", ["expected a value or ','", "'='"]),
    ("a=(b)", ["expected a value after '='", "'('"]),
    ("a!=)", ["expected a value after '!='", "')'"]),
    ("a b", ["expected an operator", 'key "a"', "'b'"]),
    ("a)", ["expected an operator", "')'"]),
    ("a>b", ['key "a"', "the value must be an integer", '"b"']),
    ("a<1.5", ["the value must be an integer", '"1.5"']),
    ("a>-1", ['invalid value "-1" for label key "a"']),
    ("a>", ["the value must be an integer", '""']),
    ("a>=1", ["expected a value after '>'", "'='"]),
    ("!a=b", ["after '!a'", "'='"]),
    ("!", ["expected a label key after '!'", "end of string"]),
    ("!!a", ["expected a label key after '!'", "'!'"]),
    ("!=a", ["expected a label key, '!' or end of string", "'!='"]),
    (",", ["expected a label key", "','"]),
    ("=b", ["expected a label key", "'='"]),
    ("a=b,", ["after ','", "end of string"]),
    ("a=b,,c", ["after ','", "','"]),
    ("a=b c", ["after 'a=b'", "'c'"]),
    ("a=b=c", ["after 'a=b'", "'='"]),
    ("a=b)", ["after 'a=b'", "')'"]),
    ("-a=b", ['invalid label key "-a"', "name part must consist of alphanumeric"]),
    ("a-=b", ['invalid label key "a-"']),
    ("a/b/c=d", ['invalid label key "a/b/c"', "a qualified name"]),
    ("/a=b", ['invalid label key "/a"', "prefix part must be non-empty"]),
    ("a/=b", ['invalid label key "a/"', "name part must be non-empty"]),
    ("Example.com/a=b", ["prefix part a lowercase RFC 1123 subdomain"]),
    ("x" * 64 + "=b", ["name part must be no more than 63 characters"]),
    ("a=-b", ['invalid value "-b" for label key "a"', "a valid label must"]),
    ("a=b-", ['invalid value "b-"']),
    ("a in (ok,bad!)", ["expected ')' or ','", "'!'"]),
    ("a in (ok,-bad)", ['invalid value "-bad"']),
    ("a=" + "v" * 64, ["must be no more than 63 characters"]),
    ("a=b√", ['invalid value "b√"']),
]


@pytest.mark.parametrize(("text", "fragments"), LABEL_PARSE_ERRORS)
def test_parse_label_selector_errors_name_the_problem(text: str, fragments: list[str]) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    message = str(info.value)
    assert message.startswith("invalid label selector ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid label selector"):
        parse_label_selector("a in (")


# ---------------------------------------------------------------------------
# Label selector matching
# ---------------------------------------------------------------------------

MATCH_CASES = [
    # (selector, labels, expected)
    ("", {}, True),
    ("", {"a": "b"}, True),
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a==b", {"a": "b", "x": "y"}, True),
    ("a!=b", {"a": "b"}, False),
    ("a!=b", {"a": "c"}, True),
    ("a!=b", {}, True),  # != matches objects without the key
    ("a", {"a": ""}, True),
    ("a", {"b": "a"}, False),
    ("!a", {}, True),
    ("!a", {"a": ""}, False),
    ("a in (x,y)", {"a": "y"}, True),
    ("a in (x,y)", {"a": "z"}, False),
    ("a in (x,y)", {}, False),
    ("a notin (x,y)", {"a": "x"}, False),
    ("a notin (x,y)", {"a": "z"}, True),
    ("a notin (x,y)", {}, True),  # notin matches objects without the key
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("a!=", {}, True),
    ("a!=", {"a": ""}, False),
    ("a in ()", {"a": ""}, True),
    ("a in ()", {"a": "x"}, False),
    ("a notin ()", {"a": "x"}, True),
    ("a notin ()", {"a": ""}, False),
    ("a in (,x)", {"a": ""}, True),
    ("a in (,x)", {"a": "x"}, True),
    ("a=b,c", {"a": "b", "c": "d"}, True),
    ("a=b,c", {"a": "b"}, False),
    ("a=b,!c", {"a": "b"}, True),
    ("a=b,a=c", {"a": "b"}, False),
    ("env in (prod,staging),tier notin (db),!canary", {"env": "prod", "tier": "web"}, True),
    ("env in (prod,staging),tier notin (db),!canary", {"env": "prod", "tier": "db"}, False),
    ("env in (prod,staging),tier notin (db),!canary", {"env": "prod", "canary": "1"}, False),
    ("x.io/k=v", {"x.io/k": "v"}, True),
    ("x.io/k=v", {"k": "v"}, False),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCH_CASES)
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_everything_and_nothing() -> None:
    everything = match_everything()
    nothing = match_nothing()
    assert everything.is_empty()
    assert everything.matches({}) and everything.matches({"a": "b"})
    assert not nothing.is_empty()
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert nothing != everything
    assert parse_label_selector("") == everything
    assert not parse_label_selector("a").is_empty()
    # Like Kubernetes, Nothing() has no string form.
    assert str(nothing) == ""
    # Adding to Nothing cannot make it match anything.
    assert nothing.add(Requirement("a", Operator.EXISTS)) == nothing


def test_nothing_cannot_have_requirements() -> None:
    with pytest.raises(SelectorError, match="match-nothing"):
        LabelSelector((Requirement("a", Operator.EXISTS),), matches_nothing=True)


def test_add_returns_new_selector() -> None:
    base = parse_label_selector("a=1")
    extended = base.add(Requirement("b", Operator.NOT_IN, ("x",)))
    assert str(base) == "a=1"
    assert str(extended) == "a=1,b notin (x)"
    assert extended.matches({"a": "1"}) and not extended.matches({"a": "1", "b": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("a=b", {"a": "b"}),
        ("a==b", {"a": "b"}),
        ("a in (b)", {"a": "b"}),
        ("a in (b,c)", {}),
        ("a!=b", {}),
        ("a notin (b)", {}),
        ("a,!b", {}),
        ("a=1,b=2,c!=3,d in (4)", {"a": "1", "b": "2", "d": "4"}),
        ("a=", {"a": ""}),
        ("a=x,a=y", {"a": "x"}),  # contradictory: any value is a valid index hint
    ],
)
def test_required_equalities(text: str, expected: dict[str, str]) -> None:
    selector = parse_label_selector(text)
    assert selector.required_equalities() == expected
    assert selector.exact_matches() == expected
    for key, value in expected.items():
        assert selector.requires_exact_match(key) == value
    assert selector.requires_exact_match("zzz") is None


def test_label_selector_from_set() -> None:
    selector = label_selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"})
    assert not selector.matches({"a": "1"})
    assert label_selector_from_set({}).is_empty()
    with pytest.raises(SelectorError, match='invalid label set: invalid label key "-x"'):
        label_selector_from_set({"-x": "1"})


# ---------------------------------------------------------------------------
# Requirement construction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "operator", "values", "fragments"),
    [
        ("a", Operator.IN, (), ["values set can't be empty", 'key "a"']),
        ("a", Operator.NOT_IN, (), ["values set can't be empty"]),
        ("a", Operator.EQUALS, (), ["one single value"]),
        ("a", Operator.NOT_EQUALS, ("x", "y"), ["one single value", '["x", "y"]']),
        ("a", Operator.EXISTS, ("x",), ["values set must be empty"]),
        ("a", Operator.DOES_NOT_EXIST, ("x",), ["values set must be empty"]),
        ("a", Operator.GREATER_THAN, ("1", "2"), ["exactly one value"]),
        ("a", Operator.LESS_THAN, ("x",), ["must be an integer", '"x"']),
        ("a", "bogus", ("x",), ['unsupported operator "bogus"', 'key "a"']),
        ("", Operator.EXISTS, (), ['invalid label key ""', "name part must be non-empty"]),
        ("a", Operator.IN, ("-x",), ['invalid value "-x"']),
        ("a", Operator.IN, "xy", ["must be a sequence of strings"]),
    ],
)
def test_requirement_validation(
    key: str, operator: Operator, values: tuple[str, ...], fragments: list[str]
) -> None:
    with pytest.raises(SelectorError) as info:
        Requirement(key, operator, values)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_requirement_accepts_operator_strings_and_normalises_values() -> None:
    requirement = Requirement("a", "in", ("y", "x", "y"))  # type: ignore[arg-type]
    assert requirement.operator is Operator.IN
    assert requirement.values == ("x", "y")
    assert requirement == Requirement("a", Operator.IN, ("x", "y"))


@pytest.mark.parametrize(
    ("operator", "value", "labels", "expected", "text"),
    [
        (Operator.GREATER_THAN, "5", {"a": "6"}, True, "a>5"),
        (Operator.GREATER_THAN, "5", {"a": "5"}, False, "a>5"),
        (Operator.LESS_THAN, "5", {"a": "4"}, True, "a<5"),
        (Operator.LESS_THAN, "5", {"a": "-4"}, True, "a<5"),
        (Operator.LESS_THAN, "5", {"a": "x"}, False, "a<5"),
        (Operator.LESS_THAN, "5", {}, False, "a<5"),
    ],
)
def test_order_requirements(
    operator: Operator, value: str, labels: dict[str, str], expected: bool, text: str
) -> None:
    requirement = Requirement("a", operator, (value,))
    assert requirement.matches(labels) is expected
    assert str(requirement) == text


# ---------------------------------------------------------------------------
# metav1.LabelSelector conversion
# ---------------------------------------------------------------------------


def expr(key: str, operator: str, *values: str) -> SimpleNamespace:
    return SimpleNamespace(key=key, operator=operator, values=list(values))


def test_from_proto_like_empty_matches_everything() -> None:
    assert label_selector_from_proto_like({}, []).is_empty()
    assert label_selector_from_proto_like(None, None).matches({"any": "thing"})


@pytest.mark.parametrize(
    ("match_labels", "expressions", "canonical"),
    [
        ({"app": "web"}, [], "app=web"),
        ({}, [expr("tier", "In", "b", "a")], "tier in (a,b)"),
        ({}, [expr("tier", "NotIn", "db")], "tier notin (db)"),
        ({}, [expr("gpu", "Exists")], "gpu"),
        ({}, [expr("gpu", "DoesNotExist")], "!gpu"),
        (
            {"app": "web", "env": "prod"},
            [expr("tier", "In", "fe"), {"key": "canary", "operator": "DoesNotExist"}],
            "app=web,!canary,env=prod,tier in (fe)",
        ),
        ({}, [SimpleNamespace(key="gpu", operator="Exists", values=None)], "gpu"),
    ],
)
def test_from_proto_like(
    match_labels: dict[str, str], expressions: list[object], canonical: str
) -> None:
    selector = label_selector_from_proto_like(match_labels, expressions)
    assert str(selector) == canonical


def test_from_proto_like_matching() -> None:
    selector = label_selector_from_proto_like(
        {"app": "web"}, [expr("env", "NotIn", "dev"), expr("zone", "Exists")]
    )
    assert selector.matches({"app": "web", "zone": "a"})
    assert selector.matches({"app": "web", "zone": "a", "env": "prod"})
    assert not selector.matches({"app": "web", "zone": "a", "env": "dev"})
    assert not selector.matches({"app": "web"})


@pytest.mark.parametrize(
    ("match_labels", "expressions", "fragments"),
    [
        ({}, [expr("a", "Equals", "x")], ['"Equals" is not a valid label selector operator']),
        ({}, [expr("a", "in", "x")], ['"in" is not a valid label selector operator']),
        ({}, [expr("a", "Gt", "1")], ['"Gt" is not a valid label selector operator']),
        ({}, [SimpleNamespace(key="a")], ["matchExpressions[0]", "not a valid"]),
        ({}, [expr("a", "In")], ["matchExpressions[0]", "values set can't be empty"]),
        ({}, [expr("ok", "Exists"), expr("a", "NotIn")], ["matchExpressions[1]"]),
        ({}, [expr("a", "Exists", "x")], ["values set must be empty"]),
        ({}, [expr("a", "DoesNotExist", "x")], ["values set must be empty"]),
        ({}, [expr("-a", "Exists")], ['invalid label key "-a"']),
        ({}, [expr("a", "In", "-x")], ['invalid value "-x"']),
        ({}, [SimpleNamespace(key="a", operator="In", values="xy")], ["list of strings"]),
        ({"-bad": "x"}, [], ['invalid matchLabels entry "-bad"', "invalid label key"]),
        ({"a": "bad value"}, [], ['invalid matchLabels entry "a"', 'invalid value "bad value"']),
    ],
)
def test_from_proto_like_errors(
    match_labels: dict[str, str], expressions: list[object], fragments: list[str]
) -> None:
    with pytest.raises(SelectorError) as info:
        label_selector_from_proto_like(match_labels, expressions)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


# ---------------------------------------------------------------------------
# Node selector requirements
# ---------------------------------------------------------------------------

NODE_MATCH_CASES = [
    # (labels, key, operator, values, expected)
    ({"zone": "a"}, "zone", "In", ["a", "b"], True),
    ({"zone": "c"}, "zone", "In", ["a", "b"], False),
    ({}, "zone", "In", ["a"], False),
    ({"zone": "c"}, "zone", "NotIn", ["a"], True),
    ({"zone": "a"}, "zone", "NotIn", ["a"], False),
    ({}, "zone", "NotIn", ["a"], True),
    ({"gpu": ""}, "gpu", "Exists", [], True),
    ({}, "gpu", "Exists", [], False),
    ({}, "gpu", "DoesNotExist", [], True),
    ({"gpu": "1"}, "gpu", "DoesNotExist", [], False),
    ({"cores": "8"}, "cores", "Gt", ["4"], True),
    ({"cores": "4"}, "cores", "Gt", ["4"], False),
    ({"cores": "2"}, "cores", "Lt", ["4"], True),
    ({"cores": "4"}, "cores", "Lt", ["4"], False),
    ({"cores": "-3"}, "cores", "Lt", ["4"], True),
    ({"cores": "+5"}, "cores", "Gt", ["4"], True),
    ({"cores": "007"}, "cores", "Gt", ["6"], True),
    ({"cores": "eight"}, "cores", "Gt", ["4"], False),  # non-integer label never matches
    ({"cores": "8.5"}, "cores", "Gt", ["4"], False),
    ({"cores": " 8"}, "cores", "Gt", ["4"], False),
    ({"cores": "1_000"}, "cores", "Gt", ["4"], False),
    ({"cores": "\u0668"}, "cores", "Gt", ["4"], False),  # non-ASCII digit
    ({"cores": "9223372036854775808"}, "cores", "Gt", ["4"], False),  # > int64
    ({"cores": "9223372036854775807"}, "cores", "Gt", ["4"], True),
    ({}, "cores", "Gt", ["4"], False),
    # Invalid requirements match nothing rather than raising.
    ({"cores": "8"}, "cores", "Gt", ["four"], False),
    ({"cores": "8"}, "cores", "Gt", ["1", "2"], False),
    ({"zone": "a"}, "zone", "In", [], False),
    ({}, "zone", "NotIn", [], False),
    ({"zone": "a"}, "zone", "Equals", ["a"], False),
    ({"zone": "a"}, "zone", "in", ["a"], False),
    ({"zone": "a"}, "zone", "In", "a", False),
    ({}, "-bad", "DoesNotExist", [], False),
]


@pytest.mark.parametrize(("labels", "key", "operator", "values", "expected"), NODE_MATCH_CASES)
def test_match_node_selector_requirement(
    labels: dict[str, str], key: str, operator: str, values: list[str], expected: bool
) -> None:
    assert match_node_selector_requirement(labels, key, operator, values) is expected


def test_node_selector_operators_constant() -> None:
    assert set(NODE_SELECTOR_OPERATORS) == {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"}


@pytest.mark.parametrize(
    ("key", "operator", "values"),
    [
        ("zone", "In", ["a"]),
        ("zone", "NotIn", ["a", "b"]),
        ("gpu", "Exists", []),
        ("example.com/gpu", "DoesNotExist", []),
        ("cores", "Gt", ["4"]),
        ("cores", "Lt", ["0"]),
    ],
)
def test_validate_node_selector_requirement_valid(
    key: str, operator: str, values: list[str]
) -> None:
    assert validate_node_selector_requirement(key, operator, values) == []


@pytest.mark.parametrize(
    ("key", "operator", "values", "fragments"),
    [
        ("zone", "In", [], ["values: Required value", "'In' or 'NotIn'"]),
        ("zone", "NotIn", [], ["values: Required value"]),
        ("gpu", "Exists", ["x"], ["values: Forbidden", "'Exists' or 'DoesNotExist'"]),
        ("gpu", "DoesNotExist", ["x"], ["values: Forbidden"]),
        ("cores", "Gt", [], ["single value", "'Lt' or 'Gt'"]),
        ("cores", "Lt", ["1", "2"], ["single value"]),
        ("cores", "Gt", ["four"], ['values[0]: Invalid value: "four"', "must be an integer"]),
        ("cores", "Gt", ["1.5"], ["must be an integer"]),
        ("zone", "Equals", ["a"], ['operator: Invalid value: "Equals"', "not a valid selector"]),
        ("zone", "", ["a"], ['operator: Invalid value: ""']),
        ("-zone", "Exists", [], ['key: Invalid value: "-zone"', "name part"]),
        ("zone", "In", ["ok", "not ok"], ['values[1]: Invalid value: "not ok"']),
    ],
)
def test_validate_node_selector_requirement_errors(
    key: str, operator: str, values: list[str], fragments: list[str]
) -> None:
    errors = validate_node_selector_requirement(key, operator, values)
    assert errors
    joined = "\n".join(errors)
    for fragment in fragments:
        assert fragment in joined, joined


def test_validate_node_selector_requirement_reports_every_problem() -> None:
    errors = validate_node_selector_requirement("-k", "Gt", ["x", "y"])
    assert len(errors) == 4  # count, two non-integers, bad key
    assert any(e.startswith("key:") for e in errors)


# ---------------------------------------------------------------------------
# Name / label validation
# ---------------------------------------------------------------------------

QUALIFIED_NAME_REGEX_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def test_label_key_message_matches_kubernetes_wording() -> None:
    assert validate_label_key("-bad") == [QUALIFIED_NAME_REGEX_MESSAGE]


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "A",
        "1",
        "app",
        "App_Name.x-y",
        "a" * 63,
        "example.com/a",
        "kubernetes.io/hostname",
        "a.b-c.d/Name_1",
        ("a" * 63 + ".") * 3 + "a" * 61 + "/x",  # 253-char prefix
    ],
)
def test_valid_label_keys(key: str) -> None:
    assert validate_label_key(key) == []


@pytest.mark.parametrize(
    ("key", "fragments"),
    [
        ("", ["name part must be non-empty", "name part must consist"]),
        ("-a", ["name part must consist"]),
        ("a-", ["name part must consist"]),
        ("a b", ["name part must consist"]),
        ("a" * 64, ["name part must be no more than 63 characters"]),
        ("/a", ["prefix part must be non-empty"]),
        ("a/", ["name part must be non-empty"]),
        ("a/b/c", ["a qualified name must consist", "'example.com/MyName'"]),
        ("Example.com/a", ["prefix part a lowercase RFC 1123 subdomain"]),
        ("exa_mple.com/a", ["prefix part a lowercase RFC 1123 subdomain"]),
        ("a" * 254 + "/x", ["prefix part must be no more than 253 characters"]),
        ("ä", ["name part must consist"]),
        ("a\n", ["name part must consist"]),
    ],
)
def test_invalid_label_keys(key: str, fragments: list[str]) -> None:
    errors = validate_label_key(key)
    joined = "\n".join(errors)
    assert errors
    for fragment in fragments:
        assert fragment in joined, joined


@pytest.mark.parametrize("value", ["", "a", "A1", "my_value", "12345", "a.b-c_d", "v" * 63])
def test_valid_label_values(value: str) -> None:
    assert validate_label_value(value) == []


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("-a", ["a valid label must be an empty string", "'MyValue',  or 'my_value'"]),
        ("a-", ["a valid label must be"]),
        ("a b", ["a valid label must be"]),
        ("a/b", ["a valid label must be"]),
        ("v" * 64, ["must be no more than 63 characters"]),
        ("é" * 32, ["must be no more than 63 characters", "a valid label"]),  # bytes count
        ("a\n", ["a valid label must be"]),
    ],
)
def test_invalid_label_values(value: str, fragments: list[str]) -> None:
    errors = validate_label_value(value)
    joined = "\n".join(errors)
    for fragment in fragments:
        assert fragment in joined, joined


@pytest.mark.parametrize(
    "name", ["a", "0", "web", "my-app", "a.b", "a-1.b-2.c", "x" * 253, "1.2.3.4"]
)
def test_valid_dns1123_subdomains(name: str) -> None:
    assert validate_dns1123_subdomain(name) == []


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("", ["a lowercase RFC 1123 subdomain must consist", "'example.com'"]),
        ("Web", ["a lowercase RFC 1123 subdomain"]),
        ("-web", ["a lowercase RFC 1123 subdomain"]),
        ("web-", ["a lowercase RFC 1123 subdomain"]),
        ("a..b", ["a lowercase RFC 1123 subdomain"]),
        (".a", ["a lowercase RFC 1123 subdomain"]),
        ("a_b", ["a lowercase RFC 1123 subdomain"]),
        ("x" * 254, ["must be no more than 253 characters"]),
        ("web\n", ["a lowercase RFC 1123 subdomain"]),
    ],
)
def test_invalid_dns1123_subdomains(name: str, fragments: list[str]) -> None:
    joined = "\n".join(validate_dns1123_subdomain(name))
    for fragment in fragments:
        assert fragment in joined, joined


@pytest.mark.parametrize("name", ["a", "0", "web", "my-app-1", "x" * 63])
def test_valid_dns1123_labels(name: str) -> None:
    assert validate_dns1123_label(name) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.b", ["must not contain dots"]),
        ("x" * 64, ["must be no more than 63 characters"]),
        (
            "My_App",
            [
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',"
                "  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ],
        ),
    ],
)
def test_invalid_dns1123_labels(name: str, expected: list[str]) -> None:
    assert validate_dns1123_label(name) == expected


def test_empty_dns1123_label_is_invalid() -> None:
    errors = validate_dns1123_label("")
    assert len(errors) == 1 and "a lowercase RFC 1123 label" in errors[0]


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

FIELD_PARSE_CASES = [
    # (input, canonical string)
    ("", ""),
    (",", ""),
    ("metadata.name=web", "metadata.name=web"),
    ("metadata.name==web", "metadata.name=web"),
    ("status.phase!=Failed", "status.phase!=Failed"),
    ("b=2,a=1", "a=1,b=2"),
    ("a=1,,b=2,", "a=1,b=2"),
    ("a=", "a="),
    ("a!=", "a!="),
    (r"a=x\,y", r"a=x\,y"),
    (r"a=x\=y", r"a=x\=y"),
    (r"a=x\\y", r"a=x\\y"),
    (r"a==\=", r"a=\="),
    ("a = b", "a = b"),  # whitespace is data, as in Kubernetes
    ("spec.nodeName=", "spec.nodeName="),
]


@pytest.mark.parametrize(("text", "canonical"), FIELD_PARSE_CASES)
def test_parse_field_selector_canonical(text: str, canonical: str) -> None:
    selector = parse_field_selector(text)
    assert str(selector) == canonical
    assert parse_field_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", [FieldRequirement("a", Operator.EQUALS, "b")]),
        ("a==b", [FieldRequirement("a", Operator.EQUALS, "b")]),
        ("a!=b", [FieldRequirement("a", Operator.NOT_EQUALS, "b")]),
        (r"a=x\,y\=z\\", [FieldRequirement("a", Operator.EQUALS, "x,y=z\\")]),
        ("a b=c d", [FieldRequirement("a b", Operator.EQUALS, "c d")]),
        ("a!b=c", [FieldRequirement("a!b", Operator.EQUALS, "c")]),
        ("a=!b", [FieldRequirement("a", Operator.EQUALS, "!b")]),
    ],
)
def test_parse_field_selector_terms(text: str, expected: list[FieldRequirement]) -> None:
    assert list(parse_field_selector(text).requirements) == expected


FIELD_ERRORS = [
    ("a", ['can\'t understand "a"', "<field>=<value>"]),
    ("a=b,c", ['can\'t understand "c"']),
    ("a<b", ['can\'t understand "a<b"']),
    ("a=b=c", ["unescaped '='", '"b=c"', "\\="]),
    ("a===b", ["unescaped '='"]),
    ("a!==b", ["unescaped '='"]),
    (r"a=b\x", ["invalid escape sequence '\\x'"]),
    ("a=b\\", ["lone '\\'"]),
    ("=b", ["missing field name before '='"]),
    ("!=b", ["missing field name before '!='"]),
]


@pytest.mark.parametrize(("text", "fragments"), FIELD_ERRORS)
def test_parse_field_selector_errors(text: str, fragments: list[str]) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    message = str(info.value)
    assert message.startswith("invalid field selector ")
    for fragment in fragments:
        assert fragment in message, message


OBJECT_FIELDS = {"metadata.name": "web-1", "status.phase": "Running", "spec.nodeName": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name=web-2", False),
        ("metadata.name!=web-2", True),
        ("metadata.name!=web-1", False),
        ("metadata.name=web-1,status.phase=Running", True),
        ("metadata.name=web-1,status.phase!=Running", False),
        ("spec.nodeName=", True),  # unscheduled pods
        ("spec.nodeName!=", False),
        ("metadata.namespace=", True),  # a missing field reads as ""
        ("metadata.namespace=default", False),
        ("metadata.namespace!=default", True),
    ],
)
def test_field_selector_matches(text: str, expected: bool) -> None:
    assert parse_field_selector(text).matches(OBJECT_FIELDS.get) is expected


def test_field_selector_helpers() -> None:
    selector = parse_field_selector("metadata.name=web,status.phase!=Failed,spec.nodeName==n1")
    assert selector.fields() == {"metadata.name", "status.phase", "spec.nodeName"}
    assert selector.required_equalities() == {"metadata.name": "web", "spec.nodeName": "n1"}
    assert selector.requires_exact_match("spec.nodeName") == "n1"
    assert selector.requires_exact_match("status.phase") is None
    assert not selector.is_empty()
    assert parse_field_selector("").is_empty()
    assert parse_field_selector("").fields() == set()
    assert hash(selector) == hash(parse_field_selector(str(selector)))


def test_field_selector_from_set() -> None:
    selector = field_selector_from_set({"spec.nodeName": "n1", "metadata.name": "a,b"})
    assert str(selector) == r"metadata.name=a\,b,spec.nodeName=n1"
    assert parse_field_selector(str(selector)) == selector
    assert selector.matches({"spec.nodeName": "n1", "metadata.name": "a,b"}.get)


@pytest.mark.parametrize(
    "value", ["", "plain", "a,b", "a=b", "back\\slash", "\\,=\\", "ends\\", "ünï"]
)
def test_field_value_escaping_round_trips(value: str) -> None:
    escaped = escape_field_value(value)
    assert unescape_field_value(escaped) == value
    term = f"f={escaped}"
    assert parse_field_selector(term).required_equalities() == {"f": value}


def test_field_requirement_validation() -> None:
    with pytest.raises(SelectorError, match="unsupported field selector operator"):
        FieldRequirement("a", Operator.IN, "b")
    with pytest.raises(SelectorError, match="unsupported field selector operator"):
        FieldRequirement("a", "~", "b")  # type: ignore[arg-type]
    assert FieldRequirement("a", "==", "b").operator is Operator.EQUALS  # type: ignore[arg-type]


def test_field_selector_is_order_insensitive() -> None:
    assert parse_field_selector("a=1,b!=2") == parse_field_selector("b!=2,a=1")
    assert FieldSelector() == parse_field_selector("")


# ---------------------------------------------------------------------------
# apimachinery's own tables (pkg/labels/selector_test.go)
# ---------------------------------------------------------------------------


# TestSelectorParse: these parse and print back as written (less spaces); those do not parse.
@pytest.mark.parametrize("text", ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ",
                                  "x= ,z= ", "!x", "x>1", "x>1,z<5"])
def test_k8s_selector_parse_prints_back(text: str) -> None:
    assert str(parse_label_selector(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["x=a||y=b", "x==a==b", "!x=a", "x<a"])
def test_k8s_selector_parse_errors(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_k8s_deterministic_parse() -> None:
    assert str(parse_label_selector("x=a,a=x")) == str(parse_label_selector("a=x,x=a"))


# TestSelectorMatches
FOO_BAZ = {"foo": "bar", "baz": "blah"}


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("", {"x": "y"}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
    ("notin=in", {"notin": "in"}, True),
    ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True),
    ("x>1", {"x": "2"}, True),
    ("x<1", {"x": "0"}, True),
    ("x=z", {}, False),
    ("x=y", {"x": "z"}, False),
    ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
    ("x", {"y": "z"}, False),
    ("!x", {"x": "z"}, False),
    ("x>1", {"x": "0"}, False),
    ("x<1", {"x": "2"}, False),
    ("foo=bar", FOO_BAZ, True),
    ("baz=blah", FOO_BAZ, True),
    ("foo=bar,baz=blah", FOO_BAZ, True),
    ("foo=blah", FOO_BAZ, False),
    ("baz=bar", FOO_BAZ, False),
    ("foo=bar,foobar=bar,baz=blah", FOO_BAZ, False),
    # Gt/Lt: a missing label or one that is not an int64 never matches.
    ("replicas>2", {"replicas": "3"}, True),
    ("replicas>2", {"replicas": "2"}, False),
    ("replicas>2", {}, False),
    ("replicas>2", {"replicas": "v3"}, False),
    ("replicas>2", {"replicas": "9223372036854775808"}, False),
    ("replicas<10", {"replicas": "-5"}, True),
])
def test_k8s_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


# TestSetMatches
@pytest.mark.parametrize("pairs", [{}, {"foo": "bar"}, {"baz": "blah"},
                                   {"foo": "bar", "baz": "blah"}])
def test_k8s_set_matches(pairs: dict[str, str]) -> None:
    assert label_selector_from_set(pairs).matches(FOO_BAZ)
    assert label_selector_from_set({}).is_empty()


# TestLexer, TestLexerSequence, TestParserLookahead: the tokens of a selector.
def _kinds(text: str) -> list[str]:
    from skiff.api.selectors import _lex

    return [token.kind.name for token in _lex(text)]


@pytest.mark.parametrize(("text", "kind"), [
    ("", "END"), (",", "COMMA"), ("notin", "NOT_IN"), ("in", "IN"), ("=", "EQUALS"),
    ("==", "DOUBLE_EQUALS"), (">", "GREATER_THAN"), ("<", "LESS_THAN"),
    ("!", "DOES_NOT_EXIST"), ("!=", "NOT_EQUALS"), ("(", "OPEN_PAR"), (")", "CLOSED_PAR"),
    ("~", "IDENTIFIER"), ("||", "IDENTIFIER"),
])
def test_k8s_lexer(text: str, kind: str) -> None:
    from skiff.api.selectors import _lex

    token = _lex(text)[0]
    assert token.kind.name == kind and token.text == text


@pytest.mark.parametrize(("text", "kinds"), [
    ("key in ( value )", "IDENTIFIER IN OPEN_PAR IDENTIFIER CLOSED_PAR"),
    ("key notin ( value )", "IDENTIFIER NOT_IN OPEN_PAR IDENTIFIER CLOSED_PAR"),
    ("key in ( value1, value2 )",
     "IDENTIFIER IN OPEN_PAR IDENTIFIER COMMA IDENTIFIER CLOSED_PAR"),
    ("key", "IDENTIFIER"),
    ("!key", "DOES_NOT_EXIST IDENTIFIER"),
    ("()", "OPEN_PAR CLOSED_PAR"),
    ("", ""),
    ("x in (),y", "IDENTIFIER IN OPEN_PAR CLOSED_PAR COMMA IDENTIFIER"),
    ("== != (), = notin", "DOUBLE_EQUALS NOT_EQUALS OPEN_PAR CLOSED_PAR COMMA EQUALS NOT_IN"),
    ("key>2", "IDENTIFIER GREATER_THAN IDENTIFIER"),
    ("key<1", "IDENTIFIER LESS_THAN IDENTIFIER"),
])
def test_k8s_lexer_sequence(text: str, kinds: str) -> None:
    assert _kinds(text) == [*kinds.split(), "END"]


# TestParseOperator: every binary operator, and what is not one.
@pytest.mark.parametrize(("operator", "parses"), [
    ("in", True), ("=", True), ("==", True), (">", True), ("<", True), ("notin", True),
    ("!=", True), ("!", False), ("exists", False), ("(", False),
])
def test_k8s_parse_operator(operator: str, parses: bool) -> None:
    values = "(1)" if operator in ("in", "notin") else "1"
    if parses:
        parse_label_selector(f"x {operator} {values}")
    else:
        with pytest.raises(SelectorError):
            parse_label_selector(f"x {operator} {values}")


# TestRequirementConstructor: (key, operator, values, error fragment or "").
@pytest.mark.parametrize(("key", "operator", "values", "error"), [
    ("x1", "in", (), "values set can't be empty"),
    ("x2", "notin", (), "values set can't be empty"),
    ("x3", "in", ("foo",), ""),
    ("x4", "notin", ("foo",), ""),
    ("x5", "=", ("foo", "bar"), "one single value"),
    ("x6", "exists", (), ""),
    ("x7", "!", (), ""),
    ("x8", "exists", ("foo",), "values set must be empty"),
    ("x9", "in", ("bar",), ""),
    ("x10", "in", ("bar",), ""),
    ("x11", "gt", ("1",), ""),
    ("x12", "lt", ("6",), ""),
    ("x13", "gt", (), "exactly one value is required"),
    ("x14", "gt", ("bar",), "the value must be an integer"),
    ("x15", "lt", ("bar",), "the value must be an integer"),
    ("a" * 254, "exists", (), "invalid label key"),
    ("x16", "=", ("a" * 254,), "must be no more than 63 characters"),
    ("x17", "=", ("a b",), "invalid value"),
    ("x18", "unsupportedOp", (), "unsupported operator"),
])
def test_k8s_requirement_constructor(key: str, operator: str, values: tuple[str, ...],
                                     error: str) -> None:
    if error:
        with pytest.raises(SelectorError, match=error):
            Requirement(key, operator, values)  # type: ignore[arg-type]
    else:
        Requirement(key, operator, values)  # type: ignore[arg-type]


# TestToString: requirements in the order given print in that order, sorted by key only.
@pytest.mark.parametrize(("requirements", "printed"), [
    ([("x", "in", ("abc", "def")), ("y", "notin", ("jkl",)), ("z", "exists", ())],
     "x in (abc,def),y notin (jkl),z"),
    ([("x", "notin", ("abc", "def")), ("y", "!=", ("jkl",)), ("z", "!", ())],
     "x notin (abc,def),y!=jkl,!z"),
    ([("x", "notin", ("abc",)), ("y", "in", ("jkl", "mno")), ("z", "notin", ("",))],
     "x notin (abc),y in (jkl,mno),z notin ()"),
    ([("x", "=", ("abc",)), ("y", "==", ("jkl",)), ("z", "!=", ("a",)), ("z", "exists", ())],
     "x=abc,y==jkl,z!=a,z"),
    ([("x", "gt", ("2",)), ("y", "lt", ("8",)), ("z", "exists", ())], "x>2,y<8,z"),
    ([("z", "exists", ()), ("z", "!=", ("a",)), ("a", "=", ("b",))], "a=b,z,z!=a"),
])
def test_k8s_to_string(requirements: list[tuple[str, str, tuple[str, ...]]],
                       printed: str) -> None:
    selector = LabelSelector(tuple(Requirement(k, o, v)  # type: ignore[arg-type]
                                   for k, o, v in requirements))
    assert str(selector) == printed


@pytest.mark.parametrize(("text", "printed"), [
    ("z!=a,z", "z!=a,z"), ("z,z!=a", "z,z!=a"), ("b,a in (y,x),b!=c", "a in (x,y),b,b!=c"),
    ("x>1,x<5", "x>1,x<5"), ("x<5,x>1", "x<5,x>1"),
])
def test_requirements_on_one_key_print_in_the_order_written(text: str, printed: str) -> None:
    assert str(parse_label_selector(text)) == printed


def test_added_requirements_follow_those_on_the_same_key() -> None:
    selector = parse_label_selector("z!=a,b").add(Requirement("z", Operator.EXISTS),
                                                   Requirement("a", Operator.EXISTS))
    assert str(selector) == "a,b,z!=a,z"


# TestRequirementSelectorMatching
@pytest.mark.parametrize(("labels", "requirements", "expected"), [
    ({"x": "foo", "y": "baz"}, [("x", "in", ("foo",)), ("y", "notin", ("alpha",))], True),
    ({"x": "foo", "y": "baz"}, [("x", "in", ("foo",)), ("y", "in", ("alpha",))], False),
    ({"y": ""}, [("x", "notin", ("",)), ("y", "exists", ())], True),
    ({"y": ""}, [("x", "!", ()), ("y", "exists", ())], True),
    ({"y": ""}, [("x", "notin", ("",)), ("y", "!", ())], False),
    ({"y": "baz"}, [("x", "in", ("",))], False),
    ({"z": "2"}, [("z", "gt", ("1",))], True),
    ({"z": "v2"}, [("z", "gt", ("1",))], False),
])
def test_k8s_requirement_selector_matching(labels: dict[str, str],
                                           requirements: list[tuple[str, str, tuple[str, ...]]],
                                           expected: bool) -> None:
    selector = LabelSelector(tuple(Requirement(k, o, v)  # type: ignore[arg-type]
                                   for k, o, v in requirements))
    assert selector.matches(labels) is expected


# TestSetSelectorParser: (input, the requirements it parses to, or None if invalid).
_R = Requirement
SET_SELECTOR_PARSER: list[tuple[str, list[Requirement] | None]] = [
    ("", []),
    ("\rx", [_R("x", Operator.EXISTS)]),
    ("this-is-a-dns.domain.com/key-with-dash",
     [_R("this-is-a-dns.domain.com/key-with-dash", Operator.EXISTS)]),
    ("this-is-another-dns.domain.com/key-with-dash in (so,what)",
     [_R("this-is-another-dns.domain.com/key-with-dash", Operator.IN, ("so", "what"))]),
    ("0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
     [_R("0.1.2.domain/99", Operator.NOT_IN, ("10.10.100.1", "tick.tack.clock"))]),
    ("foo  in\t (abc)", [_R("foo", Operator.IN, ("abc",))]),
    ("x notin\n (abc)", [_R("x", Operator.NOT_IN, ("abc",))]),
    ("x  notin\t\t\t(abc,def)", [_R("x", Operator.NOT_IN, ("abc", "def"))]),
    ("x in (abc,def)", [_R("x", Operator.IN, ("abc", "def"))]),
    ("x in (abc,)", [_R("x", Operator.IN, ("abc", ""))]),
    ("x in (abc,abc)", [_R("x", Operator.IN, ("abc",))]),
    ("x in ()", [_R("x", Operator.IN, ("",))]),
    ("x in (a,,)", [_R("x", Operator.IN, ("a", ""))]),
    ("x in (a,,,)", [_R("x", Operator.IN, ("a", ""))]),
    ("x in (a,,,,,,)", [_R("x", Operator.IN, ("a", ""))]),
    ("x in (a,,a,,a,,a,,)", [_R("x", Operator.IN, ("a", ""))]),
    ("x in (,,)", [_R("x", Operator.IN, ("",))]),
    ("x in (,a,,b)", [_R("x", Operator.IN, ("", "a", "b"))]),
    ("x notin (abc,,def),bar,z in (),w",
     [_R("bar", Operator.EXISTS), _R("w", Operator.EXISTS),
      _R("x", Operator.NOT_IN, ("abc", "", "def")), _R("z", Operator.IN, ("",))]),
    ("x,y in (a)", [_R("x", Operator.EXISTS), _R("y", Operator.IN, ("a",))]),
    ("x=a", [_R("x", Operator.EQUALS, ("a",))]),
    ("x>1", [_R("x", Operator.GREATER_THAN, ("1",))]),
    ("x<7", [_R("x", Operator.LESS_THAN, ("7",))]),
    ("x=a,y!=b", [_R("x", Operator.EQUALS, ("a",)), _R("y", Operator.NOT_EQUALS, ("b",))]),
    ("x=a,y!=b,z in (h,i,j)",
     [_R("x", Operator.EQUALS, ("a",)), _R("y", Operator.NOT_EQUALS, ("b",)),
      _R("z", Operator.IN, ("h", "i", "j"))]),
    ("x=a||y=b", None),
    ("x,,y", None),
    (",x,y", None),
    ("x nott in (y)", None),
    ("x notin ( )", [_R("x", Operator.NOT_IN, ("",))]),
    ("x notin (, a)", [_R("x", Operator.NOT_IN, ("", "a"))]),
    ("a in (xyz),", None),
    ("a in (xyz)b notin ()", None),
    ("a ", [_R("a", Operator.EXISTS)]),
    ("a in (x,y,notin, z,in)", [_R("a", Operator.IN, ("in", "notin", "x", "y", "z"))]),
    ("a in (xyz abc)", None),
    ("a notin(", None),
    ("a (", None),
    ("(", None),
]


@pytest.mark.parametrize(("text", "expected"), SET_SELECTOR_PARSER,
                         ids=[case[0] for case in SET_SELECTOR_PARSER])
def test_k8s_set_selector_parser(text: str, expected: list[Requirement] | None) -> None:
    if expected is None:
        with pytest.raises(SelectorError):
            parse_label_selector(text)
    else:
        assert list(parse_label_selector(text).requirements) == expected


# TestAdd
def test_k8s_add() -> None:
    selector = match_everything().add(Requirement("key", Operator.IN, ("value",)))
    assert selector.requirements == (Requirement("key", Operator.IN, ("value",)),)
    selector = selector.add(Requirement("key2", Operator.EQUALS, ("value2",)))
    assert selector.requirements == (Requirement("key", Operator.IN, ("value",)),
                                     Requirement("key2", Operator.EQUALS, ("value2",)))


# TestSetSelectorString
@pytest.mark.parametrize(("pairs", "printed"), [
    ({}, ""), ({"app": "foo"}, "app=foo"), ({"app": "foo", "a": "b"}, "a=b,app=foo"),
])
def test_k8s_set_selector_string(pairs: dict[str, str], printed: str) -> None:
    assert str(label_selector_from_set(pairs)) == printed


# TestRequiresExactMatch
@pytest.mark.parametrize(("requirements", "key", "value"), [
    ([_R("key", Operator.IN, ("value",))], "key", "value"),
    ([_R("key", Operator.IN, ("value", "value2"))], "key", None),
    ([_R("key", Operator.IN, ("value", "value1")), _R("key2", Operator.IN, ("value2",))],
     "key2", "value2"),
    ([_R("key", Operator.EQUALS, ("value",))], "key", "value"),
    ([_R("key", Operator.DOUBLE_EQUALS, ("value",))], "key", "value"),
    ([_R("key", Operator.NOT_EQUALS, ("value",))], "key", None),
    ([_R("key", Operator.IN, ("value",)), _R("key2", Operator.IN, ("value2",))], "key",
     "value"),
])
def test_k8s_requires_exact_match(requirements: list[Requirement], key: str,
                                  value: str | None) -> None:
    assert LabelSelector(tuple(requirements)).requires_exact_match(key) == value


# TestValidatedSelectorFromSet
def test_k8s_validated_selector_from_set() -> None:
    assert label_selector_from_set({"key": "val"}).requirements == (
        Requirement("key", Operator.EQUALS, ("val",)),)
    with pytest.raises(SelectorError, match="must be no more than 63 characters"):
        label_selector_from_set(
            {"Key": "axahm2EJ8Phiephe2eixohbee9eGeiyees1thuozi1xoh0GiuH3diewi8iem7Nui"})
