"""A live upstream simulator on a free 127.0.0.1 port, shared by the module's tests."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from inference.simulator.server import SimulatorServer


@pytest.fixture(scope="session")
def sim():
    server = SimulatorServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_simulator(sim):
    sim.app.reset()


@pytest.fixture
def oai(sim):
    with openai.OpenAI(api_key="sk-test-1234", base_url=f"{sim.url}/v1", max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture
def claude(sim):
    with anthropic.Anthropic(
        api_key="sk-ant-test-5678", base_url=sim.url, max_retries=0, timeout=20
    ) as client:
        yield client


@pytest.fixture
def admin(sim):
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        yield client
