"""Label selectors, field selectors and name validation, with Kubernetes semantics.

This module mirrors the behaviour of ``k8s.io/apimachinery/pkg/labels``,
``k8s.io/apimachinery/pkg/fields`` and the name checks of
``k8s.io/apimachinery/pkg/util/validation`` so that selectors written for
Kubernetes mean exactly the same thing in Skiff.  The parts most easily got
wrong are the "negative" operators: ``!=`` and ``notin`` *match* an object that
does not carry the key at all, while ``=`` and ``in`` require it.

Label selector strings parse as apimachinery's parser does: ``>`` and ``<``
with an integer value (``replicas>2``: a label that is missing or not an
integer never matches), empty values in a set (``x in (a,,)`` means a or ""),
and requirements sorted by key only, so those on one key print in the order
written (``z!=a,z``).

Deliberate difference from Kubernetes, chosen to fail loudly rather than
to accept something meaningless:

* A field selector term with an empty field name (``=foo``) is rejected at parse
  time; Kubernetes rejects it later, when the field is looked up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

__all__ = [
    "NODE_SELECTOR_OPERATORS",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "escape_field_value",
    "field_selector_from_set",
    "label_selector_from_proto_like",
    "label_selector_from_set",
    "match_everything",
    "match_node_selector_requirement",
    "match_nothing",
    "parse_field_selector",
    "parse_label_selector",
    "unescape_field_value",
    "validate_dns1123_label",
    "validate_dns1123_subdomain",
    "validate_label_key",
    "validate_label_value",
    "validate_node_selector_requirement",
]


class SelectorError(ValueError):
    """A selector (label, field or node) could not be parsed or is invalid."""


# ---------------------------------------------------------------------------
# Name and label validation (k8s.io/apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------

_QNAME_CHAR = "[A-Za-z0-9]"
_QNAME_EXT_CHAR = "[-A-Za-z0-9_.]"
_QUALIFIED_NAME_FMT = f"({_QNAME_CHAR}{_QNAME_EXT_CHAR}*)?{_QNAME_CHAR}"
_QUALIFIED_NAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_MAX_LEN = 63

_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MAX_LEN = 63

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
    "or '-', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_MAX_LEN = 63

_DNS1123_SUBDOMAIN_FMT = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MAX_LEN = 253

_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)


def _q(value: object) -> str:
    """Quote user input in error messages the way Go's %q does (double quotes)."""
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def _quote_list(items: Iterable[object]) -> str:
    return "[" + ", ".join(_q(item) for item in items) + "]"


def _byte_len(value: str) -> int:
    # Kubernetes limits are in bytes (Go's len), not in code points.
    return len(value.encode("utf-8", errors="surrogatepass"))


def _max_len_error(limit: int) -> str:
    return f"must be no more than {limit} characters"


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    """Format a regex failure exactly like Kubernetes' ``RegexError``.

    The odd "',  or '" spacing is Kubernetes' own; keeping it means error
    strings can be compared with (and searched for alongside) upstream ones.
    """
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _qualified_name_regex_error() -> str:
    return _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")


def validate_dns1123_subdomain(name: str) -> list[str]:
    """Errors for ``name`` as a lowercase RFC 1123 subdomain (max 253); [] if valid."""
    errors: list[str] = []
    if _byte_len(name) > _DNS1123_SUBDOMAIN_MAX_LEN:
        errors.append(_max_len_error(_DNS1123_SUBDOMAIN_MAX_LEN))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(name):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def validate_dns1123_label(name: str) -> list[str]:
    """Errors for ``name`` as a lowercase RFC 1123 label (max 63); [] if valid."""
    errors: list[str] = []
    if _byte_len(name) > _DNS1123_LABEL_MAX_LEN:
        errors.append(_max_len_error(_DNS1123_LABEL_MAX_LEN))
    if not _DNS1123_LABEL_RE.fullmatch(name):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(name):
            # A valid subdomain that is not a valid label only fails on its dots;
            # saying so is far more useful than repeating the regex.
            errors.append("must not contain dots")
        else:
            errors.append(
                _regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc")
            )
    return errors


def validate_label_key(key: str) -> list[str]:
    """Errors for ``key`` as a label key (a qualified name); [] if valid.

    A key is an optional DNS-1123 subdomain prefix (at most 253 characters)
    and '/', followed by a name of at most 63 characters of [A-Za-z0-9._-]
    that starts and ends with an alphanumeric character.
    """
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _qualified_name_regex_error()
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errors: list[str] = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {msg}" for msg in validate_dns1123_subdomain(prefix))
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_len(name) > _QUALIFIED_NAME_MAX_LEN:
        errors.append(f"name part {_max_len_error(_QUALIFIED_NAME_MAX_LEN)}")
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errors.append(f"name part {_qualified_name_regex_error()}")
    return errors


def validate_label_value(value: str) -> list[str]:
    """Errors for ``value`` as a label value (empty, or a <=63 char name); [] if valid."""
    errors: list[str] = []
    if _byte_len(value) > _LABEL_VALUE_MAX_LEN:
        errors.append(_max_len_error(_LABEL_VALUE_MAX_LEN))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(
            _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


# ---------------------------------------------------------------------------
# Requirements (k8s.io/apimachinery/pkg/labels.Requirement)
# ---------------------------------------------------------------------------


class Operator(StrEnum):
    """Selector operators; the values are Kubernetes' ``selection.Operator`` strings."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_SET_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN})
_EQUALITY_OPERATORS = frozenset({Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS})
_EXISTENCE_OPERATORS = frozenset({Operator.EXISTS, Operator.DOES_NOT_EXIST})
_ORDER_OPERATORS = frozenset({Operator.GREATER_THAN, Operator.LESS_THAN})
# Operators whose every match must carry key=value (usable for index lookups).
_POSITIVE_EQUALITY = frozenset({Operator.EQUALS, Operator.DOUBLE_EQUALS})

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    """Parse like Go's ``strconv.ParseInt(text, 10, 64)``; None when Go would fail.

    Python's ``int()`` is more lenient (whitespace, '_' separators, unicode
    digits, no range limit), which would make Gt/Lt match where Kubernetes
    does not.
    """
    if not _INT_RE.fullmatch(text):
        return None
    number = int(text)
    if not _INT64_MIN <= number <= _INT64_MAX:
        return None
    return number


def _requirement_errors(key: str, operator: Operator, values: Sequence[str]) -> list[str]:
    """All reasons ``(key, operator, values)`` is not a valid requirement, as k8s checks."""
    errors: list[str] = []
    key_errors = validate_label_key(key)
    if key_errors:
        errors.append(f"invalid label key {_q(key)}: {'; '.join(key_errors)}")
    if operator in _SET_OPERATORS and not values:
        errors.append(f"key {_q(key)}: for 'in', 'notin' operators, values set can't be empty")
    elif operator in _EQUALITY_OPERATORS and len(values) != 1:
        errors.append(
            f"key {_q(key)}: exact-match compatibility requires one single value, "
            f"got {_quote_list(values)}"
        )
    elif operator in _EXISTENCE_OPERATORS and values:
        errors.append(
            f"key {_q(key)}: values set must be empty for exists and does not exist, "
            f"got {_quote_list(values)}"
        )
    elif operator in _ORDER_OPERATORS:
        if len(values) != 1:
            errors.append(
                f"key {_q(key)}: for 'Gt', 'Lt' operators, exactly one value is required, "
                f"got {_quote_list(values)}"
            )
        errors.extend(
            f"key {_q(key)}: for 'Gt', 'Lt' operators, the value must be an integer, got {_q(v)}"
            for v in values
            if _parse_int64(v) is None
        )
    for value in values:
        value_errors = validate_label_value(value)
        if value_errors:
            errors.append(
                f"invalid value {_q(value)} for label key {_q(key)}: {'; '.join(value_errors)}"
            )
    return errors


@dataclass(frozen=True)
class Requirement:
    """One ``key <operator> values`` clause of a label selector.

    Constructing a Requirement validates it the way Kubernetes'
    ``labels.NewRequirement`` does and raises :class:`SelectorError`
    otherwise, so an existing Requirement is always usable.  ``values`` is
    normalised to a sorted, de-duplicated tuple: the values form a set, and a
    canonical order makes equal requirements compare and hash equal.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            operator = Operator(self.operator)
        except ValueError:
            supported = ", ".join(repr(op.value) for op in Operator)
            raise SelectorError(
                f"unsupported operator {_q(self.operator)} for key {_q(self.key)}; "
                f"supported: {supported}"
            ) from None
        if isinstance(self.values, str):
            # A bare string would silently become a set of its characters.
            raise SelectorError(
                f"values for key {_q(self.key)} must be a sequence of strings, "
                f"not the string {_q(self.values)}"
            )
        values = tuple(sorted(set(self.values)))
        errors = _requirement_errors(self.key, operator, values)
        if errors:
            raise SelectorError("; ".join(errors))
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "values", values)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this requirement (Kubernetes semantics)."""
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            # Deliberately true when the key is absent: "not equal to x" holds.
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        return self._matches_order(labels)

    def _matches_order(self, labels: Mapping[str, str]) -> bool:
        if self.key not in labels:
            return False
        actual = _parse_int64(labels[self.key])
        bound = _parse_int64(self.values[0])
        if actual is None or bound is None:
            # A label that is not an integer can never satisfy Gt/Lt.
            return False
        if self.operator is Operator.GREATER_THAN:
            return actual > bound
        return actual < bound

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        joined = ",".join(self.values)
        if op in _SET_OPERATORS:
            return f"{self.key} {op.value} ({joined})"
        return f"{self.key}{_symbol(op)}{joined}"


def _symbol(operator: Operator) -> str:
    """How an operator is written in a selector string (Gt/Lt as '>'/'<')."""
    return {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(operator, operator.value)


def _requirement_sort_key(requirement: Requirement) -> str:
    # Kubernetes sorts by key only (sort.Sort, which is an insertion sort, so
    # stable, for the dozen requirements a selector has): requirements on one
    # key keep the order they were written or added in.
    return requirement.key


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSelector:
    """An immutable, hashable conjunction of :class:`Requirement` s.

    An empty selector matches everything.  The special "nothing" selector
    (``match_nothing()``, Kubernetes' ``labels.Nothing()``) matches no object;
    it is what a *missing* ``metav1.LabelSelector`` means.
    """

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    def __post_init__(self) -> None:
        if self.matches_nothing and self.requirements:
            raise SelectorError("a match-nothing selector cannot have requirements")
        ordered = tuple(sorted(self.requirements, key=_requirement_sort_key))
        object.__setattr__(self, "requirements", ordered)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected."""
        if self.matches_nothing:
            return False
        return all(requirement.matches(labels) for requirement in self.requirements)

    def is_empty(self) -> bool:
        """True for the match-everything selector (no requirements)."""
        return not self.matches_nothing and not self.requirements

    def add(self, *requirements: Requirement) -> LabelSelector:
        """A new selector that also requires ``requirements``."""
        if self.matches_nothing:
            return self
        return LabelSelector(self.requirements + requirements)

    def required_equalities(self) -> dict[str, str]:
        """The ``key=value`` pairs every matching object must have.

        Useful to narrow a candidate set through a label index before calling
        :meth:`matches`.  Includes ``k=v``, ``k==v`` and single-valued
        ``k in (v)``.  If a selector demands two different values for one key
        it can match nothing; one of the values is returned, which still
        yields a (trivially) correct superset for an index lookup.
        """
        result: dict[str, str] = {}
        for requirement in self.requirements:
            value = _required_value(requirement)
            if value is not None:
                result.setdefault(requirement.key, value)
        return result

    def exact_matches(self) -> dict[str, str]:
        """Alias of :meth:`required_equalities`."""
        return self.required_equalities()

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must have in every match, if the selector pins one."""
        return self.required_equalities().get(key)

    def __str__(self) -> str:
        # Like Kubernetes, the nothing selector has no string form ("").
        return ",".join(str(requirement) for requirement in self.requirements)


def _required_value(requirement: Requirement) -> str | None:
    if requirement.operator in _POSITIVE_EQUALITY:
        return requirement.values[0]
    if requirement.operator is Operator.IN and len(requirement.values) == 1:
        return requirement.values[0]
    return None


def match_everything() -> LabelSelector:
    """The selector that matches every object (Kubernetes' ``labels.Everything()``)."""
    return LabelSelector()


def match_nothing() -> LabelSelector:
    """The selector that matches no object (Kubernetes' ``labels.Nothing()``)."""
    return LabelSelector(matches_nothing=True)


def label_selector_from_set(labels: Mapping[str, str]) -> LabelSelector:
    """A selector requiring exactly ``key=value`` for each pair (``SelectorFromSet``)."""
    try:
        return LabelSelector(
            tuple(Requirement(key, Operator.EQUALS, (value,)) for key, value in labels.items())
        )
    except SelectorError as exc:
        raise SelectorError(f"invalid label set: {exc}") from None


# ---------------------------------------------------------------------------
# Label selector string parsing (k8s.io/apimachinery/pkg/labels/selector.go)
# ---------------------------------------------------------------------------


class _Tok(Enum):
    IDENTIFIER = "identifier"
    END = "end of string"
    DOES_NOT_EXIST = "!"
    NOT_EQUALS = "!="
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    OPEN_PAR = "("
    CLOSED_PAR = ")"
    COMMA = ","
    GREATER_THAN = ">"
    LESS_THAN = "<"
    IN = "in"
    NOT_IN = "notin"


_WHITESPACE = frozenset(" \t\r\n")
_SPECIAL_CHARS = frozenset("=!(),<>")
_SYMBOLS = {tok.value: tok for tok in _Tok if tok.value and tok.value[0] in _SPECIAL_CHARS}
_KEYWORDS = {"in": _Tok.IN, "notin": _Tok.NOT_IN}
_TOKEN_OPERATORS = {
    _Tok.EQUALS: Operator.EQUALS,
    _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
    _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
    _Tok.IN: Operator.IN,
    _Tok.NOT_IN: Operator.NOT_IN,
    _Tok.GREATER_THAN: Operator.GREATER_THAN,
    _Tok.LESS_THAN: Operator.LESS_THAN,
}


@dataclass(frozen=True)
class _Token:
    kind: _Tok
    text: str

    def describe(self) -> str:
        return "end of string" if self.kind is _Tok.END else repr(self.text)


def _lex(text: str) -> list[_Token]:
    """Split a label selector into tokens the way the Kubernetes lexer does.

    Identifiers are maximal runs of characters that are neither whitespace nor
    one of ``=!(),<>``; symbols use longest match (``!=`` and ``==``).
    """
    tokens: list[_Token] = []
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char in _WHITESPACE:
            pos += 1
        elif char in _SPECIAL_CHARS:
            symbol = text[pos : pos + 2] if text[pos : pos + 2] in _SYMBOLS else char
            tokens.append(_Token(_SYMBOLS[symbol], symbol))
            pos += len(symbol)
        else:
            start = pos
            while pos < end and text[pos] not in _WHITESPACE and text[pos] not in _SPECIAL_CHARS:
                pos += 1
            word = text[start:pos]
            tokens.append(_Token(_KEYWORDS.get(word, _Tok.IDENTIFIER), word))
    tokens.append(_Token(_Tok.END, ""))
    return tokens


class _LabelSelectorParser:
    """Recursive-descent parser with the same grammar (and quirks) as Kubernetes.

    Kubernetes reads keys and values in a "values" context in which the
    keywords ``in``/``notin`` are plain identifiers, so ``in in (in)`` is a
    valid selector; only the operator position treats them as keywords.
    """

    def __init__(self, text: str) -> None:
        self._tokens = _lex(text)
        self._pos = 0

    # -- token access -----------------------------------------------------

    def _peek(self, as_value: bool = True) -> _Token:
        return self._as_context(self._tokens[self._pos], as_value)

    def _next(self, as_value: bool = True) -> _Token:
        token = self._tokens[self._pos]
        if token.kind is not _Tok.END:
            self._pos += 1
        return self._as_context(token, as_value)

    @staticmethod
    def _as_context(token: _Token, as_value: bool) -> _Token:
        if as_value and token.kind in (_Tok.IN, _Tok.NOT_IN):
            return _Token(_Tok.IDENTIFIER, token.text)
        return token

    # -- grammar ------------------------------------------------------------

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        token = self._peek()
        if token.kind is _Tok.END:
            return requirements
        if token.kind not in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
            raise SelectorError(
                f"expected a label key, '!' or end of string but found {token.describe()}"
            )
        while True:
            requirement = self._parse_requirement()
            requirements.append(requirement)
            token = self._next()
            if token.kind is _Tok.END:
                return requirements
            if token.kind is not _Tok.COMMA:
                raise SelectorError(
                    f"expected ',' or end of string after '{requirement}' "
                    f"but found {token.describe()}"
                )
            after = self._peek()
            if after.kind not in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                raise SelectorError(
                    f"expected a label key or '!' after ',' but found {after.describe()}"
                )

    def _parse_requirement(self) -> Requirement:
        negated = self._peek().kind is _Tok.DOES_NOT_EXIST
        if negated:
            self._next()
        key_token = self._next()
        if key_token.kind is not _Tok.IDENTIFIER:
            where = " after '!'" if negated else ""
            raise SelectorError(f"expected a label key{where} but found {key_token.describe()}")
        key = key_token.text
        self._check_key(key)
        if negated:
            return Requirement(key, Operator.DOES_NOT_EXIST)
        if self._peek().kind in (_Tok.END, _Tok.COMMA):
            return Requirement(key, Operator.EXISTS)
        operator = self._parse_operator(key)
        if operator in _SET_OPERATORS:
            values = tuple(self._parse_value_set(operator))
        else:
            values = (self._parse_exact_value(operator),)
        return Requirement(key, operator, values)

    @staticmethod
    def _check_key(key: str) -> None:
        errors = validate_label_key(key)
        if errors:
            raise SelectorError(f"invalid label key {_q(key)}: {'; '.join(errors)}")

    def _parse_operator(self, key: str) -> Operator:
        token = self._next(as_value=False)
        if token.kind in _TOKEN_OPERATORS:
            return _TOKEN_OPERATORS[token.kind]
        raise SelectorError(
            f"expected an operator ('=', '==', '!=', 'in', 'notin', '>' or '<') after key "
            f"{_q(key)} but found {token.describe()}"
        )

    def _parse_exact_value(self, operator: Operator) -> str:
        token = self._peek()
        if token.kind in (_Tok.END, _Tok.COMMA):
            return ""  # "a=" selects the empty value, as in Kubernetes.
        self._next()
        if token.kind is not _Tok.IDENTIFIER:
            raise SelectorError(
                f"expected a value after '{_symbol(operator)}' but found {token.describe()}"
            )
        return token.text

    def _parse_value_set(self, operator: Operator) -> set[str]:
        token = self._next()
        if token.kind is not _Tok.OPEN_PAR:
            raise SelectorError(
                f"expected '(' after '{operator.value}' but found {token.describe()}"
            )
        token = self._peek()
        if token.kind is _Tok.CLOSED_PAR:
            self._next()
            return {""}  # "in ()" means the set holding the empty value.
        if token.kind not in (_Tok.IDENTIFIER, _Tok.COMMA):
            raise SelectorError(f"expected a value, ',' or ')' but found {token.describe()}")
        values = self._parse_value_list()
        self._next()  # the ')' that ended the list
        return values

    def _parse_value_list(self) -> set[str]:
        """Parse ``v1,v2,...`` up to (not including) ')'; empty items mean ""."""
        values: set[str] = set()
        while True:
            token = self._next()
            if token.kind is _Tok.IDENTIFIER:
                values.add(token.text)
                after = self._peek()
                if after.kind is _Tok.CLOSED_PAR:
                    return values
                if after.kind is not _Tok.COMMA:
                    raise SelectorError(
                        f"expected ')' or ',' after value '{token.text}' "
                        f"but found {after.describe()}"
                    )
            elif token.kind is _Tok.COMMA:
                if not values:
                    values.add("")  # leading comma: "(,a)"
                after = self._peek()
                if after.kind is _Tok.CLOSED_PAR:
                    values.add("")  # trailing comma: "(a,)"
                    return values
                if after.kind is _Tok.COMMA:
                    values.add("")  # doubled comma: "(a,,b)"; the next turn reads it
            else:
                raise SelectorError(f"expected a value or ',' but found {token.describe()}")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a Kubernetes label selector string, e.g. ``"app=web,tier in (a,b),!canary"``.

    An empty (or all-whitespace) string selects everything.  Raises
    :class:`SelectorError` naming the selector and the offending part.
    """
    try:
        requirements = _LabelSelectorParser(text).parse()
    except SelectorError as exc:
        raise SelectorError(f"invalid label selector {_q(text)}: {exc}") from None
    return LabelSelector(tuple(requirements))


# ---------------------------------------------------------------------------
# metav1.LabelSelector and node selector requirements
# ---------------------------------------------------------------------------

_LABEL_SELECTOR_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}
_NODE_SELECTOR_OPERATORS = {
    **_LABEL_SELECTOR_OPERATORS,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}
NODE_SELECTOR_OPERATORS: tuple[str, ...] = tuple(_NODE_SELECTOR_OPERATORS)
"""The operator names allowed in a node selector requirement (node affinity)."""


def _attr(obj: Any, name: str) -> Any:
    # Accept both message-like objects (protobuf, dataclasses) and plain
    # mappings decoded from YAML/JSON.
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _expression_values(expression: Any) -> tuple[str, ...]:
    values = _attr(expression, "values")
    if values is None:
        return ()
    if isinstance(values, str):
        raise SelectorError(f"values must be a list of strings, not the string {_q(values)}")
    return tuple(values)


def label_selector_from_proto_like(
    match_labels: Mapping[str, str] | None,
    match_expressions: Iterable[Any] | None,
) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``).

    Each expression has ``key``, ``operator`` (``In``, ``NotIn``, ``Exists`` or
    ``DoesNotExist``) and ``values``, as attributes or mapping keys.  Like
    Kubernetes' ``LabelSelectorAsSelector``, an empty selector (no labels, no
    expressions) matches everything; callers must map a *missing* selector to
    :func:`match_nothing` themselves, since that is the opposite meaning.
    """
    requirements: list[Requirement] = []
    for key, value in (match_labels or {}).items():
        try:
            requirements.append(Requirement(key, Operator.EQUALS, (value,)))
        except SelectorError as exc:
            raise SelectorError(f"invalid matchLabels entry {_q(key)}: {exc}") from None
    for index, expression in enumerate(match_expressions or ()):
        requirements.append(_expression_requirement(index, expression))
    return LabelSelector(tuple(requirements))


def _expression_requirement(index: int, expression: Any) -> Requirement:
    where = f"invalid matchExpressions[{index}]"
    operator_name = _attr(expression, "operator")
    operator = _LABEL_SELECTOR_OPERATORS.get(operator_name) if operator_name else None
    if operator is None:
        supported = ", ".join(_LABEL_SELECTOR_OPERATORS)
        raise SelectorError(
            f"{where}: {_q(operator_name)} is not a valid label selector operator "
            f"(supported: {supported})"
        )
    key = _attr(expression, "key") or ""
    try:
        return Requirement(key, operator, _expression_values(expression))
    except SelectorError as exc:
        raise SelectorError(f"{where}: {exc}") from None


def validate_node_selector_requirement(key: str, operator: str, values: Sequence[str]) -> list[str]:
    """Errors for a node selector requirement (node affinity term); [] if valid.

    Covers Kubernetes' API validation (operator, value count, key syntax) and
    also the checks that would make Kubernetes silently treat the requirement
    as never matching (values that are not label values; Gt/Lt values that
    are not integers), since a requirement that can never match is almost
    certainly a mistake.
    """
    values = tuple(values)
    errors: list[str] = []
    if operator in ("In", "NotIn"):
        if not values:
            errors.append(
                "values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
            )
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errors.append(
                "values: Forbidden: may not be specified when `operator` is 'Exists' or "
                "'DoesNotExist'"
            )
    elif operator in ("Gt", "Lt"):
        if len(values) != 1:
            errors.append(
                "values: Required value: must be specified single value when `operator` "
                "is 'Lt' or 'Gt'"
            )
        errors.extend(
            f"values[{i}]: Invalid value: {_q(v)}: for 'Gt', 'Lt' operators, the value must "
            "be an integer"
            for i, v in enumerate(values)
            if _parse_int64(v) is None
        )
    else:
        supported = ", ".join(NODE_SELECTOR_OPERATORS)
        errors.append(
            f"operator: Invalid value: {_q(operator)}: not a valid selector operator "
            f"(supported: {supported})"
        )
    errors.extend(f"key: Invalid value: {_q(key)}: {msg}" for msg in validate_label_key(key))
    for i, value in enumerate(values):
        errors.extend(
            f"values[{i}]: Invalid value: {_q(value)}: {msg}" for msg in validate_label_value(value)
        )
    return errors


def match_node_selector_requirement(
    labels: Mapping[str, str], key: str, operator: str, values: Sequence[str]
) -> bool:
    """Whether node ``labels`` satisfy one node selector requirement.

    ``Gt``/``Lt`` compare the label and the single value as 64-bit integers;
    a label that is not an integer never matches.  As in Kubernetes, an
    invalid requirement (see :func:`validate_node_selector_requirement`)
    matches nothing rather than raising, so one bad term cannot crash a
    scheduler loop.
    """
    requirement = node_selector_requirement(key, operator, values)
    return requirement is not None and requirement.matches(labels)


def node_selector_requirement(key: str, operator: str, values: Sequence[str]
                              ) -> Requirement | None:
    """One node selector requirement, ready to match many nodes' labels; None if it is
    invalid (it then matches nothing)."""
    op = _NODE_SELECTOR_OPERATORS.get(operator)
    if op is None or isinstance(values, str):
        return None
    try:
        return Requirement(key, op, tuple(values))
    except SelectorError:
        return None


# ---------------------------------------------------------------------------
# Field selectors (k8s.io/apimachinery/pkg/fields/selector.go)
# ---------------------------------------------------------------------------

_FIELD_OPERATORS = ("!=", "==", "=")  # "==" before "=" so "a==b" does not yield value "=b"
_ESCAPABLE = frozenset("\\,=")


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` so ``value`` can appear in a field selector."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(text: str) -> str:
    """Undo :func:`escape_field_value`; raise :class:`SelectorError` on bad escapes."""
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            if char not in _ESCAPABLE:
                raise SelectorError(
                    f"invalid escape sequence '\\{char}' in value {_q(text)} "
                    "(only '\\\\', '\\,' and '\\=' are allowed)"
                )
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(f"unescaped '{char}' in value {_q(text)} (write it as '\\{char}')")
        else:
            out.append(char)
    if escaped:
        raise SelectorError(f"invalid escape sequence: value {_q(text)} ends with a lone '\\'")
    return "".join(out)


def _field_operator(operator: str) -> Operator | None:
    """Normalise a field selector operator; None if fields do not support it."""
    try:
        normalised = Operator(operator)
    except ValueError:
        return None
    if normalised is Operator.DOUBLE_EQUALS:
        return Operator.EQUALS
    if normalised in (Operator.EQUALS, Operator.NOT_EQUALS):
        return normalised
    return None


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` or ``field!=value``; ``==`` is stored as ``=`` (same meaning)."""

    field: str
    operator: Operator
    value: str

    def __post_init__(self) -> None:
        operator = _field_operator(self.operator)
        if operator is None:
            raise SelectorError(
                f"unsupported field selector operator {_q(self.operator)} for field "
                f"{_q(self.field)}; supported: '=', '==', '!='"
            )
        if not self.field:
            raise SelectorError(f"missing field name before '{operator.value}'")
        object.__setattr__(self, "operator", operator)

    def matches(self, get: Callable[[str], str | None]) -> bool:
        # A missing field reads as "", exactly like Kubernetes' fields.Set.Get.
        actual = get(self.field)
        actual = "" if actual is None else actual
        if self.operator is Operator.EQUALS:
            return actual == self.value
        return actual != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator.value}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """An immutable conjunction of :class:`FieldRequirement` s; empty matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.requirements, key=lambda r: (r.field, str(r))))
        object.__setattr__(self, "requirements", ordered)

    def matches(self, get: Callable[[str], str | None]) -> bool:
        """Whether an object matches; ``get(path)`` returns its value for a field path."""
        return all(requirement.matches(get) for requirement in self.requirements)

    def fields(self) -> set[str]:
        """The field paths used, so callers can reject those a kind does not support."""
        return {requirement.field for requirement in self.requirements}

    def required_equalities(self) -> dict[str, str]:
        """The ``field=value`` pairs every matching object must have (for index lookups)."""
        result: dict[str, str] = {}
        for requirement in self.requirements:
            if requirement.operator is Operator.EQUALS:
                result.setdefault(requirement.field, requirement.value)
        return result

    def requires_exact_match(self, field_path: str) -> str | None:
        """The value ``field_path`` must have in every match, if pinned."""
        return self.required_equalities().get(field_path)

    def is_empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _split_field_terms(text: str) -> list[str]:
    """Split on commas not preceded by a backslash escape; escapes are kept."""
    terms: list[str] = []
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    """Split at the first operator; field names have no escaping, so first wins."""
    for index in range(len(term)):
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


def _parse_field_term(term: str) -> FieldRequirement:
    parts = _split_field_term(term)
    if parts is None:
        raise SelectorError(
            f"can't understand {_q(term)}: expected <field>=<value>, <field>==<value> "
            "or <field>!=<value>"
        )
    lhs, operator, rhs = parts
    try:
        value = unescape_field_value(rhs)
    except SelectorError as exc:
        raise SelectorError(f"term {_q(term)}: {exc}") from None
    return FieldRequirement(lhs, Operator(operator), value)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a Kubernetes field selector, e.g. ``"metadata.name=web,status.phase!=Failed"``.

    Only ``=``, ``==`` and ``!=`` exist.  Values may contain ``\\,``, ``\\=``
    and ``\\\\`` escapes.  As in Kubernetes, whitespace is *not* trimmed (it
    is part of the field name or value) and empty terms are ignored.
    """
    try:
        requirements = tuple(_parse_field_term(term) for term in _split_field_terms(text) if term)
    except SelectorError as exc:
        raise SelectorError(f"invalid field selector {_q(text)}: {exc}") from None
    return FieldSelector(requirements)


def field_selector_from_set(fields: Mapping[str, str]) -> FieldSelector:
    """A selector requiring ``path=value`` for each pair (``fields.SelectorFromSet``)."""
    return FieldSelector(
        tuple(FieldRequirement(path, Operator.EQUALS, value) for path, value in fields.items())
    )
