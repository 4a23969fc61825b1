"""Fixtures of the console tests: Firebase-style ID tokens signed by a local certificate."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.conftest import PROJECT


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


class TokenIssuer:
    """Signs ID tokens as Firebase Auth does (RS256, ``kid`` of a published certificate)."""

    def __init__(self) -> None:
        self.key, cert = _key_and_cert()
        self.other_key, _ = _key_and_cert()
        self.certs = {"kid-1": cert}
        self.url = ""

    def token(self, *, admin: bool = True, forged: bool = False, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": f"https://securetoken.google.com/{PROJECT}",
            "aud": PROJECT,
            "sub": "op-uid-1",
            "email": "ops@example.com",
            "iat": now,
            "exp": now + 600,
            "auth_time": now,
            **({"super_admin": True} if admin else {}),
            **claims,
        }
        key = self.other_key if forged else self.key
        return jwt.encode(body, key, "RS256", headers={"kid": "kid-1"})


@pytest.fixture(scope="session")
def issuer() -> Iterator[TokenIssuer]:
    """A token issuer whose certificates are served over HTTP, as Google publishes them."""
    found = TokenIssuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(found.certs).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found.url = f"http://127.0.0.1:{server.server_address[1]}/certs"
    yield found
    server.shutdown()


@pytest.fixture
def certs(issuer: TokenIssuer) -> Iterator[TokenIssuer]:
    """The console verifies ID tokens against the local issuer's certificates."""
    from shared.settings import override_settings

    with override_settings(console_firebase_certs_url=issuer.url):
        yield issuer
