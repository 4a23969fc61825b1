"""Log format: JSON where Cloud Functions runs, one readable line on stderr elsewhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = (
    "import logging; from shared.logs import get_logger, log;"
    "log(get_logger('t'), logging.INFO, 'usage metered', function='usage-events',"
    " request_id='gen-1', user_id='u 1', jwt_secret='s3cret', note=None)"
)


def run(**env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOG_FORMAT", "K_SERVICE", "FUNCTION_TARGET", "LOG_LEVEL")
    }
    return subprocess.run(
        [sys.executable, "-c", CODE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )


def test_text_locally_one_line_on_stderr_and_nothing_on_stdout() -> None:
    done = run()
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO +usage-events  usage metered  "
        r'request_id=gen-1 user_id="u 1" jwt_secret=\[redacted\]',
        lines[0],
    ), lines[0]


def test_json_where_cloud_functions_runs() -> None:
    done = run(K_SERVICE="usage-events")
    assert done.stderr == ""
    entry = json.loads(done.stdout.strip().splitlines()[-1])
    assert entry["severity"] == "INFO" and entry["message"] == "usage metered"
    assert entry["request_id"] == "gen-1" and entry["jwt_secret"] == "[redacted]"


def test_log_format_overrides_the_choice() -> None:
    assert json.loads(run(LOG_FORMAT="json").stdout.strip().splitlines()[-1])["user_id"] == "u 1"
    forced_text = run(LOG_FORMAT="text", K_SERVICE="usage-events")
    assert forced_text.stdout == "" and "usage metered" in forced_text.stderr


def test_text_under_functions_framework() -> None:
    """functions-framework sets FUNCTION_TARGET locally too: that is no sign of production."""
    done = run(FUNCTION_TARGET="usage_events")
    assert done.stdout == "" and "usage metered" in done.stderr
