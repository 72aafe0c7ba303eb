"""Nodes over a Redis that speaks TLS (``rediss://``): the hub's own RESP client, with the
frames between nodes going through Redis (``links=False``) and over links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from .redisproc import RedisProcess, free_port
from .test_scale_out import alice_and_bob, recv, send


@pytest.fixture
def tls_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    redis = RedisProcess(
        extra=["--tls-port", str(port), "--tls-cert-file", str(cert_file), "--tls-key-file",
               str(key_file), "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no"]
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the default context trusts our CA
    yield f"rediss://127.0.0.1:{port}/0"
    redis.close()


@pytest.mark.parametrize("links", [False, True], ids=["streams", "links"])
async def test_two_nodes_over_tls_redis(tls_redis: str, links: bool) -> None:
    options = {"links": links}
    async with alice_and_bob(tls_redis, options, options, op_timeout=1.0) as (wa, wb, a, b):
        for i in range(20):  # (each through the TLS connection's writer task)
            msg = {"k": "text", "text": str(i) * 2000}
            await send(wa, {"t": "send", "rid": i + 1, "to": "bob", "msg": msg})
        got = [(await recv(wb, "msg"))["msg"]["text"] for _ in range(20)]
        assert got == [str(i) * 2000 for i in range(20)]
        assert a.redis.address.tls
        through_redis = await a.redis.call("XLEN", b._inbox)
        assert (through_redis == 0) is links  # (without links: an entry per batch)
