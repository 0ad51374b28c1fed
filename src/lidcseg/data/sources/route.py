"""How the download reaches its one configured host: directly or through a proxy, and which
certificate authorities it trusts (``execution.download.proxy``, ``execution.download.ca_bundle``).

Compute nodes often reach the internet only through a proxy. ``proxy`` is ``null`` (direct),
``environment`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``, read once, the
way curl and requests read them, for the configured host's URL) or a proxy URL. An HTTPS host
is reached through an HTTP proxy by a CONNECT tunnel (RFC 9110 9.3.6), so the proxy carries
the TLS session but cannot read or alter it. The proxy is pinned to the configured host's
scheme only, and every URL, redirects included, is still checked against that host before a
request leaves (:class:`~lidcseg.data.sources.remote.RemoteClient`): a proxy widens how the
host is reached, never which hosts are. ``ca_bundle`` (a PEM file) replaces certifi's CAs,
for a proxy that inspects TLS with its own CA; the environment's ``REQUESTS_CA_BUNDLE`` and
``.netrc`` are never read.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from lidcseg.config import DownloadExecution
from lidcseg.errors import ConfigError, LidcsegError

log = logging.getLogger(__name__)

FROM_ENVIRONMENT = "environment"
PROXY_SCHEMES = ("http", "https")  # what requests speaks without extra packages (no SOCKS)


@dataclass(frozen=True)
class Route:
    proxy: str | None  # None: direct; "environment"; or a proxy URL
    ca_bundle: str | None  # a PEM file of trusted CAs; None: certifi's

    @classmethod
    def of(cls, download: DownloadExecution) -> Route:
        return cls(download.proxy, download.ca_bundle)

    def proxies_for(self, base_url: str) -> dict[str, str]:
        """requests' ``proxies`` for ``base_url``'s scheme alone (empty: direct)."""
        scheme = urlsplit(base_url).scheme
        if self.proxy is None:
            return {}
        if self.proxy == FROM_ENVIRONMENT:
            # get_environ_proxies answers {} when NO_PROXY covers the URL's host
            found = requests.utils.get_environ_proxies(base_url)
            proxy, where = (
                found.get(scheme) or found.get("all"),
                f"the {scheme.upper()}_PROXY environment variable",
            )
        else:
            proxy, where = self.proxy, "config key 'execution.download.proxy'"
        if not proxy:
            return {}
        proxy = (
            proxy if "://" in proxy else f"http://{proxy}"
        )  # host:port alone means http, as for curl
        if urlsplit(proxy).scheme not in PROXY_SCHEMES or not urlsplit(proxy).hostname:
            raise LidcsegError(
                f"{where}: proxy {redacted(proxy)!r} is not an http:// or https:// proxy URL"
            )
        log.info("reaching %s through the proxy %s", urlsplit(base_url).netloc, redacted(proxy))
        return {scheme: proxy}

    def verify(self) -> bool | str:
        """requests' ``verify``: the CA bundle's path, or True (certifi's CAs)."""
        if self.ca_bundle is None:
            return True
        if not Path(self.ca_bundle).is_file():
            raise ConfigError("execution.download.ca_bundle", f"{self.ca_bundle}: no such file")
        try:  # read now, so a file that holds no certificate is named before any connection
            ssl.create_default_context(cafile=self.ca_bundle)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                "execution.download.ca_bundle", f"{self.ca_bundle}: no PEM certificates ({exc})"
            ) from None
        return self.ca_bundle


def redacted(url: str) -> str:
    """``url`` without its password, for logs and errors (a proxy URL may carry one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
