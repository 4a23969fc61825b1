"""The encrypted ``config`` of ``POST /api/v1/job/reserve``.

Scheme (version 1), documented in docs/bigeye-api.md:
- key = HKDF-SHA256(ikm = CONFIG_ENCRYPTION_KEY, salt = empty,
  info = "bigeye-config-v1"), 32 bytes;
- AES-256-GCM with a random 12-byte nonce and associated data = the job_token (a config
  cannot be replayed under another job);
- ``config`` = hex(nonce || ciphertext || 16-byte tag);
- plaintext = UTF-8 JSON ``{"mode", "keyword_style", "prompt", "prompts_version"}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import get_settings

INFO = b"bigeye-config-v1"
NONCE_BYTES = 12


def config_key() -> bytes:
    """The 32-byte AES key derived from the configured secret."""
    settings = get_settings()
    secret = settings.config_encryption_key
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO)
    return hkdf.derive(secret.get_secret_value().encode("utf-8"))


def encrypt_config(plain: dict[str, Any], job_token: str) -> str:
    """hex(nonce || AES-256-GCM(key, nonce, JSON(plain), aad=job_token))."""
    nonce = os.urandom(NONCE_BYTES)
    data = json.dumps(plain, ensure_ascii=False, sort_keys=True).encode("utf-8")
    sealed = AESGCM(config_key()).encrypt(nonce, data, job_token.encode("utf-8"))
    return (nonce + sealed).hex()


def decrypt_config(hex_text: str, job_token: str) -> dict[str, Any]:
    """The inverse of ``encrypt_config`` (what the desktop client does)."""
    raw = bytes.fromhex(hex_text)
    plain = AESGCM(config_key()).decrypt(
        raw[:NONCE_BYTES], raw[NONCE_BYTES:], job_token.encode("utf-8")
    )
    value = json.loads(plain.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("config is not a JSON object")
    return value
