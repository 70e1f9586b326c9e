"""A local SMS gateway (Twilio-style form POST) that saves every SMS as a `.txt` file."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from boxoffice_devstack.json_http import JsonRequestHandler
from boxoffice_devstack.servers import wait_for_stop_signal


def serve(host: str, port: int, sms_dir: Path) -> None:
    """Accept `POST` of To, From and Body on any path until SIGTERM or SIGINT."""
    sms_dir.mkdir(parents=True, exist_ok=True)

    class Handler(JsonRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            sid = "SM" + uuid.uuid4().hex
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{sid[:10]}.txt"
            text = "To: {}\nFrom: {}\n\n{}\n".format(
                form.get("To", ""), form.get("From", ""), form.get("Body", "")
            )
            (sms_dir / name).write_text(text)
            self.reply_json(201, {"sid": sid, "status": "queued"})

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"SMS sink on http://{host}:{port}/, saving SMS to {sms_dir}/", flush=True)
    wait_for_stop_signal()
    server.shutdown()
