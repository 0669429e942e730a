#!/usr/bin/env python3
"""Cold init of the Lambda bootstraps, measured on loopback.

Plays the Lambda Runtime API (`/2018-06-01/runtime/invocation/next`, `.../{id}/response`,
`.../{id}/error`, `/2018-06-01/runtime/init/error`) on 127.0.0.1 for each bootstrap, starts the
bootstrap with the environment Lambda and the SAM template give it (`AWS_LAMBDA_RUNTIME_API`
pointing here), and times

- init: process start -> its first `GET .../invocation/next` (what Lambda bills as Init), and
- first invocation: the first event handed out -> its response.

Each function gets one event that its handler answers without AWS calls (no network here): the
api `GET /openapi.json` through API Gateway's HTTP API payload, ingest an event that fails
validation, matcher and dispatcher an unreadable task, the feed socket a `$connect` without a
token. The answer is checked (status code, batch failures) so a bootstrap that answers wrongly
fails the run. Runs each bootstrap `--runs` times and prints the median and the worst.

    python3 infra/lambda-init.py target/lambda      # directory holding <binary>/bootstrap

Standard library only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNTIME = "/2018-06-01/runtime"
INIT_TARGET_MS = 20.0


def sqs_event(body):
    return {
        "Records": [
            {
                "messageId": "m1",
                "receiptHandle": "r1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
        ]
    }


def http_api_event(method, path):
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.test", "accept": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "lambda-init",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "06/Dec/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


def status_is(code):
    def check(answer):
        return answer.get("statusCode") == code, f"statusCode {answer.get('statusCode')}"

    return check


def failures_are(ids):
    def check(answer):
        got = [f.get("itemIdentifier") for f in answer.get("batchItemFailures", [])]
        return got == ids, f"batchItemFailures {got}"

    return check


COMMON_ENV = {
    "HERALD_TABLE": "herald-init",
    "HERALD_WEBSOCKET_ENDPOINT": "https://ws.example.test/live",
    "HERALD_FEED_TOKEN_SECRET": "init-measurement-secret-of-enough-length",
    "HERALD_DISPATCH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dispatch",
    "HERALD_MATCH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/match",
    "HERALD_BUS_NAME": "herald-init",
    # Given directly, so the api does not read it from SSM (that is a network call).
    "HERALD_ADMIN_KEY": "init-admin-key",
}

FUNCTIONS = [
    ("herald-api", http_api_event("GET", "/openapi.json"), status_is(200)),
    ("herald-ingest", sqs_event('{"detail": {}}'), failures_are(["m1"])),
    ("herald-matcher", sqs_event("not a task"), failures_are([])),
    ("herald-dispatcher", sqs_event("not a task"), failures_are([])),
    (
        "herald-feed-socket",
        {
            "requestContext": {
                "routeKey": "$connect",
                "eventType": "CONNECT",
                "connectionId": "c1",
                "requestId": "req-1",
                "apiId": "ws",
                "stage": "live",
                "domainName": "ws.example.test",
                "connectedAt": 0,
                "requestTimeEpoch": 0,
                "messageDirection": "IN",
            },
            "headers": {},
            "isBase64Encoded": False,
        },
        status_is(401),
    ),
]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The bootstrap is killed while its second `next` is held: a reset is expected.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class Peer:
    """One bootstrap's Runtime API: hands out one event, then holds the next `next`."""

    def __init__(self, event):
        self.event = json.dumps(event).encode()
        self.lock = threading.Lock()
        self.first_next = None
        self.handed_out = None
        self.answered = None
        self.answer = None
        self.outcome = None  # "response", "error", "init error"
        self.done = threading.Event()
        self.release = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_GET(self):
                if self.path != f"{RUNTIME}/invocation/next":
                    return self.reply(404, b"{}")
                now = time.perf_counter()
                with peer.lock:
                    first = peer.first_next is None
                    if first:
                        peer.first_next = now
                if not first:
                    # The second `next`: the bootstrap is idle again. Hold it until the end.
                    peer.release.wait(30)
                    return self.reply(410, b"{}")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(peer.event)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:init",
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.end_headers()
                peer.handed_out = time.perf_counter()
                self.wfile.write(peer.event)
                self.wfile.flush()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                if self.path == f"{RUNTIME}/invocation/req-1/response":
                    peer.finish(now, "response", body)
                elif self.path == f"{RUNTIME}/invocation/req-1/error":
                    peer.finish(now, "error", body)
                elif self.path == f"{RUNTIME}/init/error":
                    peer.finish(now, "init error", body)
                else:
                    return self.reply(404, b"{}")
                self.reply(202, b'{"status":"OK"}')

            def reply(self, code, body):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def finish(self, now, outcome, body):
        self.answered, self.outcome, self.answer = now, outcome, body
        self.done.set()

    def address(self):
        host, port = self.server.server_address
        return f"{host}:{port}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def run_once(bootstrap, name, event, check):
    peer = Peer(event)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": peer.address(),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "init",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "RUST_LOG": "warn",
        **COMMON_ENV,
    }
    started = time.perf_counter()
    proc = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        finished = peer.done.wait(20)
        if not finished or peer.first_next is None:
            raise SystemExit(f"{name}: no answer within 20 s (exit code {proc.poll()})")
        if peer.outcome != "response":
            raise SystemExit(f"{name}: {peer.outcome}: {peer.answer[:500]!r}")
        answer = json.loads(peer.answer)
        ok, what = check(answer)
        if not ok:
            raise SystemExit(f"{name}: unexpected answer ({what}): {peer.answer[:300]!r}")
        init_ms = (peer.first_next - started) * 1000
        invoke_ms = (peer.answered - peer.handed_out) * 1000
        return init_ms, invoke_ms
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        peer.close()
        if peer.outcome != "response" and err:
            sys.stderr.write(err.decode(errors="replace")[-2000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="directory holding <binary>/bootstrap (target/lambda)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"cold init on loopback ({args.runs} runs each; init: start -> first `next`, "
          f"target < {INIT_TARGET_MS:.0f} ms)")
    spawn = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        spawn.append((time.perf_counter() - started) * 1000)
    print(f"(baseline: spawning and reaping /bin/true takes {statistics.median(spawn):.1f} ms here)")
    print(f"{'function':<20} {'init p50':>9} {'init max':>9} {'1st invoke p50':>15} "
          f"{'max':>7}  init target")
    for name, event, check in FUNCTIONS:
        bootstrap = os.path.join(args.dir, name, "bootstrap")
        runs = [run_once(bootstrap, name, event, check) for _ in range(args.runs)]
        inits = [r[0] for r in runs]
        invokes = [r[1] for r in runs]
        verdict = "met" if statistics.median(inits) < INIT_TARGET_MS else "MISSED"
        print(f"{name:<20} {statistics.median(inits):7.1f}ms {max(inits):7.1f}ms "
              f"{statistics.median(invokes):13.2f}ms {max(invokes):5.2f}ms  {verdict}")


if __name__ == "__main__":
    main()
