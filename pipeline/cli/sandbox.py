"""``order-import sandbox``: run the local Chargebee emulator (the one module importing sandbox).

The ``--api-key`` flag is the emulator's own fake key (default ``test_sandbox_key``), not a secret.
"""

from __future__ import annotations

import click

from sandbox.config import DEFAULT_API_KEY, SandboxConfig
from sandbox.invoices import SeedError


class SeedFileError(click.ClickException):
    """A seed or strict-invoices file the sandbox cannot use: one line, exit 2."""

    exit_code = 2


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0 = ephemeral).")
@click.option("--api-key", default=DEFAULT_API_KEY, show_default=True, help="Fake key to accept.")
@click.option(
    "--rate-limit", default=150, show_default=True, type=int, help="Requests/minute (0 = off)."
)
@click.option(
    "--concurrency-limit", default=50, show_default=True, type=int, help="In flight (0 = off)."
)
@click.option("--latency-ms", default=0.0, show_default=True, type=float, help="Added latency.")
@click.option(
    "--fault-rate", default=0.0, show_default=True, type=float, help="Share of writes faulted."
)
@click.option("--fault-seed", default=0, show_default=True, type=int, help="Fault RNG seed.")
@click.option(
    "--idempotency-window", default=1800.0, show_default=True, type=float, help="Seconds."
)
@click.option("--state", "state_file", default=None, help="Persist orders across restarts here.")
@click.option(
    "--strict-invoices",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="File of known invoice ids, one a line (same as an --invoices file with only ids).",
)
@click.option(
    "--invoices",
    "invoices_file",
    default=None,
    help="Seed CSV id,customer_id,subscription_id,currency_code,total: only these invoices "
    "exist; orders take their currency and totals.",
)
@click.option(
    "--generate-invoices",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed N generated invoices INV-000000.. (deterministic currency and total).",
)
@click.option("--eu-vat", is_flag=True, help="The site has EU VAT: accept country XI.")
@click.option("--export-delay", default=2.0, show_default=True, type=float, help="Seconds.")
@click.option("--doc-series-prefix", default=None, help="Order number series prefix.")
@click.option("--doc-series-start", default=None, type=int, help="Next number of the series.")
def sandbox_command(
    host: str,
    port: int,
    api_key: str,
    rate_limit: int,
    concurrency_limit: int,
    latency_ms: float,
    fault_rate: float,
    fault_seed: int,
    idempotency_window: float,
    state_file: str | None,
    strict_invoices: str | None,
    invoices_file: str | None,
    generate_invoices: int,
    eu_vat: bool,
    export_delay: float,
    doc_series_prefix: str | None,
    doc_series_start: int | None,
) -> None:
    """Run the local Chargebee sandbox (order endpoints) until Ctrl-C."""
    from sandbox.server import serve_forever

    try:
        config = SandboxConfig(
            api_key=api_key,
            rate_limit_per_minute=rate_limit or None,
            concurrency_limit=concurrency_limit or None,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            fault_seed=fault_seed,
            idempotency_window_s=idempotency_window,
            state_file=state_file,
            strict_invoices_file=strict_invoices,
            invoices_file=invoices_file,
            generate_invoices=generate_invoices,
            eu_vat=eu_vat,
            export_delay_s=export_delay,
            doc_series_prefix=doc_series_prefix,
            doc_series_start=doc_series_start,
        )
    except (ValueError, OSError) as err:
        raise click.UsageError(str(err)) from err

    def ready(base_url: str) -> None:
        click.echo(f"Sandbox listening on {base_url}  (API key: {api_key})")
        click.echo("Control: GET /__sandbox/state, POST /__sandbox/reset. Ctrl-C stops.")

    try:
        serve_forever(config, host, port, on_ready=ready)
    except KeyboardInterrupt:
        pass
    except SeedError as err:
        raise SeedFileError(str(err)) from err
    except OSError as err:
        raise click.ClickException(f"cannot serve on {host}:{port}: {err}") from err
    click.echo("Sandbox stopped.")
