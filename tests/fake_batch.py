"""The OpenAI Batch API of tests/fake_openai_server.py: files, batches, faults and hold points.

Kept apart from the chat endpoint; FakeOpenAI owns one FakeBatchAPI and routes /v1/files and
/v1/batches requests to it. Batch lines are answered by FakeOpenAI.answer (the same model, usage
and prompt cache as the chat endpoint).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_IDS = itertools.count(1)


@dataclass
class Hold:
    """One held request: `arrived` is set when it comes in; it waits until `release()`."""

    stage: str
    after: bool
    nth: int
    seen: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class FakeBatchAPI:
    STAGES = ("upload", "create", "poll", "content")

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.submitted: Counter[str] = Counter()  # custom_id -> created batches carrying it
        self.requests: Counter[str] = Counter()  # stage -> requests received
        self.holds: list[Hold] = []
        self.batch_delay_s = 0.0
        self.batch_fail_first = 0
        self.batch_expire = 0
        self.batch_expire_done = 0
        self._failed_once: set[str] = set()

    # -- test controls ------------------------------------------------------------------------
    def hold(self, stage: str, *, after: bool = False, nth: int = 1) -> Hold:
        if stage not in self.STAGES:
            raise ValueError(f"stage must be one of {self.STAGES}")
        h = Hold(stage, after, nth)
        with self.fake.lock:
            self.holds.append(h)
        return h

    def release_all(self) -> None:
        with self.fake.lock:
            for h in self.holds:
                h.release()

    def _held(self, stage: str, after: bool) -> Hold | None:
        """Wait at this point if a hold asks for it; the hold, once released (else None)."""
        with self.fake.lock:
            if not after:
                self.requests[stage] += 1
            hold = None
            for h in self.holds:
                if h.stage == stage and h.after == after and not h.arrived.is_set():
                    h.seen += 1
                    if h.seen == h.nth:
                        hold = h
                    break
        if hold is None:
            return None
        hold.arrived.set()
        hold.released.wait()
        return hold

    # -- routing --------------------------------------------------------------------------------
    def route(self, handler: Any, verb: str, raw: bytes) -> bool:
        """Answer a /files or /batches request; False when the path is not one of them."""
        path = handler.path.split("?")[0].rstrip("/")
        m = re.search(r"/v1/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?$", path)
        if not m:
            return False
        kind, ident, action = m.groups()
        if self.fake.api_key is not None:
            given = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if given != self.fake.api_key:
                handler._error(401, "Incorrect API key provided.", "invalid_request_error", None)
                return True
        if kind == "files" and verb == "POST" and ident is None:
            self._upload(handler, raw)
        elif kind == "files" and verb == "GET" and ident and action == "content":
            self._content(handler, ident)
        elif kind == "files" and verb == "GET" and ident:
            self._file(handler, ident)
        elif kind == "batches" and verb == "POST" and ident is None:
            self._create(handler, json.loads(raw or b"{}"))
        elif kind == "batches" and verb == "GET" and ident:
            self._retrieve(handler, ident)
        elif kind == "batches" and verb == "GET":
            self._list(handler)
        elif kind == "batches" and verb == "POST" and action == "cancel":
            self._cancel(handler, ident)
        else:
            handler._error(404, f"unknown path {path}", "invalid_request_error", None)
        return True

    def _drop(self, handler: Any) -> None:
        handler.close_connection = True  # the client is gone (killed): answer nothing

    # -- files --------------------------------------------------------------------------------
    def _upload(self, handler: Any, raw: bytes) -> None:
        if self._held("upload", after=False):
            return self._drop(handler)
        ctype = handler.headers.get("Content-Type", "")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True))
        filename, data = fields.get("file", (None, b""))
        purpose = (fields.get("purpose", (None, b""))[1] or b"").decode()
        obj = self._store(data or b"", purpose, filename or "upload.jsonl")
        self._held("upload", after=True)
        handler._send(200, obj)

    def _store(self, data: bytes, purpose: str, filename: str) -> dict[str, Any]:
        fid = f"file-{next(_IDS)}"
        obj = {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self.fake.lock:
            self.files[fid] = {**obj, "data": data}
        return obj

    def _file(self, handler: Any, fid: str) -> None:
        f = self.files.get(fid)
        if f is None:
            return handler._error(404, f"No such File object: {fid}", "invalid_request_error", None)
        handler._send(200, {k: v for k, v in f.items() if k != "data"})

    def _content(self, handler: Any, fid: str) -> None:
        if self._held("content", after=False):
            return self._drop(handler)
        f = self.files.get(fid)
        if f is None:
            return handler._error(404, f"No such File object: {fid}", "invalid_request_error", None)
        handler._send(200, None, raw=f["data"])

    # -- batches ------------------------------------------------------------------------------
    def _create(self, handler: Any, body: dict[str, Any]) -> None:
        if self._held("create", after=False):
            return self._drop(handler)
        f = self.files.get(str(body.get("input_file_id")))
        if f is None:
            return handler._error(404, "input file not found", "invalid_request_error", None)
        lines = [json.loads(x) for x in f["data"].decode().splitlines() if x.strip()]
        ids = [str(x.get("custom_id")) for x in lines]
        if len(set(ids)) != len(ids):
            return handler._error(
                400, "custom_id must be unique in a batch", "invalid_request_error", None
            )
        bid = f"batch_{next(_IDS)}"
        batch = {
            "id": bid,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "errors": None,
            "input_file_id": f["id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata") or {},
        }
        with self.fake.lock:
            expire = self.batch_expire > 0
            if expire:
                self.batch_expire -= 1
            self.batches[bid] = {
                "obj": batch,
                "lines": lines,
                "due": time.monotonic() + self.batch_delay_s,
                "expire": expire,
            }
            self.submitted.update(ids)
        self._held("create", after=True)
        handler._send(200, batch)

    def _retrieve(self, handler: Any, bid: str) -> None:
        if self._held("poll", after=False):
            return self._drop(handler)
        b = self.batches.get(bid)
        if b is None:
            return handler._error(404, f"No such Batch: {bid}", "invalid_request_error", None)
        self._advance(b)
        handler._send(200, b["obj"])

    def _list(self, handler: Any) -> None:
        with self.fake.lock:
            data = [b["obj"] for b in reversed(self.batches.values())]
        handler._send(
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            },
        )

    def _cancel(self, handler: Any, bid: str) -> None:
        b = self.batches.get(bid)
        if b is None:
            return handler._error(404, f"No such Batch: {bid}", "invalid_request_error", None)
        with self.fake.lock:
            if b["obj"]["status"] in ("validating", "in_progress"):
                b["obj"]["status"] = "cancelled"
        handler._send(200, b["obj"])

    def _advance(self, b: dict[str, Any]) -> None:
        """validating -> in_progress -> completed (or expired) once the delay has passed."""
        obj = b["obj"]
        with self.fake.lock:
            if obj["status"] == "validating":
                obj["status"] = "in_progress"
            if obj["status"] != "in_progress" or time.monotonic() < b["due"]:
                return
        out, err = [], []
        for i, line in enumerate(b["lines"]):
            cid = str(line.get("custom_id"))
            if b["expire"] and i >= self.batch_expire_done:
                continue  # unfinished when the window closed: in neither file
            with self.fake.lock:
                fail = (
                    cid not in self._failed_once and len(self._failed_once) < self.batch_fail_first
                )
                if fail:
                    self._failed_once.add(cid)
            if fail:
                err.append(
                    {
                        "id": f"batch_req_{next(_IDS)}",
                        "custom_id": cid,
                        "response": {
                            "status_code": 500,
                            "request_id": f"req_{next(_IDS)}",
                            "body": {
                                "error": {
                                    "message": "The server had an error.",
                                    "type": "server_error",
                                }
                            },
                        },
                        "error": None,
                    }
                )
                continue
            out.append(
                {
                    "id": f"batch_req_{next(_IDS)}",
                    "custom_id": cid,
                    "response": {
                        "status_code": 200,
                        "request_id": f"req_{next(_IDS)}",
                        "body": self.fake.answer(line.get("body") or {}),
                    },
                    "error": None,
                }
            )
        with self.fake.lock:
            if obj["status"] != "in_progress":
                return
            if out:
                obj["output_file_id"] = self._jsonl(out)
            if err:
                obj["error_file_id"] = self._jsonl(err)
            obj["request_counts"] = {
                "total": len(b["lines"]),
                "completed": len(out),
                "failed": len(err),
            }
            obj["status"] = "expired" if b["expire"] else "completed"

    def _jsonl(self, rows: list[dict[str, Any]]) -> str:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        fid = f"file-{next(_IDS)}"
        self.files[fid] = {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": f"{fid}.jsonl",
            "purpose": "batch_output",
            "status": "processed",
            "data": data,
        }
        return fid
