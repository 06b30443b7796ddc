"""Fixtures are grouped by what they start; each module stops exactly the processes it started."""

pytest_plugins = [
    "tests.support.fixtures_services",
    "tests.support.fixtures_store",
]
