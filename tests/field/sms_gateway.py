"""A real HTTP SMS gateway for the tests: it records every message posted to it (the body the sms uplink's
template makes) and answers 200, or 503 while ``failing`` is set."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sharpeye.config.governance import ResidentReports, Uplink
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import installed


class SmsGateway:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.failing = False
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if gateway.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                gateway.messages.append({**json.loads(body), "auth": self.headers.get("Authorization")})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmsGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def code_for(self, phone: str) -> str:
        """The code in the last message to ``phone``."""
        for message in reversed(self.messages):
            if phone in message["phones"]:
                found = re.search(r"\d{6}", message["text"])
                assert found, message
                return found.group(0)
        raise AssertionError(f"no message to {phone}: {self.messages}")


def site_with_sms(url: str, **limits: Any) -> SiteConfig:
    """The demo site whose residents' codes go through an SMS uplink at ``url`` (and no other event does)."""
    site = load_file(demo_path(), installed())
    uplink = Uplink(id="resident-codes", format="sms", url=url, to=["13800000000"], types=["none.none"])
    residents = ResidentReports(sms_uplink="resident-codes", **limits)
    governance = site.governance.model_copy(update={"uplinks": [*site.governance.uplinks, uplink],
                                                    "residents": residents})
    return site.model_copy(update={"governance": governance})
