"""TLS settings of the REST client, against ``autolog server`` behind a TLS
terminator the test runs (certificates made here: a CA, a server certificate
for 127.0.0.1, a client certificate)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from autolog.errors import StoreError
from autolog.tracking.stores.rest import RestStore
from tests.rest.proxy import pipe


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject, issuer, key, signer, *, ca=False, ip=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert, key=None) -> Path:
    data = cert.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(data)
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(_name("test CA"), _name("test CA"), ca_key, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(_name("127.0.0.1"), ca.subject, server_key, ca_key, ip="127.0.0.1")
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(_name("trainer"), ca.subject, client_key, ca_key)
    return {
        "ca": _write(root / "ca.pem", ca),
        "server": _write(root / "server.pem", server, server_key),
        "client": _write(root / "client.pem", client, client_key),
    }


class TlsTerminator:
    """HTTPS on a free port, piped to a plain-HTTP upstream port."""

    def __init__(self, upstream_port: int, pki: dict[str, Path], require_client_cert: bool):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki["server"], pki["server"].with_suffix(".key"))
        if require_client_cert:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(pki["ca"])
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except (OSError, ssl.SSLError):
            raw.close()
            return

        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def tls(our_server, pki):
    terminator = TlsTerminator(our_server.port, pki, require_client_cert=False)
    yield terminator
    terminator.close()


@pytest.fixture
def mutual_tls(our_server, pki):
    terminator = TlsTerminator(our_server.port, pki, require_client_cert=True)
    yield terminator
    terminator.close()


def test_an_unknown_ca_is_refused_at_once(tls, monkeypatch):
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(StoreError, match="TLS") as caught:
        RestStore(tls.url).get_experiment("0")
    assert "could not be reached" not in str(caught.value)  # not taken for a transient fault


@pytest.mark.parametrize("prefix", ["AUTOLOG", "MLFLOW"])
def test_ca_bundle(tls, pki, monkeypatch, prefix):
    monkeypatch.setenv(f"{prefix}_TRACKING_SERVER_CERT_PATH", str(pki["ca"]))
    assert RestStore(tls.url).get_experiment("0").name == "Default"


def test_insecure_tls(tls, monkeypatch):
    monkeypatch.setenv("AUTOLOG_TRACKING_INSECURE_TLS", "true")
    assert RestStore(tls.url).get_experiment("0").name == "Default"


def test_client_certificate(mutual_tls, pki, monkeypatch):
    monkeypatch.setenv("AUTOLOG_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("AUTOLOG_TRACKING_SERVER_CERT_PATH", str(pki["ca"]))
    with pytest.raises(StoreError):
        RestStore(mutual_tls.url).get_experiment("0")
    from autolog.tracking.stores.rest_http import forget_http_clients

    forget_http_clients()
    monkeypatch.setenv("AUTOLOG_TRACKING_CLIENT_CERT_PATH", str(pki["client"]))
    monkeypatch.setenv("AUTOLOG_TRACKING_CLIENT_KEY_PATH", str(pki["client"].with_suffix(".key")))
    assert RestStore(mutual_tls.url).get_experiment("0").name == "Default"
