"""Each test's namespace is named after the test, and is always a valid namespace name (a DNS
label: at most 63 lower-case letters, digits and '-'), whatever the test is called."""

from __future__ import annotations

import re

from pytest_skiff.plugin import namespace_name

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_a_namespace_is_named_after_its_test() -> None:
    name = namespace_name("test_web_runs_on_every_node")
    assert re.fullmatch(r"test-web-runs-on-every-node-[0-9a-f]{6}", name)
    assert namespace_name("test_a") != namespace_name("test_a")  # one per test run


def test_any_test_name_makes_a_dns_label() -> None:
    for test_name in ("test_x[ctrl-c]", "test_Upper_Case[1.5-ÄÖ]", "test_" + "long_" * 40,
                      "test_[]", "TestClass::test_m[a/b]"):
        name = namespace_name(test_name)
        assert DNS_LABEL.fullmatch(name) and len(name) <= 63, (test_name, name)
