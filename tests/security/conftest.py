"""The live gateway + upstream simulator fixtures of tests/inference, reused here."""

from tests.inference.conftest import catalogue, gateway, gateway_server, simulator  # noqa: F401
