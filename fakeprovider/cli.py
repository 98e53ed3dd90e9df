"""`llmur-fake-provider`: run the fake provider in the foreground."""
from __future__ import annotations

import argparse
import asyncio
import sys

from fakeprovider.server import Options, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="llmur-fake-provider",
        description="A fast fake OpenAI / Anthropic / Ollama provider. The upstream model name picks a behaviour: "
                    "…-500, …-429, …-400, …-hang, …-cut, …-slow-<ms>, …-drip-<ms>, …-echo; anything else answers.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port to listen on; 0 picks a free one (default 9100)")
    parser.add_argument("--tokens", type=int, default=16, help="completion tokens per answer, capped by max_tokens")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay before the first byte of every answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="delay between streamed chunks")
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help="a name GET /v1/models lists (repeatable; default fake-gpt)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: out of range (expected 0..65535)")
    if args.tokens < 0 or args.latency_ms < 0 or args.chunk_delay_ms < 0:
        parser.error("--tokens, --latency-ms and --chunk-delay-ms must not be negative")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    options = Options(tokens=args.tokens, latency_ms=args.latency_ms, chunk_delay_ms=args.chunk_delay_ms,
                      models=args.models)

    def ready(port: int) -> None:
        print(f"fake provider listening on http://{args.host}:{port} "
              f"(OpenAI base_url http://{args.host}:{port}/v1, Anthropic http://{args.host}:{port})", flush=True)

    try:
        import uvloop
    except ImportError:  # uvloop is in llmur's requirements; the fake runs without it, slower.
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(args.host, args.port, options, ready=ready))
    except OSError as exc:
        sys.exit(f"llmur-fake-provider: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
