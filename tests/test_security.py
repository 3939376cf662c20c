"""Security checks: the API key never lands in a file the tool writes or in its output (also on
401 and connection errors), it cannot be a flag, TLS verification stays on, plain http only to
loopback, and a live site needs --live. The CLI runs as a subprocess against a real sandbox.
"""

from __future__ import annotations

import base64
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from pipeline.api.client import ChargebeeClient
from pipeline.config import load_settings
from pipeline.errors import ConfigError
from tests import support
from tests.orders_factory import write_orders
from tests.support import cli

SENTINEL = "sk_SENTINEL_4b1d9e7c0a"
FORMS = (
    SENTINEL.encode(),
    base64.b64encode(f"{SENTINEL}:".encode()),  # the HTTP Basic header value
    quote(f"{SENTINEL}:", safe="").encode(),  # url-encoded, as a server might log it
    SENTINEL.encode("utf-16-le"),
)
TIMEOUT_S = 120


def env_with(base_url: str, key: str = SENTINEL, **extra: str) -> dict[str, str]:
    """A clean environment carrying the key and the target."""
    env = support.cli_env(base_url, key)
    env.update(extra)
    return env


def call(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a CLI subprocess to completion (bounded)."""
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def run_args(source: Path, work: Path, *more: str) -> list[str]:
    """A run of batch ``sec`` with everything it writes inside ``work``."""
    return cli(
        "run", str(source), "--batch", "sec", "--ledger", str(work / "ledger.sqlite"),
        "--report-dir", str(work / "reports"), "--rate", "60000", *more,
    )  # fmt: skip


def leaks(root: Path, *outputs: str) -> list[str]:
    """Every file under ``root`` and every output text that contains the key in any form."""
    found = [
        f"output #{i}"
        for i, text in enumerate(outputs)
        if any(f.decode("latin-1") in text for f in FORMS[:3])
    ]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(form in data for form in FORMS):
                found.append(str(path.relative_to(root)))
    return found


def written_files(root: Path) -> list[str]:
    """Names of the files the tool wrote (to prove the scan had something to look at)."""
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def max_attempts_config(work: Path, attempts: int = 1) -> Path:
    """A config file bounding retries (it carries no key)."""
    path = work / "order-import.toml"
    path.write_text(f"max_attempts = {attempts}\nmax_row_seconds = 5\nconnect_timeout = 2\n")
    return path


def test_key_never_written_or_printed_across_crash_faults_invalid_rows_and_reports(
    make_sandbox, tmp_path
):
    """Ledger (incl. the -wal a kill -9 leaves), reports, JSON logs, status, report: no key."""
    server = make_sandbox(api_key=SENTINEL, latency_ms=30, fault_rate=0.2, fault_seed=3)
    source = write_orders(
        tmp_path / "orders.csv",
        120,
        prefix="SK",
        bad={4: {"status": "nope"}, 9: {"invoice_id": ""}},
    )
    env = env_with(server.base_url)
    crashed = subprocess.Popen(
        run_args(source, tmp_path, "--log-json", "--concurrency", "4"),
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    end = time.monotonic() + 60
    while len(server.state(orders=False)["requests"]) < 30 and time.monotonic() < end:
        time.sleep(0.02)
    crashed.send_signal(signal.SIGKILL)
    crash_out, crash_err = crashed.communicate(timeout=30)
    wal_after_crash = (
        (tmp_path / "ledger.sqlite-wal").read_bytes()
        if (tmp_path / "ledger.sqlite-wal").exists()
        else b""
    )
    assert not any(form in wal_after_crash for form in FORMS)
    result = call(run_args(source, tmp_path, "--log-json"), env, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # two invalid rows
    assert result.stderr.lstrip().startswith("{"), "--log-json should log JSON lines to stderr"
    status = call(
        cli("status", "--batch", "sec", "--ledger", str(tmp_path / "ledger.sqlite"), "--json"),
        env,
        tmp_path,
    )
    ledger = str(tmp_path / "ledger.sqlite")
    report = call(
        cli("report", "--batch", "sec", "--ledger", ledger, "--out", str(tmp_path / "rep2")),
        env,
        tmp_path,
    )
    assert status.returncode == 0, status.stderr
    assert report.returncode == 0, report.stderr
    (tmp_path / "logs.txt").write_text(result.stderr + crash_err)
    names = written_files(tmp_path)
    assert "ledger.sqlite" in names
    assert any(n.endswith(".html") for n in names), names
    outputs = (
        crash_out,
        crash_err,
        result.stdout,
        result.stderr,
        status.stdout,
        status.stderr,
        report.stdout,
        report.stderr,
    )
    assert leaks(tmp_path, *outputs) == []


def test_key_not_leaked_when_the_key_is_refused_with_401(make_sandbox, tmp_path):
    """A wrong key: exit 2 with a clear message, and the key in no output and no file."""
    server = make_sandbox(api_key="the_right_key")
    source = write_orders(tmp_path / "orders.csv", 10, prefix="SA")
    result = call(run_args(source, tmp_path, "--log-json"), env_with(server.base_url), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "auth" in (result.stdout + result.stderr).lower()
    assert leaks(tmp_path, result.stdout, result.stderr) == []


def test_key_not_leaked_on_connection_errors(tmp_path):
    """Nothing listening on the port: the run fails cleanly and the key appears nowhere."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = write_orders(tmp_path / "orders.csv", 5, prefix="SC")
    config = max_attempts_config(tmp_path)
    result = call(
        run_args(source, tmp_path, "--log-json", "--config", str(config)),
        env_with(f"http://127.0.0.1:{port}/api/v2"),
        tmp_path,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert leaks(tmp_path, result.stdout, result.stderr) == []


def test_key_not_leaked_when_the_server_pastes_it_into_every_error(make_sandbox, tmp_path):
    """A careless server echoes every request header (Authorization) and the decoded key into
    each error (here a 503 on every request): the rows' errors land in the ledger, failures
    files and report.html, and the terminal, without the key in any form."""
    server = make_sandbox(
        api_key=SENTINEL,
        echo_headers_in_errors=True,
        fault_rate=1.0,
        faults=("before_commit",),
    )
    source = write_orders(tmp_path / "orders.csv", 4, prefix="SE")
    config = max_attempts_config(tmp_path)
    result = call(
        run_args(source, tmp_path, "--log-json", "--config", str(config)),
        env_with(server.base_url),
        tmp_path,
    )
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert "Traceback" not in text
    assert "debug: request headers" in text, "the echoed errors should be shown (scrubbed)"
    ledger = str(tmp_path / "ledger.sqlite")
    report = call(
        cli("report", "--batch", "sec", "--ledger", ledger, "--out", str(tmp_path / "rep2")),
        env_with(server.base_url),
        tmp_path,
    )
    assert report.returncode == 0, report.stderr
    assert any(n.endswith(".html") for n in written_files(tmp_path))
    assert leaks(tmp_path, result.stdout, result.stderr, report.stdout, report.stderr) == []


@pytest.mark.parametrize("flag", ["--api-key", "--api_key", "--key"])
def test_the_api_key_cannot_be_given_as_a_flag(flag, tmp_path):
    """No flag takes the key: passing one is a usage error (exit 2) and the value is not echoed."""
    source = write_orders(tmp_path / "orders.csv", 2, prefix="SF")
    result = call(
        [*run_args(source, tmp_path, "--dry-run"), flag, SENTINEL],
        env_with("http://127.0.0.1:9/api/v2", key=""),
        tmp_path,
    )
    assert result.returncode == 2
    assert "no such option" in result.stderr.lower()
    assert SENTINEL not in result.stdout + result.stderr


def test_settings_refuse_an_api_key_passed_as_a_flag_value():
    """load_settings rejects ``api_key`` among the flag values (defence behind click)."""
    with pytest.raises(ConfigError, match="never taken from a flag"):
        load_settings({"api_key": SENTINEL}, environ={})


def test_plain_http_to_a_non_loopback_host_is_refused_before_anything_is_sent(tmp_path):
    """http:// to a non-loopback host: exit 2 naming the problem (TLS required)."""
    source = write_orders(tmp_path / "orders.csv", 2, prefix="SH")
    result = call(run_args(source, tmp_path), env_with("http://10.255.255.1/api/v2"), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "http://" in result.stderr
    assert "Traceback" not in result.stderr
    assert SENTINEL not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("environ", "live", "refused"),
    [
        ({"CHARGEBEE_SITE": "acme"}, False, True),
        ({"CHARGEBEE_SITE": "acme"}, True, False),
        ({"CHARGEBEE_SITE": "acme-test"}, False, False),
        ({"CHARGEBEE_BASE_URL": "https://acme.chargebee.com/api/v2"}, False, True),
        ({"CHARGEBEE_BASE_URL": "http://127.0.0.1:8080/api/v2"}, False, False),
    ],
)
def test_a_live_site_needs_live(environ, live, refused):
    """acme → acme.chargebee.com is live and needs --live; -test sites and loopback do not."""
    settings = load_settings(
        {"live": live or None}, environ={"CHARGEBEE_API_KEY": SENTINEL, **environ}
    )
    if refused:
        with pytest.raises(ConfigError, match="LIVE"):
            settings.check_target()
    else:
        settings.check_target()


def test_live_site_refused_by_the_cli_without_live_and_nothing_sent(tmp_path):
    """The CLI with CHARGEBEE_SITE=acme and no --live: exit 2, LIVE named, key not shown."""
    source = write_orders(tmp_path / "orders.csv", 2, prefix="SL")
    env = env_with("", CHARGEBEE_SITE="acme")
    result = call(run_args(source, tmp_path), env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "LIVE" in result.stderr
    assert "acme.chargebee.com" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert not (tmp_path / "ledger.sqlite").exists(), "refused before the ledger is touched"


def test_tls_verification_is_on_for_a_non_loopback_host():
    """The client's TLS context for https://acme-test.chargebee.com requires a valid certificate."""
    settings = load_settings(
        {}, environ={"CHARGEBEE_API_KEY": SENTINEL, "CHARGEBEE_SITE": "acme-test"}
    )
    client = ChargebeeClient(settings)
    transport = client._http._transport  # httpx's default transport or the lean one
    context = getattr(transport, "ssl_context", None) or transport._pool._ssl_context  # type: ignore[attr-defined]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


@pytest.fixture
def self_signed_https(tmp_path: Path) -> Iterator[tuple[str, list[bytes], list[int]]]:
    """A TLS server on 127.0.0.1 with a self-signed certificate; yields (url, bytes received,
    connections accepted)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.fail(f"openssl could not make a certificate: {made.stderr!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    received: list[bytes] = []
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    received.append(tls.recv(65536))
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/api/v2", received, accepted
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_https_to_a_self_signed_server_fails_cleanly_and_sends_nothing(self_signed_https, tmp_path):
    """Self-signed TLS: handshake refused, nothing (no key) reaches the server, clean exit != 0."""
    url, received, accepted = self_signed_https
    source = write_orders(tmp_path / "orders.csv", 3, prefix="ST")
    config = max_attempts_config(tmp_path)
    result = call(run_args(source, tmp_path, "--config", str(config)), env_with(url), tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert "Traceback" not in text
    assert accepted, "the client never tried to connect"
    assert received == [], "a request got through an unverified TLS connection"
    assert leaks(tmp_path, result.stdout, result.stderr) == []
