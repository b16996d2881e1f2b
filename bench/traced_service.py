"""`token-exchange serve` with tracing on, exporting over OTLP/HTTP to a sink in this process.

The benchmark's "tracing on" configuration: every exchange makes its route, Appwrite and state
spans, and the batch exporter really serializes and POSTs them. The sink (a thread that reads
each request and answers 200) runs in the same process, so its small cost is counted against
tracing, never hidden.
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appwrite_token_exchange.cli import main


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def run() -> int:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.server_address[1]}"
    os.environ.setdefault("OTEL_SERVICE_NAME", "token-exchange-bench")
    return main(["serve"])


if __name__ == "__main__":
    raise SystemExit(run())
