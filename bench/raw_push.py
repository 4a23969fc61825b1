"""The raw baseline of provider events through the push path: a CloudEvent function, served
by the bench's stack like every function, that does only what ``bench.providers`` calls the
raw work (read 5 documents, commit one batch of 7 writes, no preconditions).

The message is ``{"w": writer, "i": index}``: the writer picks the 5 documents, as one of
the 8 writers of the direct raw baseline does.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from shared.clients import firestore_client

MARKERS = "raw_push_markers"


@functions_framework.cloud_event
def raw_push(cloud_event: CloudEvent) -> None:
    body: dict[str, Any] = json.loads(base64.b64decode(cloud_event.data["message"]["data"]))
    w, i = int(body["w"]), int(body["i"])
    db = firestore_client()
    refs = [db.collection("raw_push_provider").document(f"{w}-{k}") for k in range(5)]
    list(db.get_all(refs))
    batch = db.batch()
    batch.create(db.collection(MARKERS).document(f"{w}-{i}"), {"i": i})
    for k, ref in enumerate(refs):
        batch.set(ref, {"i": i, "k": k, "tail": list(range(20))})
    batch.set(db.collection("raw_push_health").document(str(w)), {"i": i})
    batch.commit()
