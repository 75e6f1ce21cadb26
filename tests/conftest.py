"""Fixtures live in tests/fixtures/, one module per real part (data, model, broker, camera)."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.model",
    "tests.fixtures.convert",
    "tests.fixtures.packages",
    "tests.fixtures.broker",
    "tests.fixtures.camera",
    "tests.fixtures.edge_daemon",
    "tests.fixtures.tls",
    "tests.fixtures.reliability",
]
