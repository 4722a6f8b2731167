"""``python -m inference.simulator --host 127.0.0.1 --port 8900``"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m inference.simulator",
        description="Modelgate upstream simulator (OpenAI / Anthropic / OpenAI-compatible vendors).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"Upstream simulator (not a real provider) listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        "inference.simulator.app:app",
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
