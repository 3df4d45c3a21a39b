"""pytest-skiff: a real Skiff cluster for a test session (the `skiff_cluster` fixture).

Registered with pytest through the `pytest11` entry point of the skiff package; the hooks
and fixtures are in `pytest_skiff.plugin`, the object tests get in `pytest_skiff.session`.
See docs/testing.md.
"""
