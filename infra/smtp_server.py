"""A real SMTP server for Herald's tests: aiosmtpd on loopback, STARTTLS and AUTH required.

    smtp_server.py --dir DIR [--port N]

- Listens on 127.0.0.1 (port N, default 0: any free port).
- Generates at start, with the openssl command, a throwaway CA (DIR/ca.pem) and a server
  certificate it signs for the name `localhost` only (not for 127.0.0.1, so a client that checks
  the address instead of the name fails); nothing is downloaded.
- Refuses MAIL before STARTTLS (530) and before AUTH (530); AUTH PLAIN/LOGIN accepts only
  user `herald`, password `herald-test-password` (anything else: 535).
- Refuses recipients by their local part: `reject…@` with 550 (permanent), `busy…@` with 450
  (transient).
- Stores each accepted message as DIR/messages/<n>.json: envelope from/to, whether the session
  was under TLS, the authenticated user, and the raw data.
- Writes DIR/port once listening (the test command reads it), and stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import ssl
import subprocess
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USER = b"herald"
PASSWORD = b"herald-test-password"


def make_certificates(directory):
    """A CA and a leaf signed by it: rustls refuses a CA certificate used as the server's own."""
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    cert = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=Herald test SMTP CA", "-keyout", ca_key, "-out", ca,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", key, "-out", csr)
    with open(ext, "w", encoding="ascii") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", cert)
    return cert, key


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == USER and auth_data.password == PASSWORD)
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class Handler:
    def __init__(self, messages_dir):
        self.messages_dir = messages_dir
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if local.startswith("busy"):
            return "450 4.2.1 <%s>: mailbox busy, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "auth_user": auth.login.decode() if isinstance(auth, LoginPassword) else None,
            "received_at": time.time(),
            "data": envelope.original_content.decode("utf-8", errors="replace"),
        }
        name = "%d-%d" % (time.time_ns(), next(self.counter))
        tmp = os.path.join(self.messages_dir, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.messages_dir, name + ".json"))
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    directory = os.path.abspath(args.dir)
    messages = os.path.join(directory, "messages")
    os.makedirs(messages, exist_ok=True)

    cert, key = make_certificates(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    handler = Handler(messages)

    def factory():
        return SMTP(handler, hostname="localhost", tls_context=tls, require_starttls=True,
                    auth_required=True, auth_require_tls=True, authenticator=authenticator,
                    timeout=30)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host="127.0.0.1", port=args.port)
    port = server.sockets[0].getsockname()[1]
    with open(os.path.join(directory, "port.tmp"), "w", encoding="ascii") as f:
        f.write(str(port))
    os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
    print("SMTP test server on 127.0.0.1:%d, messages in %s" % (port, messages), flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except subprocess.CalledProcessError as e:
        sys.stderr.write("openssl failed: %s\n" % e.stderr.decode(errors="replace"))
        sys.exit(1)
