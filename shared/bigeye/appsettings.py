"""``system_config/app_settings``: the one configuration document of BigEye."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from shared.bigeye.models import APP_SETTINGS_ID, SYSTEM_CONFIG, Mode, parse_version
from shared.errors import Unavailable


@dataclass(frozen=True)
class AppSettings:
    """The fields of ``system_config/app_settings`` the credit API reads."""

    raw: dict[str, Any]

    def get(self, dotted: str, default: Any = None) -> Any:
        """A field by dot path (``credit_rates.istock_photo``)."""
        node: Any = self.raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def credit_rates(self) -> dict[str, Any]:
        rates = self.get("credit_rates", {})
        return dict(rates) if isinstance(rates, dict) else {}

    def rates_for(self, mode: Mode) -> tuple[int, int]:
        """(photo_rate, video_rate) of a mode: positive whole credits, or Unavailable."""
        found = []
        for kind in ("photo", "video"):
            value = self.credit_rates.get(f"{mode.rate_prefix}_{kind}")
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise Unavailable(f"credit rates for {mode.value} are not configured")
            found.append(value)
        return found[0], found[1]

    @property
    def exchange_rate(self) -> Any:
        return self.get("exchange_rate")

    @property
    def maintenance_mode(self) -> bool:
        return self.get("maintenance_mode") is True

    @property
    def maintenance_message(self) -> str:
        return str(self.get("maintenance_message") or "")

    @property
    def latest_version(self) -> str | None:
        value = self.get("app_latest_version")
        return value if isinstance(value, str) and _is_version(value) else None

    @property
    def force_update_below(self) -> str | None:
        value = self.get("force_update_below")
        return value if isinstance(value, str) and _is_version(value) else None

    def must_update(self, version: str) -> bool:
        """True when ``version`` is below ``force_update_below``."""
        floor = self.force_update_below
        return floor is not None and parse_version(version) < parse_version(floor)

    def update_available(self, version: str) -> bool:
        latest = self.latest_version
        return latest is not None and parse_version(version) < parse_version(latest)


def _is_version(text: str) -> bool:
    try:
        parse_version(text)
    except ValueError:
        return False
    return True


def app_settings_ref(db: firestore.Client) -> firestore.DocumentReference:
    return db.collection(SYSTEM_CONFIG).document(APP_SETTINGS_ID)


def load_app_settings(db: firestore.Client) -> AppSettings:
    """The current app settings, or Unavailable (503) when the document is missing."""
    snap = app_settings_ref(db).get()
    if not snap.exists:
        raise Unavailable("The service is not configured yet; try again later")
    return AppSettings(snap.to_dict() or {})
