"""A local SMS gateway (Twilio-style form POST) that saves every SMS as a `.txt` file."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs


def serve(host: str, port: int, sms_dir: Path) -> None:
    """Accept `POST` of To, From and Body on any path until SIGTERM or SIGINT."""
    sms_dir.mkdir(parents=True, exist_ok=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            sid = "SM" + uuid.uuid4().hex
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{sid[:10]}.txt"
            text = "To: {}\nFrom: {}\n\n{}\n".format(
                form.get("To", ""), form.get("From", ""), form.get("Body", "")
            )
            (sms_dir / name).write_text(text)
            body = json.dumps({"sid": sid, "status": "queued"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"SMS sink on http://{host}:{port}/, saving SMS to {sms_dir}/", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
