"""Shared fixtures: each area keeps its own in tests/fixtures/ and is registered here."""

pytest_plugins = [
    "tests.fixtures.classifier",
    "tests.fixtures.deploy",
    "tests.fixtures.redis",
]
