#!/usr/bin/env python3
"""Tiny HTTP upstream for the edge test: answers every request with JSON describing what it got
(its own name, method, path, headers), so the test can see what nginx forwards and where.
Query parameters for the limit and log tests: delay=S holds the answer S seconds (at most 10);
close=1 drops the connection without answering (an upstream failure nginx logs)."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME, PORT = sys.argv[1], int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        query = parse_qs(urlsplit(self.path).query)
        if query.get("close"):
            self.close_connection = True
            self.connection.close()
            return
        if query.get("delay"):
            time.sleep(min(float(query["delay"][0]), 10))
        body = json.dumps({
            "backend": NAME,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.headers.get("X-Request-ID"):  # like api-rest: echo the request id
            self.send_header("X-Request-ID", self.headers["X-Request-ID"])
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_OPTIONS = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (NAME, fmt % args))


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
