"""Upstream simulator: a fake OpenAI / Anthropic / OpenAI-compatible server for tests,
demos and benchmarks. Pure ASGI (no Django import). See docs/simulator.md.

    python -m inference.simulator --host 127.0.0.1 --port 8900
"""

from .app import Simulator, app, create_app

__all__ = ["Simulator", "app", "create_app"]
