"""The rules step of the deploy, against a local stand-in of the Firebase Rules API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.emulators import free_port
from devstack.rules_release import ReleaseError, release_rules


class RulesApi:
    """Answers as the Rules API does: rulesets compile or 400; the release exists or 404."""

    def __init__(self, release_exists: bool) -> None:
        self.release_exists = release_exists
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        body = json.loads(request.get_data() or b"null")
        self.calls.append((request.method, request.path, body))
        if request.path.endswith("/rulesets"):
            content = body["source"]["files"][0]["content"]
            if "rules_version" not in content:
                answer = Response('{"error": "Syntax error"}', status=400)
            else:
                answer = Response(json.dumps({"name": "projects/p/rulesets/r1"}))
        elif request.method == "PATCH" and not self.release_exists:
            answer = Response('{"error": "not found"}', status=404)
        else:
            self.release_exists = True
            answer = Response("{}")
        return answer(environ, start_response)


@pytest.fixture(params=[True, False], ids=["release-exists", "first-release"])
def api(request: pytest.FixtureRequest) -> Iterator[tuple[RulesApi, str]]:
    app = RulesApi(release_exists=request.param)
    port = free_port()
    server = make_server("127.0.0.1", port, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{port}/v1"
    server.shutdown()


def test_release_creates_a_ruleset_and_points_firestore_at_it(api: tuple[RulesApi, str]) -> None:
    app, url = api
    first = app.release_exists
    source = "rules_version = '2';\nservice cloud.firestore {}"
    assert release_rules(requests.Session(), "p", source, api=url) == "projects/p/rulesets/r1"
    method, path, body = app.calls[0]
    assert (method, path) == ("POST", "/v1/projects/p/rulesets")
    assert body == {"source": {"files": [{"name": "firestore.rules", "content": source}]}}
    release = {
        "name": "projects/p/releases/cloud.firestore",
        "rulesetName": "projects/p/rulesets/r1",
    }
    assert app.calls[1] == (
        "PATCH",
        "/v1/projects/p/releases/cloud.firestore",
        {"release": release},
    )
    if not first:
        assert app.calls[2] == ("POST", "/v1/projects/p/releases", release)
    assert app.release_exists


def test_a_rules_syntax_error_releases_nothing(api: tuple[RulesApi, str]) -> None:
    app, url = api
    with pytest.raises(ReleaseError, match="creating the ruleset failed: 400"):
        release_rules(requests.Session(), "p", "service cloud.firestore {", api=url)
    assert [c[0] for c in app.calls] == ["POST"]
