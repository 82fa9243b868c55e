"""A stand-in for the GitHub REST API on 127.0.0.1 (port 0: the kernel's
choice, printed first): GET /repos/O/R answers a default branch, POST
/repos/O/R/pulls answers 201; every request (method, path, Authorization,
body) is appended to LOG as a JSON line."""
import http.server
import json
import sys

LOG = sys.argv[1]


class H(http.server.BaseHTTPRequestHandler):
    def record(self, body):
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "auth": self.headers.get("Authorization"),
                                "body": body}) + "\n")

    def answer(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record(None)
        self.answer(200, {"default_branch": "main"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        self.record(body)
        self.answer(201, {"number": 1, "html_url": "http://github.test/pull/1"})

    def log_message(self, *a):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
