"""Home-care journal service (baseline portfolio): serves care records on a loopback port.

It loads the shared formatter /opt/shared/python/carefmt.py on every request, as the real
journal does with its plug-ins, so a change to the shared library shows at once.

  journald.py --root ROOT --port PORT --daemon   start in the background, pid in ROOT/run/journal.pid
  journald.py --root ROOT --selftest             render a record with the shared formatter
"""

import argparse
import http.server
import importlib.util
import json
import os
import socket
import sys
import time

DEMO_VISITS = [("08:00", "medication"), ("12:30", "lunch"), ("19:00", "evening care")]


def load_carefmt(root):
    path = os.path.join(root, "opt/shared/python/carefmt.py")
    spec = importlib.util.spec_from_file_location("carefmt", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def selftest(root):
    carefmt = load_carefmt(root)
    text = carefmt.format_record("demo client", DEMO_VISITS)
    if "Client: demo client" not in text:
        raise RuntimeError("carefmt rendered an unexpected record")
    return carefmt.CAREFMT_API, text


class Handler(http.server.BaseHTTPRequestHandler):
    root = "/"

    def send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            try:
                api, _ = selftest(self.root)
                self.send(200, {"status": "ok", "carefmt_api": api})
            except Exception as exc:
                self.send(500, {"status": "degraded", "error": "%s: %s" % (type(exc).__name__, exc)})
        elif self.path.startswith("/records/"):
            try:
                record = load_carefmt(self.root).format_record(self.path[9:], DEMO_VISITS)
                self.send(200, {"record": record})
            except Exception as exc:
                self.send(500, {"error": "%s: %s" % (type(exc).__name__, exc)})
        else:
            self.send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))


def serve(root, port):
    Handler.root = root
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


def daemonize(root, port):
    if os.fork() > 0:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return 0
            except OSError:
                time.sleep(0.05)
        sys.stderr.write("journal did not start listening on %d\n" % port)
        return 1
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    log = open(os.path.join(root, "var/log/journal.log"), "ab", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    with open(os.path.join(root, "run/journal.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    serve(root, port)
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
    parser.add_argument("--port", type=int)
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--selftest", action="store_true")
    args = parser.parse_args()
    if args.selftest:
        try:
            api, text = selftest(args.root)
        except Exception as exc:
            print("selftest FAILED: %s: %s" % (type(exc).__name__, exc))
            return 1
        print(text)
        print("selftest ok (carefmt API %s)" % api)
        return 0
    if args.port is None:
        parser.error("--port is required to serve")
    if args.daemon:
        return daemonize(args.root, args.port)
    serve(args.root, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
