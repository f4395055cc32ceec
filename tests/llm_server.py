"""A local OpenAI-compatible chat-completions server for the LLM observer's tests.

It listens on 127.0.0.1 (a free port), answers each request with the next scripted reply and
keeps every request's raw body, so tests check what went over the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """A scripted reply: ``content`` as the assistant's message (status 200), or an HTTP error
    ``status``; ``delay_s`` waits first (longer than the client's time-out = a time-out)."""

    content: str = ""
    status: int = 200
    delay_s: float = 0.0


def good_answer(score: int = 4, verdict: str = "minor_edits") -> str:
    """A valid SegEx answer as the model would write it."""
    rubric = {
        "boundary_accuracy": True,
        "completeness": True,
        "false_positives": score >= 4,
        "anatomical_plausibility": True,
    }
    return json.dumps(
        {"score": score, "verdict": verdict, "rubric": rubric, "rationale": "Outline follows."}
    )


@dataclass
class FakeLlm:
    """The running server: its base URL, the replies still to give, the requests received."""

    url: str
    replies: list[Reply] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def wire(self) -> bytes:
        """Everything received so far (bodies and header values)."""
        heads = b"".join("".join(f"{k}:{v}\n" for k, v in h.items()).encode() for h in self.headers)
        return heads + b"".join(self.bodies)


def _handler(fake: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.bodies.append(body)
            fake.paths.append(self.path)
            fake.headers.append(dict(self.headers.items()))
            reply = fake.replies.pop(0) if fake.replies else Reply(status=503)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.status != 200:
                payload = json.dumps({"error": f"scripted {reply.status}"}).encode()
            else:
                payload = json.dumps(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": json.loads(body).get("model", ""),
                        "system_fingerprint": "",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.content},
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (time-out)

    return Handler


@contextmanager
def fake_llm() -> Iterator[FakeLlm]:
    """Run the server in a thread for the ``with`` block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeLlm(url="")))
    fake = FakeLlm(url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    server.RequestHandlerClass = _handler(fake)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
