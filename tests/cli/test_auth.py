"""Tokens and TLS from the command line: a server with a secret and a certificate."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtmcall.server.tokens import mint_token

from .conftest import REPO, RTMCALL, cli_env, kill
from .procs import Pipe

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """``rtmcall server --secret-file … --cert … --key …``: (wss URL, CA file, secret)."""
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    secret = "a-secret-of-more-than-thirty-two-bytes!"
    (tmp / "key").write_text(secret + "\n")
    args = ["server", "--port", "0", "--quiet", "--secret-file", str(tmp / "key")]
    args += ["--cert", str(tmp / "server.pem"), "--key", str(tmp / "server.pem")]
    proc = subprocess.Popen(
        [*RTMCALL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(tmp),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(wss://\S+)", line)
        assert match, line
        yield match.group(1), tmp / "ca.pem", secret
    finally:
        kill(proc)


def test_token_and_private_ca_log_in(tls_server: tuple[str, Path, str], config_dir: Path) -> None:
    url, ca, secret = tls_server
    pipe = Pipe(
        ["login", "tls-alice", "--server", url, "--ca", str(ca), "--json"],
        config_dir,
        RTMCALL_TOKEN=mint_token(secret, "tls-alice", 300),
    )
    try:
        pipe.expect("LoginSuccess", server=url)
        assert pipe.finish() == 0
    finally:
        pipe.kill()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--ca", "{ca}"], "INVALID_TOKEN"),  # no token
        ([], "certificate"),  # the server's CA is not trusted
    ],
)
def test_refused_logins_exit_3_with_one_line(
    tls_server: tuple[str, Path, str], config_dir: Path, flags: list[str], words: str
) -> None:
    url, ca, _ = tls_server
    flags = [flag.replace("{ca}", str(ca)) for flag in flags]
    pipe = Pipe(["login", "tls-bob", "--server", url, *flags], config_dir)
    try:
        assert pipe.finish(timeout=15) == 3
        err = [line for line in pipe.stderr().splitlines() if line.strip()]
        assert len(err) == 1, err
        assert url in err[0] and words in err[0]
    finally:
        pipe.kill()
