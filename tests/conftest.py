"""Fixtures shared by every test tier.

The fixture modules live in tests/fixtures/. pytest's default import mode puts this
directory (tests/, which is not a package) on sys.path, so they load as `fixtures.*`.
"""

pytest_plugins = ["fixtures.etcd", "fixtures.apiserver"]
