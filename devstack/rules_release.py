"""Release ``firestore.rules`` to a project with the Firebase Rules API, without the Firebase CLI.

    python -m devstack.rules_release --project P [--rules firestore.rules]

The deploy runs this step (docs/runbook.md). It does what ``firebase deploy --only
firestore:rules`` does: create a ruleset from the file (the API compiles it and refuses a
syntax error with the line), then point the ``cloud.firestore`` release at it, creating
the release on the first deploy. Credentials are Application Default Credentials
(``gcloud auth application-default login`` or the deploying service account), with the
project as the quota project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API = "https://firebaserules.googleapis.com/v1"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class ReleaseError(RuntimeError):
    """The API refused a step; the message says which and why."""


def release_rules(session: Any, project: str, source: str, *, api: str = API) -> str:
    """Create a ruleset from ``source`` and release it for Firestore; returns its name.

    ``session`` is a ``requests``-style session that adds the credentials.
    """
    created = session.post(
        f"{api}/projects/{project}/rulesets",
        json={"source": {"files": [{"name": "firestore.rules", "content": source}]}},
        timeout=60,
    )
    if created.status_code != 200:
        raise ReleaseError(f"creating the ruleset failed: {created.status_code} {created.text}")
    ruleset = str(created.json()["name"])
    release = f"projects/{project}/releases/cloud.firestore"
    updated = session.patch(
        f"{api}/{release}",
        json={"release": {"name": release, "rulesetName": ruleset}},
        timeout=60,
    )
    if updated.status_code == 404:  # the project's first rules release
        updated = session.post(
            f"{api}/projects/{project}/releases",
            json={"name": release, "rulesetName": ruleset},
            timeout=60,
        )
    if updated.status_code != 200:
        raise ReleaseError(f"releasing {ruleset} failed: {updated.status_code} {updated.text}")
    return ruleset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.rules_release")
    parser.add_argument("--project", required=True)
    parser.add_argument("--rules", type=Path, default=ROOT / "firestore.rules")
    args = parser.parse_args(argv)
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, _ = google.auth.default(scopes=SCOPES, quota_project_id=args.project)
    except DefaultCredentialsError:
        print(
            "error: no Google credentials: run `gcloud auth application-default login`",
            file=sys.stderr,
        )
        return 2
    try:
        ruleset = release_rules(
            AuthorizedSession(credentials), args.project, args.rules.read_text()
        )
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"released {ruleset} as projects/{args.project}/releases/cloud.firestore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
