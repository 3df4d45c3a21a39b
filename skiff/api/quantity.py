"""Resource quantities (``"500m"``, ``"1.5Gi"``, ``"1e3"``) with Kubernetes semantics.

This follows ``k8s.io/apimachinery/pkg/api/resource.Quantity``: values are
exact fixed-point numbers (never floats), parsing rounds anything finer than a
nano (10^-9) *away from zero* ("if you ask for some resource you get some"),
and the canonical string picks the largest suffix that keeps an integer
mantissa, in the format (binary SI, decimal SI or decimal exponent) the value
was written in.

``str(q)`` is Kubernetes' ``String()``: a parsed quantity prints back as the
user wrote it when Kubernetes' parser takes that text for canonical already
(``"1e3"``, ``"1E3"``, ``"+1k"``, ``"1."``, ``"100.035k"``, ``"0005"``: see
:func:`_kept_text` for the exact rule), and in canonical form otherwise
(``"1000"`` prints ``"1k"``, ``"1.5Gi"`` prints ``"1536Mi"``).  Arithmetic
results always print canonically; :meth:`Quantity.canonical` always computes
the canonical form.

Deliberate differences from Kubernetes, all on inputs Kubernetes misreads:

* A number without any digit (``"."``, ``"-"``, ``"+"``) is rejected;
  Kubernetes silently reads it as zero.
* An exponent outside the 32-bit range is rejected; Kubernetes truncates it.
* :meth:`Quantity.value` and :meth:`Quantity.milli_value` return exact Python
  integers instead of silently overflowing int64.
* Binary values larger than 1023Ei (only reachable through arithmetic) keep
  the ``Ei`` suffix instead of losing their suffix.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from enum import StrEnum

__all__ = ["Format", "Quantity", "QuantityError", "parse_quantity"]


class QuantityError(ValueError):
    """A string is not a valid quantity."""


class Format(StrEnum):
    """How a quantity is written; canonical output keeps the input's format."""

    DECIMAL_EXPONENT = "DecimalExponent"  # 12e6
    BINARY_SI = "BinarySI"  # 12Mi (12 * 2^20)
    DECIMAL_SI = "DecimalSI"  # 12M  (12 * 10^6)


QUANTITY_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
"""The (deliberately loose) shape Kubernetes quotes in its parse error."""

_FORMAT_ERROR = f"quantities must match the regular expression '{QUANTITY_REGEX}'"

_DIGITS = frozenset("0123456789")  # not str.isdigit(): that accepts non-ASCII digits
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_FOR_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_SUFFIX_FOR_POWER_OF_1024 = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_VALID_SUFFIXES = "n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>"

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_NANO = Decimal("1e-9")
_MAX_BINARY = Decimal(2**63 - 1)  # Kubernetes caps parsed BinarySI values here.
_KIBI = Decimal(1024)

# Arbitrary precision for exact operations whose size the input already
# bounds (rounding, normalising, scaling by a power of ten).
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, rounding=ROUND_UP
)
# Arithmetic gets a generous but finite precision: "1e2000000000" + "1" is
# exactly representable only with two billion digits, which would exhaust
# memory.  Anything that would round raises instead.
_MAX_ARITHMETIC_DIGITS = 1000
_ARITHMETIC = decimal.Context(
    prec=_MAX_ARITHMETIC_DIGITS,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow],
)
# value()/milli_value() refuse results with more digits than this, for the
# same reason (a Python int of 10^2000000000 is not a useful answer).
_MAX_INTEGER_DIGITS = 1000


def _exponent_of(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int), "quantities are always finite"
    return exponent


def _round_up_to_nano(amount: Decimal) -> Decimal:
    """Round away from zero to nano precision, as Kubernetes does when parsing."""
    if _exponent_of(amount) >= -9:
        return amount  # already a whole number of nanos; also skips huge exponents
    return amount.quantize(_NANO, rounding=ROUND_UP, context=_EXACT)


@dataclass(frozen=True, eq=False)
class Quantity:
    """An exact resource amount plus the format it is written in.

    Equality, ordering and hashing use the numeric value only (like
    Kubernetes' ``Cmp``/``Equal``): ``parse_quantity("1Ki") ==
    parse_quantity("1024")``.  The amount is stored exactly as a
    :class:`~decimal.Decimal`, rounded away from zero to a whole number of
    nanos so that every quantity has a canonical string that parses back to
    the same value.
    """

    amount: Decimal
    format: Format = Format.DECIMAL_SI
    # The text it was parsed from, when Kubernetes keeps that text as its String().
    text: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        amount = self.amount
        if isinstance(amount, int) and not isinstance(amount, bool):
            amount = Decimal(amount)
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise QuantityError(f"quantity amount must be a finite Decimal, got {amount!r}")
        amount = Decimal(0) if amount.is_zero() else _round_up_to_nano(amount)
        object.__setattr__(self, "amount", amount)
        object.__setattr__(self, "format", Format(self.format))

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_int(cls, value: int, format: Format = Format.DECIMAL_SI) -> Quantity:
        """``value`` units, e.g. ``Quantity.from_int(1 << 30, Format.BINARY_SI)`` is 1Gi."""
        return cls(Decimal(value), format)

    @classmethod
    def from_milli(cls, value: int, format: Format = Format.DECIMAL_SI) -> Quantity:
        """``value`` thousandths, e.g. ``Quantity.from_milli(250)`` is 250m."""
        return cls(Decimal(value).scaleb(-3, _EXACT), format)

    # -- inspection -----------------------------------------------------------

    def is_zero(self) -> bool:
        return self.amount.is_zero()

    def sign(self) -> int:
        """-1, 0 or 1."""
        if self.amount.is_zero():
            return 0
        return -1 if self.amount.is_signed() else 1

    def value(self) -> int:
        """The amount rounded to an integer away from zero (Kubernetes ``Value()``)."""
        return self._scaled_integer(0)

    def milli_value(self) -> int:
        """The amount in thousandths, rounded away from zero (``MilliValue()``)."""
        return self._scaled_integer(3)

    def _scaled_integer(self, decimal_places: int) -> int:
        scaled = self.amount.scaleb(decimal_places, _EXACT)
        if not scaled.is_zero() and scaled.adjusted() >= _MAX_INTEGER_DIGITS:
            raise OverflowError(f"quantity {self} is too large to convert to an integer")
        return int(scaled.to_integral_value(rounding=ROUND_UP, context=_EXACT))

    # -- canonical form -------------------------------------------------------

    def canonical(self) -> str:
        """Kubernetes' canonical string (its ``CanonicalizeBytes``).

        Binary quantities use the largest power-of-1024 suffix with an integer
        mantissa; ones that are not whole numbers, or lie strictly between
        -1024 and 1024, are written in decimal SI instead, since a binary
        suffix could not express them exactly (or would only add noise).
        Decimal quantities use the largest power-of-1000 suffix (or ``e<n>``
        exponent, for DecimalExponent) that keeps an integer mantissa.
        """
        if self.amount.is_zero():
            return "0"
        if self.format is Format.BINARY_SI and self._fits_binary_suffix():
            return self._binary_string()
        decimal_format = Format.DECIMAL_SI if self.format is Format.BINARY_SI else self.format
        return self._decimal_string(decimal_format)

    def _fits_binary_suffix(self) -> bool:
        amount = self.amount
        if -_KIBI < amount < _KIBI:
            return False
        if amount.adjusted() >= _MAX_INTEGER_DIGITS:
            return False  # avoid building a giant int; decimal form is exact too
        return amount == amount.to_integral_value(context=_EXACT)

    def _binary_string(self) -> str:
        magnitude = abs(int(self.amount))
        power = 0
        while power < len(_SUFFIX_FOR_POWER_OF_1024) - 1 and magnitude % 1024 == 0:
            magnitude //= 1024
            power += 1
        sign = "-" if self.amount < 0 else ""
        return f"{sign}{magnitude}{_SUFFIX_FOR_POWER_OF_1024[power]}"

    def _decimal_string(self, format: Format) -> str:
        sign, digits, exponent = self.amount.normalize(_EXACT).as_tuple()
        assert isinstance(exponent, int)
        mantissa = "".join(map(str, digits))
        # Suffixes step by 10^3, so push the exponent down to a multiple of 3,
        # growing the mantissa instead (never the other way: that would need
        # a fractional mantissa).
        shift = exponent % 3
        mantissa += "0" * shift
        exponent -= shift
        return f"{'-' if sign else ''}{mantissa}{_decimal_suffix(exponent, format)}"

    def __str__(self) -> str:
        """Kubernetes' ``String()``: the text parsed, if kept, else :meth:`canonical`."""
        return self.text if self.text is not None else self.canonical()

    def __repr__(self) -> str:
        return f"Quantity({self.canonical()!r}, format={self.format.value!r})"

    # -- comparison -------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.amount == other.amount

    def __hash__(self) -> int:
        return hash(self.amount)

    def __lt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.amount < other.amount

    def __le__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.amount <= other.amount

    def __gt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.amount > other.amount

    def __ge__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.amount >= other.amount

    # -- arithmetic -------------------------------------------------------------

    def __add__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return Quantity(
            _exact_op(_ARITHMETIC.add, self.amount, other.amount), self._format_with(other)
        )

    def __radd__(self, other: object) -> Quantity:
        # Lets sum(quantities) work with its default start of 0.
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __sub__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        amount = _exact_op(_ARITHMETIC.subtract, self.amount, other.amount)
        return Quantity(amount, self._format_with(other))

    def __neg__(self) -> Quantity:
        return Quantity(self.amount.copy_negate(), self.format)

    def __abs__(self) -> Quantity:
        return Quantity(self.amount.copy_abs(), self.format)

    def __mul__(self, factor: int) -> Quantity:
        if not isinstance(factor, int) or isinstance(factor, bool):
            return NotImplemented
        return Quantity(_exact_op(_ARITHMETIC.multiply, self.amount, Decimal(factor)), self.format)

    __rmul__ = __mul__

    def _format_with(self, other: Quantity) -> Format:
        # Kubernetes: a zero accumulator adopts the other operand's format, so
        # summing from zero keeps "Mi" quantities binary.
        return other.format if self.is_zero() else self.format


def _exact_op(
    operation: Callable[[Decimal, Decimal], Decimal], left: Decimal, right: Decimal
) -> Decimal:
    try:
        result = operation(left, right)
    except decimal.DecimalException:
        raise OverflowError(
            f"quantity arithmetic on {left} and {right} needs more than "
            f"{_MAX_ARITHMETIC_DIGITS} significant digits"
        ) from None
    return result


def _decimal_suffix(exponent: int, format: Format) -> str:
    if format is Format.DECIMAL_SI and exponent in _SUFFIX_FOR_EXPONENT:
        return _SUFFIX_FOR_EXPONENT[exponent]
    # DecimalExponent, or a DecimalSI value beyond "E" (10^18): use "e<n>"
    # rather than drop the magnitude.
    return "" if exponent == 0 else f"e{exponent}"


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """A quantity string split into sign, digits and suffix (not yet interpreted)."""

    negative: bool
    integer: str
    fraction: str
    suffix: str


def _scan_digits(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    return pos


def _split(text: str) -> _Parts:
    """Split ``[+-]digits[.digits]suffix`` the way Kubernetes' scanner does.

    The suffix is a run of suffix letters, an optional sign and digits; it is
    validated later, so that "1Ki5" is reported as a bad suffix rather than as
    a malformed number.
    """
    pos = 1 if text[:1] in ("+", "-") else 0
    negative = text[:1] == "-"
    end_integer = _scan_digits(text, pos)
    integer = text[pos:end_integer]
    pos = end_integer
    fraction = ""
    if text[pos : pos + 1] == ".":
        end_fraction = _scan_digits(text, pos + 1)
        fraction = text[pos + 1 : end_fraction]
        pos = end_fraction
    suffix_start = pos
    while pos < len(text) and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if text[pos : pos + 1] in ("+", "-"):
        pos += 1
    pos = _scan_digits(text, pos)
    if pos != len(text):
        raise QuantityError(f"invalid quantity {_q(text)}: {_FORMAT_ERROR}")
    if not integer and not fraction:
        raise QuantityError(
            f"invalid quantity {_q(text)}: unable to parse numeric part of quantity (no digits)"
        )
    return _Parts(negative, integer, fraction, text[suffix_start:])


def _interpret_suffix(text: str, suffix: str) -> tuple[int, int, Format]:
    """Map a suffix to (base, exponent, format): "Ki" -> (2, 10), "m" -> (10, -3)."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], Format.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        exponent = _parse_exponent(text, suffix[1:])
        return 10, exponent, Format.DECIMAL_EXPONENT
    raise QuantityError(
        f"invalid quantity {_q(text)}: unable to parse quantity's suffix {_q(suffix)} "
        f"(expected {_VALID_SUFFIXES})"
    )


def _parse_exponent(text: str, digits: str) -> int:
    body = digits[1:] if digits[:1] in ("+", "-") else digits
    if not body or any(char not in _DIGITS for char in body):
        raise QuantityError(
            f"invalid quantity {_q(text)}: unable to parse quantity's suffix "
            f"{_q('e' + digits)} (expected {_VALID_SUFFIXES})"
        )
    # Check the length first: int() refuses (and is slow on) huge digit strings.
    significant = body.lstrip("0") or "0"
    magnitude = int(significant) if len(significant) <= 10 else None
    exponent = None if magnitude is None else -magnitude if digits[0] == "-" else magnitude
    if exponent is None or not _INT32_MIN <= exponent <= _INT32_MAX:
        raise QuantityError(
            f"invalid quantity {_q(text)}: exponent {digits} is out of range "
            f"[{_INT32_MIN}, {_INT32_MAX}]"
        )
    return exponent


def _q(text: str) -> str:
    # Go-style double quotes, matching how the selector module quotes input.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _amount(parts: _Parts, base: int, exponent: int) -> Decimal:
    digits = (parts.integer + parts.fraction) or "0"
    sign = "-" if parts.negative else ""
    if base == 10:
        return Decimal(f"{sign}{digits}E{exponent - len(parts.fraction)}")
    scaled = Decimal(f"{sign}{digits}E{-len(parts.fraction)}")
    return _EXACT.multiply(scaled, Decimal(1 << exponent))


# Kubernetes' fast path holds values of at most this many digits in an int64.
_MAX_INT64_DIGITS = 18


def _kept_text(source: str, parts: _Parts, exponent: int, format: Format) -> str | None:
    """The text itself when Kubernetes' ParseQuantity keeps it as the quantity's String()
    (its fast path, for values an int64 holds exactly, takes some spellings for canonical),
    else None. The rule, from apimachinery's quantity.go: the digits, less leading zeros
    ("num", "0" if none) and the fraction ("denom");

    - DecimalSI and DecimalExponent: at most 18 digits, scale = exponent - len(denom) at
      least -9 and a multiple of 3, num+denom not starting with 0 nor ending in 000;
    - BinarySI: no fraction, few enough digits for the suffix, and num not a multiple of
      8 (a cheap stand-in for "not a multiple of 1024").
    """
    if source == "0":
        return source
    num = parts.integer.lstrip("0") or "0"
    denom = parts.fraction
    if format is Format.BINARY_SI:
        precision = 15 - len(num) - exponent * 3 // 10 - 1
        if denom or precision < 0 or int(num) & 0x07 == 0:
            return None
        return source
    scale = exponent - len(denom)
    shifted = num + denom
    if _MAX_INT64_DIGITS - len(shifted) < 0 or scale < -9:
        return None
    if scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0":
        return source
    return None


def _to_text(value: str | int | float) -> str:
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}: expected a string or a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr() is the shortest string that round-trips, i.e. what a JSON
        # or YAML document holding this number most likely said.
        return repr(value)
    if isinstance(value, str):
        return value
    raise QuantityError(f"invalid quantity {value!r}: expected a string or a number")


def parse_quantity(text: str | int | float) -> Quantity:
    """Parse a Kubernetes quantity such as ``"250m"``, ``"1.5Gi"``, ``"1e3"`` or ``"-2k"``.

    Numbers (as found in JSON/YAML) are accepted and read via their decimal
    spelling.  Values finer than a nano round away from zero; binary SI
    values are capped at 2^63-1 and ones strictly between 0 and 1 switch to
    decimal SI, exactly as in Kubernetes.  Raises :class:`QuantityError`.
    """
    source = _to_text(text)
    if not source:
        raise QuantityError(f"invalid quantity {_q(source)}: {_FORMAT_ERROR}")
    parts = _split(source)
    base, exponent, format = _interpret_suffix(source, parts.suffix)
    amount = _round_up_to_nano(_amount(parts, base, exponent))
    kept = _kept_text(source, parts, exponent, format)
    if kept is not None:
        return Quantity(amount, format, kept)
    if format is Format.BINARY_SI:
        # copy_abs(), not abs(): the latter rounds to the default context.
        if amount.copy_abs() > _MAX_BINARY:
            amount = _MAX_BINARY.copy_sign(amount)
        if 0 < amount.copy_abs() < 1:
            format = Format.DECIMAL_SI
    return Quantity(amount, format)
