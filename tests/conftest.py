"""Shared fixtures: each area keeps its own in tests/fixtures/ and is registered here."""

pytest_plugins = [
    "tests.fixtures.classifier",
    "tests.fixtures.deploy",
    "tests.fixtures.mesh",
    "tests.fixtures.profiler",
    "tests.fixtures.redis",
    "tests.fixtures.reliability",
    "tests.fixtures.results",
    "tests.fixtures.router",
    "tests.fixtures.worker",
    "tests.fixtures.observability",  # imports tests.fixtures.worker: after it
    "tests.fixtures.gateway",  # imports tests.fixtures.reliability: after it
]
