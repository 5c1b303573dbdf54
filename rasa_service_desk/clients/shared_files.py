"""Download a file a customer shared, without letting the customer reach inside our network.

A shared file arrives as a URL in the message metadata, and the channel (the REST channel,
say) takes it from the customer as is. Fetching it blindly lets anyone make the action server
call an internal service or the cloud metadata endpoint and get the answer attached to a
ticket (server-side request forgery). So a URL is fetched only when:

- its host is on the operator's list, `SHARED_FILE_HOSTS` (empty by default: nothing is
  fetched), e.g. `files.example.com,*.cdn.example.com,http://intranet.example.com:8080`;
  `*.` allows the subdomains of a domain (not the domain itself), a port restricts the entry
  to that port;
- it is https, or its entry says `http://` explicitly;
- every address its host resolves to is public: loopback, private, shared (CGNAT),
  link-local, multicast, reserved, unspecified and cloud metadata addresses are refused. The
  check runs inside the connection's DNS resolver and the connection uses the checked
  addresses, so a name that resolves differently a moment later (DNS rebinding) gains
  nothing. `SHARED_FILE_ALLOW_PRIVATE_NETWORKS=1` lets loopback and private addresses
  through, for tests and development only; metadata, link-local and the rest stay refused;
- redirects lead to a listed host again: each hop is checked like the first, at most
  `MAX_REDIRECTS` of them;
- the body stays within `max_bytes` (read in chunks, abandoned as soon as it is over).

Refusals raise `RejectedInput`, transport failures `VendorUnavailable`; messages name the
host and the setting, never the URL's path or query (signed URLs carry credentials there).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from rasa_service_desk.clients.compat import field_check
from rasa_service_desk.clients.errors import RejectedInput, VendorUnavailable
from rasa_service_desk.clients.settings import EnvironmentSettings

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult

logger = logging.getLogger(__name__)

SOURCE = "shared file"
MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Instance metadata services (AWS/GCP/Azure/OpenStack, AWS ECS and IPv6, Azure wire server,
#: Alibaba, Oracle): refused whatever the settings say.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "168.63.129.16", "100.100.100.200",
    "192.0.0.192",
))
#: What `SHARED_FILE_ALLOW_PRIVATE_NETWORKS=1` lets through: loopback and private ranges.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7",
))


@dataclass(frozen=True)
class HostRule:
    """One entry of `SHARED_FILE_HOSTS`."""

    host: str  # lower-case, IDNA-encoded, without a leading "*."
    subdomains: bool  # "*.example.com": any subdomain, not example.com itself
    allow_http: bool  # written "http://host"
    port: int | None  # None: any port

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        """`[http(s)://][*.]host[:port]`; raises ValueError naming what is wrong."""
        scheme, has_scheme, rest = entry.strip().partition("://")
        if not has_scheme:
            scheme, rest = "https", entry.strip()
        if scheme.lower() not in ("http", "https"):
            raise ValueError("an entry has a scheme other than http:// or https://; entries "
                             "are [http(s)://][*.]host[:port], comma-separated")
        subdomains = rest.startswith("*.")
        rest = rest[2:] if subdomains else rest
        try:
            parts = urlsplit(f"//{rest}")
            port = parts.port
        except ValueError:
            raise ValueError("an entry has an invalid port (1-65535)") from None
        if not parts.hostname or "*" in rest or parts.path.strip("/") or parts.query \
                or parts.username:
            raise ValueError("an entry is not a host name: entries are [http(s)://][*.]host"
                             "[:port] (like files.example.com or *.cdn.example.com), no path")
        return cls(normal_host(parts.hostname), subdomains, scheme.lower() == "http", port)

    def allows(self, url: URL) -> bool:
        host = normal_host(url.raw_host or "")
        matched = host.endswith("." + self.host) if self.subdomains else host == self.host
        return matched and (self.port is None or url.port == self.port) and (
            url.scheme == "https" or (url.scheme == "http" and self.allow_http))


def normal_host(host: str) -> str:
    """A host name as compared: lower-case, IDNA (punycode), no trailing dot; an address in
    its one canonical spelling."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host


class SharedFileSettings(EnvironmentSettings):
    """`SHARED_FILE_*`: which hosts shared files may be fetched from."""

    env_prefix: ClassVar[str] = "SHARED_FILE_"

    #: Comma-separated hosts shared files are fetched from; empty = never fetch them.
    hosts: str = ""
    #: For tests and development only: also fetch from loopback and private addresses.
    allow_private_networks: bool = False

    @field_check("hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        for entry in value.split(","):
            if entry.strip():
                HostRule.parse(entry)
        return value

    def rules(self) -> list[HostRule]:
        return [HostRule.parse(e) for e in self.hosts.split(",") if e.strip()]


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` must not be connected to, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):  # an IPv4 address inside an IPv6 one
        embedded = address.ipv4_mapped or address.sixtofour
        address = embedded if embedded is not None else address
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(address in net for net in PRIVATE_NETWORKS):
        return None if allow_private else "a loopback or private address"
    if address.is_multicast or address.is_unspecified or address.is_link_local \
            or address.is_reserved or address in ipaddress.ip_network("0.0.0.0/8"):
        return "a multicast, link-local, reserved or unspecified address"
    return None if address.is_global else "a non-public address"


class RefusedAddress(OSError):
    """A host resolved to an address shared files must not be fetched from."""


class CheckingResolver(AbstractResolver):
    """Resolves with `inner`, then refuses the host unless every address is allowed.

    aiohttp connects to the addresses this returns, so what was checked is what is used.
    """

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(str(result["host"]).split("%", 1)[0])
            reason = refusal(address, self._allow_private)
            if reason is not None:
                raise RefusedAddress(f"{host} resolves to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()


class SharedFileFetcher:
    """Fetches customer-shared files under the rules of `SharedFileSettings`."""

    def __init__(self, settings: SharedFileSettings, *, max_bytes: int, timeout: float = 10.0,
                 resolver: AbstractResolver | None = None) -> None:
        self.settings = settings
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._rules = settings.rules()
        self._resolver = resolver

    @property
    def enabled(self) -> bool:
        """False while `SHARED_FILE_HOSTS` is empty: no URL would be fetched."""
        return bool(self._rules)

    def check(self, url: URL) -> None:
        """Refuse a URL whose scheme, host or literal address is not allowed."""
        host = url.raw_host or ""
        if url.scheme not in ("http", "https") or not host:
            raise RejectedInput(SOURCE, "not an http(s) URL")
        if not any(rule.allows(url) for rule in self._rules):
            raise RejectedInput(
                SOURCE, f"{url.scheme}://{host} is not allowed by SHARED_FILE_HOSTS")
        try:  # an address in the URL never reaches the resolver: check it here
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]").split("%")[0])
        except ValueError:
            literal = None
        reason = None if literal is None else refusal(
            literal, self.settings.allow_private_networks)
        if reason is not None:
            raise RejectedInput(SOURCE, f"{host} is {reason}")

    async def fetch(self, url: str) -> bytes:
        """The file's bytes; `RejectedInput` when refused, `VendorUnavailable` when the host
        cannot be reached."""
        try:
            target = URL(url)
        except (ValueError, TypeError):
            raise RejectedInput(SOURCE, "not a URL") from None
        self.check(target)
        resolver = CheckingResolver(self.settings.allow_private_networks, self._resolver)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             trust_env=False) as session:
                for _ in range(MAX_REDIRECTS + 1):
                    async with session.get(target, allow_redirects=False) as resp:
                        if resp.status not in REDIRECTS:
                            return await self._body(resp, target)
                        location = resp.headers.get("Location")
                    target = self._redirect(target, location)
                raise RejectedInput(SOURCE, f"more than {MAX_REDIRECTS} redirects")
        except aiohttp.ClientConnectorError as exc:
            cause: Any = exc.os_error
            if isinstance(cause, RefusedAddress):
                raise RejectedInput(SOURCE, str(cause)) from None
            raise VendorUnavailable(
                SOURCE, f"{target.raw_host} unreachable: {type(exc).__name__}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise VendorUnavailable(
                SOURCE, f"download from {target.raw_host} failed: {type(exc).__name__}"
            ) from None

    def _redirect(self, current: URL, location: str | None) -> URL:
        """The next hop of a redirect, checked like the first URL."""
        try:
            target = current.join(URL(location or ""))
        except (ValueError, TypeError):
            target = URL()
        if not location or not target.raw_host:
            raise RejectedInput(SOURCE, f"{current.raw_host} redirected without a usable Location")
        self.check(target)
        return target

    async def _body(self, resp: aiohttp.ClientResponse, url: URL) -> bytes:
        if resp.status >= 300:
            raise RejectedInput(SOURCE, f"{url.raw_host} answered HTTP {resp.status}",
                                status=resp.status)
        too_big = RejectedInput(SOURCE, f"file exceeds {self.max_bytes} bytes")
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise too_big
        data = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            data.extend(chunk)
            if len(data) > self.max_bytes:
                raise too_big
        return bytes(data)
