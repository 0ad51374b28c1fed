"""A forward proxy and TLS certificates on loopback, for the download-through-a-proxy tests.

:class:`ConnectProxy` speaks only CONNECT (RFC 9110 9.3.6), as the proxies in front of compute
nodes do for HTTPS: it reads ``CONNECT host:port``, opens the tunnel, answers 200 and copies
bytes both ways, seeing nothing of the TLS inside. It records every target it was asked for and
reaches only the names in its ``hosts`` table (a name -> a loopback address), so a client that
is given such a name can reach the server through this proxy and no other way.
:func:`certificates` makes a CA and a server certificate signed by it (``cryptography``), for a
TLS server the client trusts through ``download.ca_bundle``.
"""

from __future__ import annotations

import datetime
import ipaddress
import selectors
import socket
import socketserver
import threading
from dataclasses import dataclass
from pathlib import Path


class _Tunnel(socketserver.StreamRequestHandler):
    proxy: ConnectProxy

    def handle(self) -> None:
        head = self.rfile.readline(65536).decode("latin-1").split()
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass  # the request's headers (Host, Proxy-Authorization): not needed here
        if len(head) != 3 or head[0] != "CONNECT":
            return self._answer(405, "Method Not Allowed")
        host, _, port = head[1].rpartition(":")
        with self.proxy.lock:
            self.proxy.tunnels.append((host, int(port)))
        address = self.proxy.hosts.get((host, int(port)))
        if address is None:
            return self._answer(502, "Bad Gateway")  # never the outside world
        with socket.create_connection(address, timeout=10) as upstream:
            self._answer(200, "Connection established")
            _pipe(self.connection, upstream)

    def _answer(self, status: int, reason: str) -> None:
        self.wfile.write(f"HTTP/1.1 {status} {reason}\r\n\r\n".encode())
        self.wfile.flush()


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until one side closes."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            for key, _ in selector.select(timeout=30):
                data = key.fileobj.recv(1 << 16)
                if not data:
                    return
                key.data.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up mid-tunnel is part of the tests


class ConnectProxy:
    """A CONNECT-only proxy on 127.0.0.1 (a free port); ``tunnels``: every (host, port) asked."""

    def __init__(self, hosts: dict[tuple[str, int], tuple[str, int]]):
        self.hosts = hosts
        self.tunnels: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), type("Tunnel", (_Tunnel,), {"proxy": self}))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ConnectProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate: what download.ca_bundle names
    cert: Path  # the server's certificate chain
    key: Path


def certificates(folder: Path, names: list[str]) -> Certificates:
    """A CA, and a server certificate for ``names`` (DNS names and 127.0.0.1) signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lidcseg test CA")])

    def build(subject, public_key, extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(ca_key, hashes.SHA256())

    ca = build(
        ca_name,
        ca_key.public_key(),
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
            (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
        ],
    )
    sans = [x509.DNSName(name) for name in names] + [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    ]
    leaf = build(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
        key.public_key(),
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName(sans), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        ],
    )
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
