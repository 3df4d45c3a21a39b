"""String formats (k8s.io/apimachinery/pkg/util/validation) and small checks shared by
several kinds: config keys, environment variable and port names, port numbers and
protocols, percentages, HTTP header names, IP addresses and qualified names."""

from __future__ import annotations

import ipaddress
import re

from skiff.api.selectors import validate_label_key
from skiff.api.v1 import meta_pb2
from skiff.api.validation.errors import Errors, invalid, range_error, required, unsupported

MAX_INT32 = 2**31 - 1


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError, odd double space included, so messages match upstream.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def byte_len(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(_DNS1035_FMT)
_DNS1035_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character")


def dns1035_label(value: str) -> Errors:
    errs = []
    if byte_len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1035_ERR, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)
_ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_RE = re.compile(_ENV_NAME_FMT)
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_RE = re.compile(_HTTP_HEADER_FMT)
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(_PERCENT_FMT)


def _no_chdir_prefix(value: str) -> Errors:
    """Names that become file names must not walk out of their directory."""
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def config_map_key(key: str) -> Errors:
    errs = []
    if byte_len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not _CONFIG_KEY_RE.fullmatch(key):
        errs.append(_regex_error("a valid config key must consist of alphanumeric characters, "
                                 "'-', '_' or '.'", _CONFIG_KEY_FMT,
                                 "key.name", "KEY_NAME", "key-name"))
    return errs + _no_chdir_prefix(key)


def env_var_name(name: str) -> Errors:
    errs = []
    if not _ENV_NAME_RE.fullmatch(name):
        errs.append(_regex_error("a valid environment variable name must consist of "
                                 "alphabetic characters, digits, '_', '-', or '.', and must "
                                 "not start with a digit", _ENV_NAME_FMT,
                                 "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _no_chdir_prefix(name)


def port_name(name: str) -> Errors:
    """IANA_SVC_NAME: what a named port may be called."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number(port: int) -> Errors:
    return [] if 1 <= port <= 65535 else [range_error(1, 65535)]


def percent_errors(value: str) -> Errors:
    if _PERCENT_RE.fullmatch(value):
        return []
    return [_regex_error("a valid percent string must be a numeric string followed by an "
                         "ending '%'", _PERCENT_FMT, "1%", "93%")]


def http_header_name(name: str) -> Errors:
    if _HTTP_HEADER_RE.fullmatch(name):
        return []
    return [_regex_error("a valid HTTP header must consist of alphanumeric characters or '-'",
                         _HTTP_HEADER_FMT, "X-Header-Name")]


def ip_errors(value: str) -> Errors:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def qualified_name(path: str, value: str) -> Errors:
    return [invalid(path, value, msg) for msg in validate_label_key(value)]


_PROTOCOLS = ("SCTP", "TCP", "UDP")


def validate_protocol(protocol: str, path: str) -> Errors:
    if not protocol:
        return [required(path)]
    if protocol not in _PROTOCOLS:
        return [unsupported(path, protocol, _PROTOCOLS)]
    return []


def validate_port_num_or_name(port: meta_pb2.IntOrString, path: str) -> Errors:
    if port.HasField("str_val"):
        return [invalid(path, port.str_val, msg) for msg in port_name(port.str_val)]
    return [invalid(path, port.int_val, msg) for msg in port_number(port.int_val)]
