"""The client address comes from the configured number of trusted proxy hops."""

from __future__ import annotations

from types import SimpleNamespace

from shared.bigeye.api import client_ip
from shared.settings import override_settings


def _request(forwarded: str | None) -> SimpleNamespace:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    return SimpleNamespace(headers=headers, remote_addr="10.0.0.9")


def test_one_trusted_hop_takes_the_last_address() -> None:
    assert client_ip(_request("1.1.1.1, 2.2.2.2, 3.3.3.3")) == "3.3.3.3"
    assert client_ip(_request(None)) == "10.0.0.9"


def test_two_trusted_hops_skip_the_inner_proxy() -> None:
    with override_settings(trusted_proxy_hops=2):
        assert client_ip(_request("6.6.6.6, 1.1.1.1, 35.191.0.1")) == "1.1.1.1"
        assert client_ip(_request("1.1.1.1")) == "1.1.1.1"


def test_zero_hops_ignore_the_header() -> None:
    with override_settings(trusted_proxy_hops=0):
        assert client_ip(_request("6.6.6.6")) == "10.0.0.9"
