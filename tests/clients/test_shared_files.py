"""Fetching customer-shared files: only from the operator's hosts, never from inside the
network (checked on the addresses actually connected to), no redirect off the list, and
never more than the attachment limit."""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestServer
from yarl import URL

from rasa_service_desk.clients.errors import ConfigurationError, RejectedInput, VendorUnavailable
from rasa_service_desk.clients.shared_files import (
    MAX_REDIRECTS,
    HostRule,
    SharedFileFetcher,
    SharedFileSettings,
    refusal,
)

MIB = 1024 * 1024
LIMIT = 7 * MIB


@dataclass
class FileHost:
    """A web server on 127.0.0.1 that serves files and redirects, counting what it serves."""

    url: str
    port: int
    hits: Counter[str]


@pytest.fixture
async def host() -> AsyncIterator[FileHost]:
    hits: Counter[str] = Counter()

    async def files(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        size = int(request.match_info["size"])
        if request.query.get("chunked"):
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(size // MIB):
                await resp.write(b"x" * MIB)
            await resp.write_eof()
            return resp
        return web.Response(body=b"y" * size, content_type="application/pdf")

    async def redirect(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        raise web.HTTPFound(request.query["to"])

    async def secret(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        return web.json_response({"internal": "do not leak"})

    app = web.Application()
    app.router.add_get("/files/{size}", files)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/admin/secret", secret)
    async with TestServer(app, host="127.0.0.1") as server:
        assert server.port is not None
        yield FileHost(str(server.make_url("")).rstrip("/"), server.port, hits)


def fetcher(hosts: str, allow_private: bool = False, **kwargs: Any) -> SharedFileFetcher:
    settings = SharedFileSettings(hosts=hosts, allow_private_networks=allow_private)
    return SharedFileFetcher(settings, max_bytes=kwargs.pop("max_bytes", LIMIT), **kwargs)


def loopback(host: FileHost) -> SharedFileFetcher:
    """The file host allowed, over http, with loopback let through (tests only)."""
    return fetcher(f"http://127.0.0.1:{host.port}", allow_private=True)


class FixedResolver(AbstractResolver):
    """DNS as an attacker controls it: `name` resolves to `addresses`."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> Any:
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": 0} for a in self.addresses]

    async def close(self) -> None:
        pass


async def test_allowed_host_is_downloaded(host: FileHost) -> None:
    assert await loopback(host).fetch(f"{host.url}/files/1000") == b"y" * 1000


@pytest.mark.parametrize("path", ["/files/{big}", "/files/{big}?chunked=1"])
async def test_file_over_the_limit_is_refused(host: FileHost, path: str) -> None:
    with pytest.raises(RejectedInput, match="exceeds"):
        await loopback(host).fetch(host.url + path.format(big=8 * MIB))


async def test_errors_are_typed(host: FileHost) -> None:
    with pytest.raises(RejectedInput, match="HTTP 404"):
        await loopback(host).fetch(f"{host.url}/nothing-here")
    with pytest.raises(RejectedInput):
        await loopback(host).fetch("file:///etc/passwd")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(VendorUnavailable):
        await fetcher(f"http://127.0.0.1:{port}", allow_private=True).fetch(
            f"http://127.0.0.1:{port}/file")


async def test_nothing_is_fetched_by_default(host: FileHost) -> None:
    default = SharedFileFetcher(SharedFileSettings.load(env_file=None), max_bytes=LIMIT)
    assert not default.enabled
    with pytest.raises(RejectedInput, match="SHARED_FILE_HOSTS"):
        await default.fetch(f"{host.url}/admin/secret")
    assert host.hits == {}


async def test_host_not_on_the_list_is_not_contacted(host: FileHost) -> None:
    allowed = fetcher("files.example.com", allow_private=True)
    for url in (f"{host.url}/admin/secret", f"http://localhost:{host.port}/admin/secret",
                f"https://127.0.0.1:{host.port}/admin/secret"):
        with pytest.raises(RejectedInput, match="not allowed by SHARED_FILE_HOSTS"):
            await allowed.fetch(url)
    assert host.hits == {}


async def test_other_port_of_an_allowed_host_is_refused(host: FileHost) -> None:
    with pytest.raises(RejectedInput, match="not allowed"):
        await fetcher("http://127.0.0.1:1", allow_private=True).fetch(
            f"{host.url}/admin/secret")
    assert host.hits == {}


async def test_http_needs_an_explicit_http_entry(host: FileHost) -> None:
    with pytest.raises(RejectedInput, match="not allowed"):
        await fetcher(f"127.0.0.1:{host.port}", allow_private=True).fetch(
            f"{host.url}/files/10")
    assert host.hits == {}


async def test_allowed_name_resolving_to_loopback_is_refused(host: FileHost) -> None:
    with pytest.raises(RejectedInput, match="loopback or private"):
        await fetcher("http://localhost").fetch(f"http://localhost:{host.port}/admin/secret")
    with pytest.raises(RejectedInput, match="loopback or private"):
        await fetcher("http://127.0.0.1").fetch(f"{host.url}/admin/secret")
    assert host.hits == {}


async def test_every_resolved_address_is_checked(host: FileHost) -> None:
    """DNS rebinding: a public address first, an internal one next."""
    rebinding = fetcher("http://files.example.test",
                        resolver=FixedResolver(["93.184.215.14", "127.0.0.1"]))
    with pytest.raises(RejectedInput, match="loopback or private"):
        await rebinding.fetch(f"http://files.example.test:{host.port}/admin/secret")
    assert host.hits == {}


async def test_the_connection_goes_to_the_checked_address(host: FileHost) -> None:
    """`files.example.test` exists only in the checking resolver's answer: getting the file
    proves the connection used that answer, not a second lookup."""
    checked = fetcher("http://files.example.test", allow_private=True,
                      resolver=FixedResolver(["127.0.0.1"]))
    data = await checked.fetch(f"http://files.example.test:{host.port}/files/5")
    assert data == b"yyyyy"


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "224.0.0.1",
                                     "0.0.0.0", "::ffff:169.254.169.254"])
async def test_metadata_and_special_addresses_stay_refused_even_for_development(
    address: str,
) -> None:
    literal = f"[{address}]" if ":" in address else address
    allowed = fetcher(f"http://{literal}", allow_private=True)
    with pytest.raises(RejectedInput, match=r"metadata|multicast"):
        await allowed.fetch(f"http://{literal}/latest/meta-data/")
    named = fetcher("http://metadata.internal.test", allow_private=True,
                    resolver=FixedResolver([address]))
    with pytest.raises(RejectedInput, match=r"metadata|multicast"):
        await named.fetch("http://metadata.internal.test/latest/meta-data/")


async def test_redirect_to_a_host_not_on_the_list_is_not_followed(host: FileHost) -> None:
    target = f"http://localhost:{host.port}/admin/secret"
    with pytest.raises(RejectedInput, match="not allowed by SHARED_FILE_HOSTS"):
        await loopback(host).fetch(f"{host.url}/redirect?to={target}")
    assert host.hits == {"/redirect": 1}


async def test_redirect_to_the_metadata_service_is_not_followed(host: FileHost) -> None:
    both = fetcher(f"http://127.0.0.1:{host.port},http://169.254.169.254", allow_private=True)
    with pytest.raises(RejectedInput, match="metadata"):
        await both.fetch(f"{host.url}/redirect?to=http://169.254.169.254/latest/meta-data/")


async def test_redirects_within_allowed_hosts_are_followed_a_few_times(host: FileHost) -> None:
    def chain(hops: int) -> str:
        target = "/files/3"
        for _ in range(hops):
            target = "/redirect?to=" + quote(target, safe="")
        return host.url + target

    assert await loopback(host).fetch(chain(MAX_REDIRECTS)) == b"yyy"
    with pytest.raises(RejectedInput, match="redirects"):
        await loopback(host).fetch(chain(MAX_REDIRECTS + 1))


def test_host_rules() -> None:
    wildcard = HostRule.parse("*.cdn.example.com")
    assert wildcard.allows(URL("https://eu.cdn.example.com/a.pdf"))
    assert wildcard.allows(URL("https://a.b.cdn.example.com/a.pdf"))
    assert not wildcard.allows(URL("https://cdn.example.com/a.pdf"))
    assert not wildcard.allows(URL("https://evilcdn.example.com/a.pdf"))
    assert not wildcard.allows(URL("http://eu.cdn.example.com/a.pdf"))
    plain = HostRule.parse("Files.Example.com")
    assert plain.allows(URL("https://files.example.com./x"))
    assert not plain.allows(URL("https://files.example.com.evil.test/x"))
    assert HostRule.parse("http://intranet.example.com:8080").allows(
        URL("http://intranet.example.com:8080/x"))


@pytest.mark.parametrize("hosts", ["ftp://files.example.com", "*", "files.example.com/path",
                                   "files.example.com:port", "user@files.example.com"])
def test_invalid_host_entries_stop_the_start(monkeypatch: pytest.MonkeyPatch,
                                             hosts: str) -> None:
    monkeypatch.setenv("SHARED_FILE_HOSTS", hosts)
    with pytest.raises(ConfigurationError, match="SHARED_FILE_HOSTS"):
        SharedFileSettings.load(env_file=None)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARED_FILE_HOSTS", "files.example.com, *.cdn.example.com")
    monkeypatch.setenv("SHARED_FILE_ALLOW_PRIVATE_NETWORKS", "1")
    settings = SharedFileSettings.load(env_file=None)
    assert [r.host for r in settings.rules()] == ["files.example.com", "cdn.example.com"]
    assert settings.allow_private_networks


@pytest.mark.parametrize(("address", "private_allowed", "refused"), [
    ("93.184.215.14", False, False),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", False, False),
    ("127.0.0.1", False, True), ("127.0.0.1", True, False),
    ("10.1.2.3", False, True), ("192.168.1.1", True, False), ("::1", True, False),
    ("::ffff:127.0.0.1", False, True), ("2002:7f00:1::", False, True),
    ("100.64.0.1", True, True), ("169.254.169.254", True, True), ("168.63.129.16", True, True),
    ("fe80::1", True, True), ("ff02::1", True, True), ("240.0.0.1", True, True),
    ("0.0.0.0", True, True), ("0.1.2.3", True, True),
])
def test_address_rules(address: str, private_allowed: bool, refused: bool) -> None:
    assert (refusal(ipaddress.ip_address(address), private_allowed) is not None) == refused
