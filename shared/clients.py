"""Lazily built Google clients: made on first use, never at import, one per process."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shared.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def firestore_client() -> firestore.Client:
    """The Firestore client for the configured project (the emulator when its host is set)."""
    key = "firestore:" + get_settings().google_cloud_project
    client = _cache.get(key)
    if client is None:
        with _lock:
            client = _cache.get(key)
            if client is None:
                from google.cloud import firestore

                client = firestore.Client(project=get_settings().google_cloud_project)
                _cache[key] = client
    return client


def publisher_client() -> pubsub_v1.PublisherClient:
    """The Pub/Sub publisher (the emulator when ``PUBSUB_EMULATOR_HOST`` is set)."""
    client = _cache.get("publisher")
    if client is None:
        with _lock:
            client = _cache.get("publisher")
            if client is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]

                client = pubsub_v1.PublisherClient()
                _cache["publisher"] = client
    return client


def storage_client() -> Any:
    """The Cloud Storage client (the emulator, anonymously, when ``STORAGE_EMULATOR_HOST``
    is set)."""
    key = "storage:" + get_settings().google_cloud_project
    client = _cache.get(key)
    if client is None:
        with _lock:
            client = _cache.get(key)
            if client is None:
                from google.cloud import storage  # type: ignore[attr-defined]

                client = storage.Client(project=get_settings().google_cloud_project)
                _cache[key] = client
    return client


def reset_clients() -> None:
    """Forget every cached client (tests switching emulators or projects)."""
    with _lock:
        _cache.clear()
