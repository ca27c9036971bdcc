#!/usr/bin/env python3
"""Does the time of an answer reveal whether an email has an account?

Starts the release binary on a free port with a temporary database (in the
system's temp dir, on disk: every commit is a real fsync) and the default
argon2 parameters, creates one active and one unverified account, then for
each endpoint that takes an address from a stranger (login with a wrong
password, forgot, resend, activate with a wrong code) sends N requests for
unknown addresses and N for the known one, interleaved, over one
keep-alive connection. Prints the medians and their difference. Rate
limits, the lockout, the code budget and the email throttle are turned off
for the run, so every request for the known address does its full work
(their own writes are part of what is measured).

    cargo build --release && python3 bench/enumeration.py [N]

(`SESAME_BIN=path` measures another build.)
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
BINARY = os.environ.get("SESAME_BIN", os.path.join(ROOT, "target", "release", "sesame"))
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


def signup(conn, email):
    status, _, _ = call(conn, "POST", "/users/signup",
                        {"email": email, "password": PASSWORD, "confirmPassword": PASSWORD})
    return status


def latest_code(log_path, count):
    """The newest verification code in the log once `count` were written."""
    for _ in range(400):
        codes = re.findall(r"verification code is: (\d{6})", open(log_path).read())
        if len(codes) >= count:
            return codes[-1]
        time.sleep(0.05)
    sys.exit("no verification code in the log")


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
        SESAME_LOGIN_MAX_FAILURES_ALL="1000000000",
        SESAME_CODE_MAX_FAILURES_PER_DAY="1000000000",
        SESAME_EMAIL_MIN_INTERVAL_SECS="0",
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
        known = "known@example.com"
        assert signup(conn, known) == 201
        code = latest_code(log_path, 1)
        status, _, _ = call(conn, "PATCH", "/users/activate", {"email": known, "code": code})
        assert status == 200, status
        pending = "pending@example.com"
        assert signup(conn, pending) == 201

        wrong_password = {"password": "not the password"}
        scenarios = [
            # (name, method, path, body for an address, expected status, known address)
            ("login", "POST", "/users/login", wrong_password, 401, known),
            ("forgot", "PATCH", "/users/forgot", {}, 200, known),
            ("resend", "POST", "/users/activate/resend", {}, 202, pending),
            ("activate", "PATCH", "/users/activate", {"code": "000000"}, 400, pending),
        ]
        print(f"{N} requests per address and scenario, unknown and known interleaved;")
        print("times in ms (median, and the interquartile range of both together)")
        print(f"{'scenario':10} {'unknown':>9} {'known':>9} {'difference':>11} {'IQR':>8} bodies")
        for name, method, path, extra, expected, address in scenarios:
            unknown, known_times, bodies = [], [], set()
            for i in range(N):
                for target, sample in ((f"nobody{i}@example.com", unknown), (address, known_times)):
                    status, payload, seconds = call(conn, method, path, dict(extra, email=target))
                    assert status == expected, (name, status, payload)
                    bodies.add(payload)
                    sample.append(seconds * 1000)
            mu, mk = statistics.median(unknown), statistics.median(known_times)
            q = statistics.quantiles(unknown + known_times, n=4)
            print(f"{name:10} {mu:9.3f} {mk:9.3f} {mk - mu:+11.3f} {q[2] - q[0]:8.3f} {len(bodies)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
