"""TLS failures say why and what to do: a real TLS server on 127.0.0.1 (certificates made here with
the ``cryptography`` package) in front of the real Radicale."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fault_proxy import forward
from radicale_server import PASSWORD, USER, radicale, unique_name

from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import ConfigError
from syncd.mapping.context import MappingContext
from syncd.model import CrmUser

__all__ = ["radicale"]  # pytest fixture

CTX = MappingContext(owner=CrmUser("alice@example.com", "Alice", "Europe/Amsterdam"))
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(common: str = "syncd test CA") -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Issuer(_name(common), key, cert)


def server_cert(tmp: Path, issuer: Issuer | None, *, host: str = "127.0.0.1",
                expired: bool = False) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    after = NOW - timedelta(days=1) if expired else NOW + timedelta(days=30)
    alt: x509.GeneralName = x509.IPAddress(IPv4Address(host)) if host[0].isdigit() else x509.DNSName(host)
    builder = (x509.CertificateBuilder().subject_name(_name(host))
               .issuer_name(issuer.name if issuer else _name(host)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=60)).not_valid_after(after)
               .add_extension(x509.SubjectAlternativeName([alt]), critical=False))
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    cert_path, key_path = tmp / f"{id(cert)}.pem", tmp / f"{id(cert)}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsFront:
    """HTTPS on 127.0.0.1, each request passed on to Radicale over plain HTTP."""

    def __init__(self, upstream_port: int, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        upstream = upstream_port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, data = forward("127.0.0.1", upstream, self.command, self.path,
                                                list(self.headers.items()), body, timeout=10)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = super().get_request()
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def handle_error(self, request, client_address) -> None:
                pass  # a client refusing the certificate is the point of these tests

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issuer, Path]:
    issuer = make_ca()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(issuer.cert.public_bytes(serialization.Encoding.PEM))
    return issuer, path


@pytest.fixture
def serve(radicale: EmbeddedRadicale, tmp_path: Path) -> Iterator[object]:
    fronts: list[TlsFront] = []

    def start(issuer: Issuer | None, **cert: object) -> str:
        front = TlsFront(radicale.port, *server_cert(tmp_path, issuer, **cert))  # type: ignore[arg-type]
        fronts.append(front)
        name = unique_name("tls")
        radicale.make_calendar(USER, name)
        return f"https://127.0.0.1:{front.port}/{USER}/{name}/"

    yield start
    for front in fronts:
        front.stop()


def problems(url: str, verify: bool | str = True) -> list[str]:
    caldav = CalDavConnector(CalDavConfig(url, None, USER, PASSWORD, "basic", verify_tls=verify, timeout=5), CTX)
    try:
        return caldav.check()
    finally:
        caldav.close()


def test_an_unknown_issuer_names_the_reason_and_the_remedy(serve, ca) -> None:
    issuer, ca_path = ca
    url = serve(issuer)
    [problem] = problems(url)
    assert "TLS certificate check failed: the server's certificate is self-signed or from an issuer this " \
           "machine does not trust" in problem
    assert 'verify_tls = "/path/to/ca.pem"' in problem
    assert problems(url, str(ca_path)) == []  # the remedy works


def test_a_self_signed_certificate_not_in_the_bundle(serve, ca) -> None:
    _, ca_path = ca
    [problem] = problems(serve(None), str(ca_path))
    assert "self-signed or from an issuer" in problem and f"check that {ca_path} holds the CA" in problem


def test_an_expired_certificate(serve, ca) -> None:
    issuer, ca_path = ca
    [problem] = problems(serve(issuer, expired=True), str(ca_path))
    assert "TLS certificate check failed: the server's certificate has expired; renew" in problem


def test_a_certificate_for_another_host(serve, ca) -> None:
    issuer, ca_path = ca
    [problem] = problems(serve(issuer, host="calendar.example.org"), str(ca_path))
    assert "the server's certificate is for another host name" in problem


def test_a_ca_bundle_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"verify_tls = '.*missing.pem': no such CA bundle"):
        problems("https://127.0.0.1:1/alice/cal/", str(tmp_path / "missing.pem"))
