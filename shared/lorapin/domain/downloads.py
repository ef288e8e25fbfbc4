"""Where lorapin may download from by a URL it was handed (a prediction's outputs).

A webhook body is trusted only as far as its signature: whoever holds the signing secret could
name any URL as an output. So a download goes only to an allowed *source*:

- `replicate.delivery`: that host, over HTTPS, on the default port;
- `*.replicate.delivery`: any host under it (not the domain itself), over HTTPS;
- `http://127.0.0.1:3001`: exactly that scheme, host and port. HTTP is allowed only when a source
  says so (the local stack names the emulator's origin this way).

Every hop of a redirect is checked the same way before it is requested. Hosts are compared as
names: the allow-list is about who answers, and Replicate's delivery hosts are Replicate's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lorapin.domain.errors import DownloadRefused

DEFAULT_ALLOWED_SOURCES = "replicate.delivery,*.replicate.delivery"
DEFAULT_MAX_BYTES = 30 * 1024 * 1024  # a FLUX output is a few MB; the S3 copy is held in memory
DEFAULT_TIMEOUT_SECONDS = 20.0  # for the whole download: the webhook must answer within seconds
MAX_REDIRECTS = 3
SETTING = "DOWNLOAD_ALLOWED_HOSTS"
DEFAULT_PORTS = {"https": 443, "http": 80}
_SOURCE = re.compile(r"(?:(?P<scheme>https?)://)?(?P<host>(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(?P<port>\d{1,5}))?")


@dataclass(frozen=True, slots=True)
class DownloadTarget:
    """The parts of a URL that decide whether it may be fetched (from the HTTP client's own parser,
    so that what is checked is what is requested)."""

    scheme: str
    host: str
    port: int | None  # None: the scheme's default port
    has_userinfo: bool = False

    def origin(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme.lower()}://{self.host.lower()}{port}"


@dataclass(frozen=True, slots=True)
class AllowedSource:
    scheme: str
    host: str  # lower case; "*.example.com" for any host under example.com
    port: int

    @classmethod
    def parse(cls, entry: str) -> AllowedSource:
        found = _SOURCE.fullmatch(entry.strip().lower())
        if not found or found["host"] == "*.":
            raise ValueError(f"{SETTING}: {entry!r} is not a source (write host, *.domain or http://host:port)")
        scheme = found["scheme"] or "https"
        port = int(found["port"]) if found["port"] else DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise ValueError(f"{SETTING}: {entry!r} has no valid port")
        return cls(scheme, found["host"], port)

    def admits(self, scheme: str, host: str, port: int) -> bool:
        if scheme != self.scheme or port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host


@dataclass(frozen=True, slots=True)
class DownloadPolicy:
    sources: tuple[AllowedSource, ...]
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def from_allow_list(cls, allow_list: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> DownloadPolicy:
        """`allow_list` is comma-separated sources (see the module's docstring). Raises ValueError."""
        entries = [entry for entry in allow_list.split(",") if entry.strip()]
        if not entries:
            raise ValueError(f"{SETTING}: name at least one source (e.g. {DEFAULT_ALLOWED_SOURCES})")
        return cls(tuple(AllowedSource.parse(entry) for entry in entries), max_bytes, timeout_seconds)

    def require_allowed(self, target: DownloadTarget) -> None:
        """Raise `DownloadRefused` unless `target` is one of the allowed sources."""
        if target.has_userinfo:
            raise DownloadRefused("Refused to download a URL with credentials in it.")
        scheme, host = target.scheme.lower(), target.host.lower().removesuffix(".")
        port = target.port if target.port is not None else DEFAULT_PORTS.get(scheme)
        if not host or port is None or not any(s.admits(scheme, host, port) for s in self.sources):
            raise DownloadRefused(f"Refused to download from {target.origin()}: {target.origin()} is not an "
                                  f"allowed source ({SETTING}).")

    def refuse_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise DownloadRefused(f"Refused a download larger than {self.max_bytes} bytes.")
