"""``python -m sandbox [--port P] ...``: the sandbox without the order-import CLI (for bench/)."""

from __future__ import annotations

import argparse
import sys

from sandbox.config import DEFAULT_API_KEY, SandboxConfig
from sandbox.invoices import SeedError
from sandbox.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    """Parse flags (0 turns a limit off) and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--rate-limit", type=int, default=150)
    parser.add_argument("--concurrency-limit", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--idempotency-window", type=float, default=1800.0)
    parser.add_argument("--state", default=None)
    parser.add_argument("--strict-invoices", default=None)
    parser.add_argument("--invoices", default=None)
    parser.add_argument("--generate-invoices", type=int, default=0)
    parser.add_argument("--eu-vat", action="store_true")
    parser.add_argument("--export-delay", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        config = _config(args)
    except ValueError as err:
        parser.error(str(err))

    def ready(base_url: str) -> None:
        print(f"Sandbox listening on {base_url}  (API key: {config.api_key})", flush=True)

    try:
        serve_forever(config, args.host, args.port, on_ready=ready)
    except KeyboardInterrupt:  # Ctrl-C before uvicorn took over the signal: the same clean stop
        pass
    except SeedError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)


def _config(args: argparse.Namespace) -> SandboxConfig:
    """The knobs the flags set (0 turns a limit off)."""
    return SandboxConfig(
        api_key=args.api_key,
        rate_limit_per_minute=args.rate_limit or None,
        concurrency_limit=args.concurrency_limit or None,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        idempotency_window_s=args.idempotency_window,
        state_file=args.state,
        strict_invoices_file=args.strict_invoices,
        invoices_file=args.invoices,
        generate_invoices=args.generate_invoices,
        eu_vat=args.eu_vat,
        export_delay_s=args.export_delay,
    )


if __name__ == "__main__":
    main()
