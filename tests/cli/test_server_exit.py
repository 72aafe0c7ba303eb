"""``rtmcall server`` that cannot serve exits 4 with one line naming why (issue 13 item 7).

Exit 1 means "the outcome was not what was asked"; a server that is not serving is
something else, and a script must be able to tell. Each test runs the real command as a
subprocess against a real obstacle: a port another process listens on, TLS files that
are missing or do not match, an address that is not this machine's, a Redis that is not
there.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from .conftest import REPO, RTMCALL, cli_env, kill

CANNOT_SERVE = 4


def run_server(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RTMCALL, "server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(config),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A loopback port another process's socket listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use_exits_4(config_dir: Path, occupied_port: int) -> None:
    done = run_server(config_dir, "--port", str(occupied_port))
    assert done.returncode == CANNOT_SERVE
    assert done.stdout == ""  # no "listening on" line: scripts waiting for it see EOF
    line = one_line(done.stderr)
    assert f"127.0.0.1:{occupied_port}" in line and "in use" in line and "--port 0" in line


def test_port_of_a_running_rtmcall_server(config_dir: Path, server_url: str) -> None:
    port = server_url.rsplit(":", 1)[1]
    done = run_server(config_dir, "--port", port)
    assert done.returncode == CANNOT_SERVE
    assert "another rtmcall server?" in one_line(done.stderr)


def test_missing_certificate_exits_4(config_dir: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))
    missing = tmp_path / "nope.pem"
    done = run_server(config_dir, "--port", "0", "--cert", str(missing), "--key", str(key))
    assert done.returncode == CANNOT_SERVE
    assert one_line(done.stderr) == (
        f"rtmcall server: cannot read the TLS certificate {missing}: No such file or directory"
    )


def test_key_of_another_certificate_exits_4(config_dir: Path, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "other-key.pem"
    ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(cert))
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))
    done = run_server(config_dir, "--port", "0", "--cert", str(cert), "--key", str(key))
    assert done.returncode == CANNOT_SERVE
    line = one_line(done.stderr)
    assert f"cannot use the TLS certificate {cert} with the key {key}" in line


def test_not_a_pem_file_exits_4(config_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("this is not a certificate\n")
    done = run_server(config_dir, "--port", "0", "--cert", str(junk), "--key", str(junk))
    assert done.returncode == CANNOT_SERVE
    assert "must be PEM files" in one_line(done.stderr)


def test_address_not_of_this_machine_exits_4(config_dir: Path) -> None:
    # TEST-NET-1 (RFC 5737): never a local address.
    done = run_server(config_dir, "--host", "192.0.2.1", "--port", "0", "--insecure")
    assert done.returncode == CANNOT_SERVE
    assert "192.0.2.1 is not an address of this machine" in one_line(done.stderr)


def test_unknown_host_name_exits_4(config_dir: Path) -> None:
    done = run_server(config_dir, "--host", "no-such-host.invalid", "--port", "0", "--insecure")
    assert done.returncode == CANNOT_SERVE
    assert "not a known host name" in one_line(done.stderr)


def test_redis_not_there_exits_4(config_dir: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run_server(config_dir, "--port", "0", "--redis", f"redis://127.0.0.1:{port}")
    assert done.returncode == CANNOT_SERVE
    assert f"cannot reach redis at redis://127.0.0.1:{port}" in one_line(done.stderr)


def test_usage_error_is_still_2(config_dir: Path) -> None:
    """A public address without a secret is a usage error, not "cannot serve"."""
    done = run_server(config_dir, "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2


def test_clean_stop_is_0(config_dir: Path) -> None:
    proc = subprocess.Popen(
        [*RTMCALL, "server", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(config_dir),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        assert "listening on ws://127.0.0.1:" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        kill(proc)


def test_the_port_check_before_redis_skips_a_family_the_kernel_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--redis`` with a port: the port is tried before Redis is reached. A host that
    resolves to an IPv6 address too, on a kernel without IPv6, is not refused for it (the
    listeners skip that family); a port in use is still found."""
    import errno

    from rtmcall.cli import serverrun

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    real = socket.socket

    def no_ipv6(family: int = socket.AF_INET, *args: object, **kwargs: object) -> socket.socket:
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real(family, *args, **kwargs)  # type: ignore[arg-type]

    both = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
    ]
    monkeypatch.setattr(serverrun.socket, "getaddrinfo", lambda *a, **k: both)
    monkeypatch.setattr(serverrun.socket, "socket", no_ipv6)
    assert serverrun._cannot_bind("localhost", port, False) is None
    with real() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        problem = serverrun._cannot_bind("localhost", port, False)
        assert problem is not None and problem.errno == errno.EADDRINUSE
