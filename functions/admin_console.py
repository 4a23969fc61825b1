"""admin-console: the operator console, server-rendered pages (docs/console.md).

A thin entry over ``shared.console.app``: sign-in by Firebase Auth ID token with the
``super_admin`` claim (a dev sign-in on the emulators only), every action through the same
services as ``credits-admin``.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.console.app import handle
from shared.entry import http_entry


@functions_framework.http
@http_entry("admin-console")
def admin_console(request: Any) -> Any:
    return handle(request)
