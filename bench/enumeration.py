#!/usr/bin/env python3
"""Does login timing reveal whether an email has an account?

Starts the release binary on a free port with a temporary database and the
default argon2 parameters, creates one active account, then sends N logins
with an unknown email and N with the right email and a wrong password,
interleaved, over one keep-alive connection each. Prints the medians and
their difference. Rate limits and lockout are turned off for the run (the
lockout's own write is part of what is measured).

    cargo build --release && python3 bench/enumeration.py [N]
"""
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "sesame")
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(conn, method, path, body):
    data = json.dumps(body)
    start = time.perf_counter()
    conn.request(method, path, data, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    return resp.status, payload, time.perf_counter() - start


def main():
    port = free_port()
    tmp = tempfile.mkdtemp()
    log_path = os.path.join(tmp, "sesame.log")
    env = dict(
        os.environ,
        SESAME_BIND=f"127.0.0.1:{port}",
        SESAME_DATABASE_URL=f"sqlite://{tmp}/sesame.db",
        SESAME_PUBLIC_URL=f"http://127.0.0.1:{port}",
        SESAME_IP_RATE_LIMIT="0",
        SESAME_LOGIN_MAX_FAILURES="1000000000",
        SESAME_LOG_FORMAT="pretty",
        NO_COLOR="1",
        RUST_LOG="info",
    )
    with open(log_path, "w") as log:
        server = subprocess.Popen([BINARY], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/health/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("server did not become ready")
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        email = "known@example.com"
        status, _, _ = call(conn, "POST", "/users/signup",
                            {"email": email, "password": PASSWORD, "confirmPassword": PASSWORD})
        assert status == 201, status
        code = None
        for _ in range(200):
            m = re.findall(r"verification code is: (\d{6})", open(log_path).read())
            if m:
                code = m[-1]
                break
            time.sleep(0.05)
        status, _, _ = call(conn, "PATCH", "/users/activate", {"email": email, "code": code})
        assert status == 200, status

        unknown, wrong = [], []
        bodies = set()
        for i in range(N):
            for target, sample in (("nobody@example.com", unknown), (email, wrong)):
                status, payload, seconds = call(conn, "POST", "/users/login",
                                                {"email": target, "password": "not the password"})
                assert status == 401, (status, payload)
                bodies.add(payload)
                sample.append(seconds * 1000)
        mu, mw = statistics.median(unknown), statistics.median(wrong)
        spread = statistics.quantiles(unknown + wrong, n=4)
        print(f"logins: {N} unknown-email, {N} wrong-password (interleaved)")
        print(f"median unknown email : {mu:8.3f} ms")
        print(f"median wrong password: {mw:8.3f} ms")
        print(f"difference           : {mw - mu:+8.3f} ms ({(mw - mu) / mu * 100:+.1f}%)")
        print(f"interquartile range  : {spread[2] - spread[0]:8.3f} ms")
        print(f"distinct bodies      : {len(bodies)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
