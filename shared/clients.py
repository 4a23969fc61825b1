"""Lazily built Google clients: made on first use, never at import, one per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from shared.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore, pubsub_v1, storage  # type: ignore[attr-defined]

_C = TypeVar("_C")
_lock = threading.Lock()
_cache: dict[str, object] = {}


def _cached(key: str, make: Callable[[], _C]) -> _C:
    """The client cached under ``key``, made once by ``make`` (double-checked under a lock)."""
    client = _cache.get(key)
    if client is None:
        with _lock:
            client = _cache.get(key)
            if client is None:
                client = make()
                _cache[key] = client
    return client  # type: ignore[return-value]


def firestore_client() -> firestore.Client:
    """The Firestore client for the configured project (the emulator when its host is set)."""
    project = get_settings().google_cloud_project

    def make() -> firestore.Client:
        from google.cloud import firestore

        return firestore.Client(project=project)

    return _cached("firestore:" + project, make)


def publisher_client() -> pubsub_v1.PublisherClient:
    """The Pub/Sub publisher (the emulator when ``PUBSUB_EMULATOR_HOST`` is set)."""

    def make() -> pubsub_v1.PublisherClient:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        return pubsub_v1.PublisherClient()

    return _cached("publisher", make)


def storage_client() -> storage.Client:
    """The Cloud Storage client (the emulator, anonymously, when ``STORAGE_EMULATOR_HOST``
    is set)."""
    project = get_settings().google_cloud_project

    def make() -> storage.Client:
        from google.cloud import storage  # type: ignore[attr-defined]

        return storage.Client(project=project)

    return _cached("storage:" + project, make)


def reset_clients() -> None:
    """Forget every cached client (tests switching emulators or projects)."""
    with _lock:
        _cache.clear()
