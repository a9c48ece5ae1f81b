"""A C2SP tlog-witness on 127.0.0.1, as the spec has a witness behave (for tests).

It trusts one log key per origin, keeps the latest checkpoint it cosigned per origin, and
answers ``POST /add-checkpoint``: 404 unknown origin, 403 no trusted signature, 400 old
size above the checkpoint's, 409 (``text/x.tlog.size``) old size not the one it holds,
422 consistency proof that does not verify, 409 same size with another root, else 200
with its Ed25519 cosignature/v1 line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.errors import SentrailError
from sentrail.evidence.checkpoint import verify_checkpoint
from sentrail.evidence.merkle import verify_consistency
from sentrail.evidence.note import Verifier
from sentrail.evidence.witness import Cosigner, cosign, parse_add_checkpoint

NAME = "witness.test/w1"


@dataclass
class StubWitness:
    logs: dict[str, Verifier]  # origin -> the log key it trusts
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    latest: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # origin -> size, root
    requests: int = 0
    url: str = ""

    @property
    def cosigner(self) -> Cosigner:
        return Cosigner(NAME, self.key.public_key())

    def handle(self, body: bytes) -> tuple[int, str, bytes]:
        self.requests += 1
        try:
            old, proof, note = parse_add_checkpoint(body)
        except SentrailError:
            return 400, "text/plain", b"bad request\n"
        origin = note.split("\n", 1)[0]
        trusted = self.logs.get(origin)
        if trusted is None:
            return 404, "text/plain", b"unknown log\n"
        try:
            head = verify_checkpoint(note, [trusted])
        except SentrailError:
            return 403, "text/plain", b"no trusted signature\n"
        if old > head.size:
            return 400, "text/plain", b"old size above the checkpoint\n"
        held_size, held_root = self.latest.get(origin, (0, b""))
        if old != held_size:
            return 409, "text/x.tlog.size", f"{held_size}\n".encode()
        if old == head.size and held_size and held_root != head.root_hash:
            return 409, "text/plain", b"another root at this size\n"
        if old and old < head.size:
            if not verify_consistency(old, head.size, held_root, head.root_hash, proof):
                return 422, "text/plain", b"inconsistent\n"
        elif proof:
            return 422, "text/plain", b"a proof where none is due\n"
        self.latest[origin] = (head.size, head.root_hash)
        return 200, "text/plain", cosign(note, NAME, self.key, int(time.time())).encode()


@contextmanager
def serve_witness(witness: StubWitness) -> Iterator[StubWitness]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with lock:  # the check and the update are one step, as the spec requires
                status, ctype, answer = (
                    witness.handle(body)
                    if self.path == "/add-checkpoint"
                    else (404, "text/plain", b"")
                )
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    witness.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield witness
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
