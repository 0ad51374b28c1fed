"""Downloads through a proxy: HTTPS to the archive tunnelled by CONNECT through a proxy on
loopback, the archive's certificate trusted through download.ca_bundle.

The archive is named ``tcia.test`` (RFC 2606: never resolvable), which only the proxy maps to
the loopback server: a download that succeeds went through the proxy, and the socket audit
shows this process never looked the name up itself.
"""

from __future__ import annotations

import ssl
from dataclasses import replace

import pytest

from lidcseg.data.sources.download import Selection, download_lidc, make_source
from lidcseg.data.sources.remote import DownloadError, RetryPolicy
from lidcseg.data.sources.route import Route, redacted
from lidcseg.data.sources.tcia import TciaSource
from lidcseg.errors import ConfigError, LidcsegError
from lidcseg.io import read_json
from tests.support.archive_servers import Archive, nbia_server, tiny_series
from tests.support.defaults import DEFAULTS
from tests.support.network_guard import only_loopback, pylidc_scans
from tests.support.proxy import ConnectProxy, certificates

pytest.importorskip("cryptography", reason="the test certificates are made with cryptography")

FAST = RetryPolicy(retries=1, backoff_s=0.01, timeout_s=5.0, max_wait_s=0.1)
NAME = "tcia.test"
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.fixture
def scan():
    return pylidc_scans(1)[0]


@pytest.fixture
def certs(tmp_path_factory):
    return certificates(tmp_path_factory.mktemp("tls"), [NAME])


@pytest.fixture
def server(scan, certs):
    archive = Archive()
    archive.add(tiny_series(*scan))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.cert, certs.key)
    with nbia_server(archive, tls) as running:
        yield running


@pytest.fixture
def proxy(server):
    with ConnectProxy({(NAME, 443): ("127.0.0.1", server.port)}) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _source(base_url: str, route: Route) -> TciaSource:
    return TciaSource(
        replace(DEFAULTS.download.tcia, base_url=f"{base_url}/nbia-api/services"), FAST, route
    )


def test_a_download_goes_through_the_configured_proxy_and_trusts_the_ca_bundle(
    server, proxy, certs, scan, tmp_path
):
    route = Route(proxy=proxy.url, ca_bundle=str(certs.ca))
    with only_loopback(
        proxy.port, server.port
    ) as contacted:  # the proxy's own connect is the server's port
        download_lidc(_source(f"https://{NAME}", route), Selection((scan[0],)), tmp_path, 1)
    assert read_json(tmp_path / scan[0] / "series.json")["md5_verified"]
    assert proxy.tunnels and set(proxy.tunnels) == {(NAME, 443)}
    assert {host for host, _ in server.archive.requests} == {NAME}  # the Host inside the tunnel
    assert not [
        target for event, target in contacted if event == "socket.getaddrinfo" and target[0] == NAME
    ]


def test_proxy_environment_uses_https_proxy_for_the_archive_unless_no_proxy_names_it(
    server, proxy, certs, scan, tmp_path, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,.example.org")
    download = replace(
        DEFAULTS.download,
        tcia=replace(DEFAULTS.download.tcia, base_url=f"https://{NAME}/nbia-api/services"),
    )
    connection = replace(
        DEFAULTS.execution.download,
        retries=1,
        backoff_s=0.01,
        proxy="environment",
        ca_bundle=str(certs.ca),
    )
    download_lidc(
        make_source("tcia", download, connection), Selection((scan[0],)), tmp_path / "proxied", 1
    )  # as the CLI does
    assert set(proxy.tunnels) == {(NAME, 443)}
    route = Route(proxy="environment", ca_bundle=str(certs.ca))
    proxy.tunnels.clear()
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    download_lidc(_source(server.url, route), Selection((scan[0],)), tmp_path / "direct", 1)
    assert proxy.tunnels == [] and (tmp_path / "direct" / scan[0] / "series.json").is_file()


def test_without_proxy_environment_the_variables_are_not_read(
    server, proxy, certs, scan, tmp_path, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    download_lidc(
        _source(server.url, Route(None, str(certs.ca))), Selection((scan[0],)), tmp_path, 1
    )
    assert proxy.tunnels == []


def test_a_redirect_to_another_host_is_refused_before_the_proxy_is_asked(
    server, proxy, certs, scan, tmp_path
):
    server.archive.faults[scan[2]] = ["redirect"]
    route = Route(proxy=proxy.url, ca_bundle=str(certs.ca))
    with pytest.raises(DownloadError, match="refused to contact http://198.51.100.7"):
        download_lidc(_source(f"https://{NAME}", route), Selection((scan[0],)), tmp_path, 1)
    assert set(proxy.tunnels) == {(NAME, 443)}


def test_certificates_are_verified_against_certifi_without_a_ca_bundle(
    server, proxy, scan, tmp_path
):
    with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED"):
        download_lidc(
            _source(f"https://{NAME}", Route(proxy.url, None)), Selection((scan[0],)), tmp_path, 1
        )
    assert not (tmp_path / scan[0]).exists()


def test_a_missing_ca_bundle_is_named_by_its_key(tmp_path):
    connection = replace(
        DEFAULTS.execution.download, proxy=None, ca_bundle=str(tmp_path / "corporate-ca.pem")
    )
    with pytest.raises(
        ConfigError, match=r"execution\.download\.ca_bundle.*corporate-ca\.pem: no such file"
    ):
        make_source("tcia", DEFAULTS.download, connection)


def test_a_socks_proxy_from_the_environment_is_named_without_its_password(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:secret@proxy.example.org:1080")
    with pytest.raises(
        LidcsegError, match=r"HTTPS_PROXY.*socks5://user:\*\*\*@proxy.example.org:1080"
    ) as info:
        Route("environment", None).proxies_for(
            "https://services.cancerimagingarchive.net/nbia-api/services/"
        )
    assert "secret" not in str(info.value)
    assert redacted("http://proxy:3128") == "http://proxy:3128"
    monkeypatch.delenv("HTTPS_PROXY")
    assert (
        Route("environment", None).proxies_for("https://services.cancerimagingarchive.net/") == {}
    )
    monkeypatch.setenv("HTTPS_PROXY", "proxy.example.org:3128")
    assert Route("environment", None).proxies_for("https://x.org/") == {
        "https": "http://proxy.example.org:3128"
    }
