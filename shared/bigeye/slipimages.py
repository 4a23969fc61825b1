"""Slip images in Cloud Storage: kept so an operator can review a slip, and re-sent to Slip2Go
when a slip left PENDING by an outage is verified again.

- One bucket (``SLIP_BUCKET``, default ``<project>-bigeye-slips``); objects are named by the
  image's content, ``slips/<sha256>.<ext>``, so the same image submitted twice is one object
  and storing it again is harmless (an upload of identical bytes).
- ``slips.image_url`` is the object's URL (``https://storage.googleapis.com/<bucket>/<name>``
  in production; the emulator's address locally). The bucket is private: uniform
  bucket-level access and public-access prevention (the deploy creates it so), no client SDK
  rule and no public reader. Only the functions' service account reads it, so the URL is a
  name, not a link anyone can open; the console shows an image by reading it server-side.
- A storage fault is ``Unavailable`` (503): a top-up stores the image before it writes
  anything, so nothing is written when the image cannot be kept.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from shared.clients import storage_client
from shared.errors import InvalidInput, NotFound, Unavailable
from shared.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined]

PREFIX = "slips/"
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


@dataclass(frozen=True)
class SlipImage:
    """A decoded slip: its bytes, declared content type and content digest."""

    content: bytes
    content_type: str
    sha256: str

    @property
    def object_name(self) -> str:
        return f"{PREFIX}{self.sha256}{_EXTENSIONS.get(self.content_type, '.bin')}"

    def data_url(self) -> str:
        encoded = base64.b64encode(self.content).decode("ascii")
        return f"data:{self.content_type};base64,{encoded}"


def decode(data_url: str) -> SlipImage:
    """The image of an already validated data URL (``parse_slip`` checked it)."""
    match = _DATA_URL.match(data_url)
    if match is None:
        raise InvalidInput("slip must be a data URL (data:image/jpeg;base64,...)")
    content = base64.b64decode(data_url[match.end() :], validate=True)
    return SlipImage(content, match["type"].lower(), hashlib.sha256(content).hexdigest())


def _storage_errors() -> tuple[type[BaseException], ...]:
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    return (gexc.GoogleAPIError, requests.RequestException, auth_exc.GoogleAuthError, OSError)


def _bucket() -> storage.Bucket:
    return storage_client().bucket(get_settings().slip_bucket_name())


def store(image: SlipImage) -> str:
    """Keep the image (private); returns its object URL for ``slips.image_url``."""
    try:
        blob = _bucket().blob(image.object_name)
        blob.upload_from_string(image.content, content_type=image.content_type)
        return str(blob.public_url)
    except _storage_errors() as exc:
        raise Unavailable(
            f"slip storage is unavailable right now ({type(exc).__name__}); nothing was "
            "credited, please submit the slip again later"
        ) from None


def object_of(image_url: str) -> str:
    """The object name of one of our ``image_url`` values (NotFound for anything else)."""
    if not isinstance(image_url, str):
        raise NotFound("the slip has no stored image")
    path = unquote(urlsplit(image_url).path).lstrip("/")
    bucket, _, name = path.partition("/")
    if bucket != get_settings().slip_bucket_name() or not name.startswith(PREFIX):
        raise NotFound("the slip has no stored image")
    return name


def load(image_url: str) -> SlipImage:
    """The stored image behind ``image_url`` (NotFound / Unavailable)."""
    name = object_of(image_url)
    try:
        blob = _bucket().blob(name)
        content = blob.download_as_bytes()
        content_type = blob.content_type or "image/jpeg"
    except _storage_errors() as exc:
        from google.api_core import exceptions as gexc

        if isinstance(exc, gexc.NotFound):
            raise NotFound("the slip's image is not in storage") from None
        raise Unavailable(f"slip storage is unavailable right now ({type(exc).__name__})") from None
    return SlipImage(content, content_type.lower(), hashlib.sha256(content).hexdigest())
