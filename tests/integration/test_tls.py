"""TLS on every port (``tls: {cert_file, key_file}``): wss:// workers and subscribers, https:// REST, start-up errors.

The certificate is made at test time by a throwaway CA (``trustme``); clients trust that CA only.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
import trustme

from streamhub.config import EngineConfig, RestApiConfig, TlsConfig, WorkerAuthConfig, load_config
from streamhub.errors import ConfigError
from streamhub.sdk import Client, ConnectError
from streamhub.transport.server import Server
from tests.conftest import make_config, running
from tests.helpers import free_port, timeout

TOKEN = "tls-worker-token"


@dataclass(frozen=True)
class Pki:
    cert: Path
    key: Path
    trust: ssl.SSLContext  # a client context that trusts the test CA

    @property
    def tls(self) -> TlsConfig:
        return TlsConfig(cert_file=str(self.cert), key_file=str(self.key))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    return Pki(cert, key, trust)


def tls_everywhere(pki: Pki) -> EngineConfig:
    config = make_config(tls=pki.tls)
    return replace(config, tls=pki.tls, worker_auth=WorkerAuthConfig(tokens=(TOKEN,)),
                   rest_api=RestApiConfig(port=0, tls=pki.tls))


async def test_worker_subscriber_and_rest_over_tls(pki: Pki) -> None:
    async with running(tls_everywhere(pki)) as server:
        assert server.url("worker") == f"wss://127.0.0.1:{server.worker_port}"
        assert server.url("stream") == f"wss://127.0.0.1:{server.stream_port}"
        assert server.url("rest") == f"https://127.0.0.1:{server.rest_port}"
        async with Client(f"{server.url('worker')}/", stream_url=f"{server.url('stream')}/", token=TOKEN,
                          ssl=pki.trust, connect_timeout=timeout(5), call_timeout=timeout(5)) as client:
            client.register_function("api::hello", lambda event: {"status_code": 200, "body": {"hi": event["path"]}},
                                     triggers=[{"type": "http", "config": {"path": "/hello", "method": "GET"}}])
            await client.call("stream.list_groups", {"stream_name": "todos"})  # registrations are in
            async with client.stream.subscribe("todos", "u1") as sub:
                events = aiter(sub)
                assert (await asyncio.wait_for(anext(events), timeout(5))).event_type == "sync"
                await client.call("stream.set", {"stream_name": "todos", "group_id": "u1", "item_id": "t1",
                                                 "data": {"title": "milk"}})
                created = await asyncio.wait_for(anext(events), timeout(5))
                assert created.event_type == "create" and created.data == {"title": "milk"}
            async with aiohttp.ClientSession() as http, http.get(f"{server.url('rest')}/hello",
                                                                 ssl=pki.trust) as answer:
                assert answer.status == 200 and await answer.json() == {"hi": "/hello"}


async def test_plain_and_untrusted_clients_do_not_get_in(pki: Pki) -> None:
    async with running(tls_everywhere(pki)) as server:
        with pytest.raises(ConnectError):
            await Client(f"ws://127.0.0.1:{server.worker_port}/", token=TOKEN, connect_timeout=1.0).connect()
        with pytest.raises(ConnectError) as untrusted:
            await Client(f"{server.url('worker')}/", token=TOKEN, connect_timeout=1.0).connect()  # system CAs
        assert "certificate" in untrusted.value.message.lower()
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(f"{server.url('rest')}/hello")


def tls_yaml(tmp_path: Path, cert: Path | str, key: Path | str, *, top_level: bool = False) -> EngineConfig:
    tls = f"tls: {{cert_file: '{cert}', key_file: '{key}'}}"
    module = "" if top_level else f"\n      {tls}"
    text = (f"port: {free_port()}\n{tls if top_level else ''}\nmodules:\n"
            f"  - class: modules::stream::StreamModule\n    config:\n      port: {free_port()}{module}\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(("cert", "key", "top", "expected"), [
    ("missing.pem", "key", False, "modules[0].config.tls.cert_file: cannot load {cert}: No such file"),
    ("cert", "missing.pem", True, "tls.key_file: cannot load {key}: No such file"),
    ("key", "key", False, "modules[0].config.tls.cert_file: cannot load {cert}: no PEM certificate"),
    ("cert", "cert", False, "modules[0].config.tls.key_file: cannot load {key}: no PEM private key"),
    ("cert", "other_key", False, "modules[0].config.tls.cert_file: cannot load {cert} with {key}: the key does not"),
])
async def test_bad_tls_files_stop_start_up_naming_the_key(pki: Pki, tmp_path: Path, cert: str, key: str, top: bool,
                                                          expected: str) -> None:
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(tmp_path / "other_key.pem"))
    files = {"cert": pki.cert, "key": pki.key, "other_key": tmp_path / "other_key.pem"}
    cert_path, key_path = files.get(cert, tmp_path / cert), files.get(key, tmp_path / key)
    config = tls_yaml(tmp_path, cert_path, key_path, top_level=top)
    server = Server(config)
    with pytest.raises(ConfigError) as failed:
        await server.start()
    assert failed.value.message.startswith(expected.format(cert=cert_path, key=key_path)), failed.value.message
    assert "\n" not in failed.value.message


async def test_cli_prints_tls_urls_and_one_line_for_a_bad_file(pki: Pki, tmp_path: Path) -> None:
    worker, stream, rest = free_port(), free_port(), free_port()
    tls = f"tls: {{cert_file: '{pki.cert}', key_file: '{pki.key}'}}"
    config = tmp_path / "config.yaml"
    config.write_text(f"port: {worker}\n{tls}\nmodules:\n  - class: modules::stream::StreamModule\n"
                      f"    config:\n      port: {stream}\n      {tls}\n"
                      f"  - class: modules::api::RestApiModule\n    config:\n      port: {rest}\n      {tls}\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "streamhub", "serve", "-c", str(config),
                                                stdout=asyncio.subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout(20))).decode()
        async with Client(f"wss://localhost:{worker}/", ssl=pki.trust, connect_timeout=timeout(5)) as client:
            assert await client.call("stream.list_groups", {"stream_name": "todos"}) == []  # uvloop's TLS transport
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout(20))
    assert line.startswith(f"streamhub ready: streams wss://127.0.0.1:{stream}, workers wss://127.0.0.1:{worker}, "
                           f"rest https://127.0.0.1:{rest} (streamhub ")
    config.write_text(f"port: {worker}\nmodules:\n  - class: modules::stream::StreamModule\n    config:\n"
                      f"      port: {stream}\n      tls: {{cert_file: '{tmp_path}/nope.pem', key_file: '{pki.key}'}}\n")
    failed = await asyncio.create_subprocess_exec(sys.executable, "-m", "streamhub", "serve", "-c", str(config),
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                  cwd=tmp_path)
    out, err = await asyncio.wait_for(failed.communicate(), timeout(20))
    assert failed.returncode == 2 and out == b""
    assert err.decode().splitlines() == [
        f"streamhub: config error: modules[0].config.tls.cert_file: cannot load {tmp_path}/nope.pem: "
        "No such file or directory"]
