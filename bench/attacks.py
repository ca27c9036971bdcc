#!/usr/bin/env python3
"""The attacks of the second security review, tried against one binary.

Each attack starts the given sesame binary afresh on a free port with a
temporary database (default argon2 cost) and a local SMTP sink, performs
the attack the way the review did, and prints one line of what happened.
Run it against an old and a new build to get a before/after table:

    cargo build --release
    python3 bench/attacks.py target/release/sesame [attack ...]

Attacks: h2body slowloris ipv6 flood files takeover guesses conceal
metrics outbox plainsmtp flags lockout name. Needs `curl` with HTTP/2 for
h2body. Numbers are from one machine at one moment: compare builds in one
run, not against numbers from elsewhere.
"""
import email
import http.client
import json
import os
import re
import socket
import socketserver
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse battery staple"


# ----------------------------------------------------------------- SMTP sink

class Sink:
    """An SMTP server that accepts every message and keeps it."""

    def __init__(self):
        self.messages = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 sink\r\n")
                rcpt, data = [], None
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    raw = line.decode(errors="replace").rstrip("\r\n")
                    cmd = raw.strip()
                    upper = cmd.upper()
                    if data is not None:
                        if raw == ".":
                            sink.messages.append((rcpt, "\n".join(data)))
                            rcpt, data = [], None
                            self.wfile.write(b"250 ok\r\n")
                        else:
                            data.append(raw[1:] if raw.startswith("..") else raw)
                        continue
                    if upper.startswith("EHLO") or upper.startswith("HELO"):
                        self.wfile.write(b"250 sink\r\n")
                    elif upper.startswith("RCPT"):
                        rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                        self.wfile.write(b"250 ok\r\n")
                    elif upper == "DATA":
                        data = []
                        self.wfile.write(b"354 go\r\n")
                    elif upper == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, address):
        """The plain-text bodies of the messages to `address`, decoded."""
        bodies = []
        for rcpt, raw in self.messages:
            if address not in rcpt:
                continue
            message = email.message_from_string(raw.replace("\n", "\r\n"))
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    bodies.append(part.get_payload(decode=True).decode(errors="replace"))
        return bodies

    def wait_for(self, address, pattern, count=1, timeout=20):
        """The last match of `pattern` in mail to `address`, once `count` exist."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = []
            for text in self.to(address):
                found += re.findall(pattern, text)
            if len(found) >= count:
                return found[-1]
            time.sleep(0.05)
        return None


# -------------------------------------------------------------------- server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, extra_env=None, args=()):
        self.sink = Sink()
        self.port = free_port()
        self.dir = tempfile.mkdtemp()
        self.db = os.path.join(self.dir, "sesame.db")
        self.log = os.path.join(self.dir, "sesame.log")
        env = dict(
            os.environ,
            SESAME_BIND=f"127.0.0.1:{self.port}",
            SESAME_DATABASE_URL=f"sqlite://{self.db}",
            SESAME_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
            SESAME_SMTP_URL=f"smtp://127.0.0.1:{self.sink.port}",
            SESAME_LOG_FORMAT="pretty",
            NO_COLOR="1",
        )
        env.update(extra_env or {})
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([binary, *args], env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode}: {open(self.log).read()[-300:]}")
            try:
                status, _ = self.call("GET", "/health/ready")
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("not ready")
            time.sleep(0.05)

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, method, path, body=None, token=None, headers=None, conn=None):
        c = conn or self.conn()
        h = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        c.request(method, path, None if body is None else json.dumps(body), h)
        resp = c.getresponse()
        payload = resp.read()
        if conn is None:
            c.close()
        try:
            return resp.status, json.loads(payload) if payload else None
        except ValueError:
            return resp.status, payload

    def signup(self, email, name=None, activate=True):
        body = {"email": email, "password": PASSWORD, "confirmPassword": PASSWORD}
        if name:
            body["name"] = name
        status, _ = self.call("POST", "/users/signup", body)
        assert status in (201, 202), status
        if activate:
            code = self.sink.wait_for(email, r"verification code is: \**(\d{6})")
            status, _ = self.call("PATCH", "/users/activate", {"email": email, "code": code})
            assert status == 200, status

    def login(self, email, password=PASSWORD, headers=None):
        return self.call("POST", "/users/login", {"email": email, "password": password},
                         headers=headers)

    def tokens(self, email, password=PASSWORD):
        status, body = self.login(email, password)
        assert status == 200, (status, body)
        return body["accessToken"], body["refreshToken"]

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.sink.server.shutdown()


def counts(statuses):
    out = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return " ".join(f"{n}x{s}" for s, n in sorted(out.items()))


# ------------------------------------------------------------------- attacks

def h2body(binary):
    srv = Server(binary)
    try:
        before = srv.peak_rss_mb()
        feed = subprocess.Popen(["head", "-c", str(300 * 1024 * 1024), "/dev/zero"],
                                stdout=subprocess.PIPE)
        curl = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "-X", "POST", "-T", "-",
             "-H", "content-type: application/json", "-o", "/dev/null",
             "-w", "%{http_code} %{size_upload}",
             f"http://127.0.0.1:{srv.port}/users/login"],
            stdin=feed.stdout, capture_output=True, text=True, timeout=300)
        feed.kill()
        code, sent = (curl.stdout.split() + ["?", "?"])[:2]
        return (f"300 MB over h2c: curl exit {curl.returncode}, status {code}, "
                f"{float(sent) / 1e6 if sent != '?' else 0:.1f} MB sent; "
                f"peak RSS {before:.0f} -> {srv.peak_rss_mb():.0f} MB")
    finally:
        srv.stop()


def slowloris(binary, n=1000, wait=15):
    srv = Server(binary)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"POST /users/login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        time.sleep(wait)
        open_ = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1024) == b"":
                    continue
                open_ += 0  # an answer without closing: counted below
            except BlockingIOError:
                open_ += 1
                continue
            except OSError:
                continue
        return f"{n} half-header connections: {open_} still open after {wait} s"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def ipv6(binary):
    srv = Server(binary, {"SESAME_TRUSTED_PROXIES": "127.0.0.1/32"})
    try:
        statuses = []
        for i in range(30):
            status, _ = srv.call("PATCH", "/users/forgot", {"email": f"x{i}@example.com"},
                                 headers={"X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"})
            statuses.append(status)
        return f"30 forgot from 30 addresses of one /64: {counts(statuses)}"
    finally:
        srv.stop()


def flood(binary, requests=400, threads=64):
    srv = Server(binary)
    try:
        srv.signup("attacker@example.com")
        srv.signup("bystander@example.com")
        access, _ = srv.tokens("attacker@example.com")
        quiet = []
        for _ in range(5):
            start = time.perf_counter()
            status, _ = srv.login("bystander@example.com")
            quiet.append((time.perf_counter() - start, status))
        statuses, lock = [], threading.Lock()
        left = [requests]

        def attacker():
            c = srv.conn(timeout=120)
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                try:
                    status, _ = srv.call("DELETE", "/users/me", {"password": "wrong"},
                                         token=access, conn=c)
                except OSError:
                    c = srv.conn(timeout=120)
                    status = "error"
                with lock:
                    statuses.append(status)

        workers = [threading.Thread(target=attacker) for _ in range(threads)]
        for w in workers:
            w.start()
        during = []
        while any(w.is_alive() for w in workers):
            start = time.perf_counter()
            status, _ = srv.login("bystander@example.com")
            during.append((time.perf_counter() - start, status))
        for w in workers:
            w.join()
        worst = max(t for t, _ in during) if during else 0
        mid = sorted(t for t, _ in during)[len(during) // 2] if during else 0
        return (f"{requests} wrong-password DELETE /users/me from {threads} threads: "
                f"{counts(statuses)}; bystander login quiet median "
                f"{sorted(t for t, _ in quiet)[2] * 1000:.0f} ms, during flood median "
                f"{mid * 1000:.0f} ms, worst {worst * 1000:.0f} ms "
                f"({counts(s for _, s in during)})")
    finally:
        srv.stop()


def files(binary):
    srv = Server(binary)
    try:
        srv.signup("someone@example.com", activate=False)
        modes = []
        for suffix in ("", "-wal", "-shm"):
            path = srv.db + suffix
            if os.path.exists(path):
                modes.append(f"sesame.db{suffix} {stat.S_IMODE(os.stat(path).st_mode):04o}")
        return "; ".join(modes)
    finally:
        srv.stop()


def takeover(binary):
    srv = Server(binary, {"SESAME_EMAIL_MIN_INTERVAL_SECS": "0", "SESAME_IP_RATE_LIMIT": "0"})
    owner, thief = "owner@example.com", "thief@example.com"
    try:
        srv.signup(owner)
        _, owner_refresh = srv.tokens(owner)
        status, body = srv.call("PATCH", "/users/forgot", {"email": owner})
        old_reset = srv.sink.wait_for(owner, r"reset token: ([A-Za-z0-9_-]{20,})")
        # The thief has the password: log in, move the address, confirm.
        access, _ = srv.tokens(owner)
        status, _ = srv.call("POST", "/users/me/email",
                             {"password": PASSWORD, "newEmail": thief}, token=access)
        code = srv.sink.wait_for(thief, r"confirmation code is: \**(\d{6})")
        status, _ = srv.call("PATCH", "/users/me/email", {"code": code}, token=access)
        moved = status
        owner_session, _ = srv.call("POST", "/users/token/refresh",
                                    {"refreshToken": owner_refresh})
        reset_status, _ = srv.call("PATCH", "/users/reset", {"token": old_reset,
                                                       "newPassword": NEW_PASSWORD,
                                                       "confirmPassword": NEW_PASSWORD})
        time.sleep(2)  # the notices of the move arrive first
        before_forgot = len(srv.sink.to(owner))
        srv.call("PATCH", "/users/forgot", {"email": owner})
        time.sleep(2)
        forgot_mails = len(srv.sink.to(owner)) - before_forgot
        revert = srv.sink.wait_for(owner, r"revert-email\?token=([A-Za-z0-9_-]{20,})",
                                   timeout=3)
        reverted = "no revert link"
        if revert:
            status, _ = srv.call("PATCH", "/users/email/revert", {"token": revert})
            back, _ = srv.login(owner)
            thief_login, _ = srv.login(thief)
            reverted = (f"revert {status}; thief's password at login {thief_login}; "
                        f"reset link to owner: "
                        f"{'yes' if srv.sink.wait_for(owner, r'reset token: ([A-Za-z0-9_-]{20,})', count=2, timeout=5) else 'no'}")
        return (f"email moved ({moved}); owner's other session refresh {owner_session}; "
                f"reset link sent before the move {reset_status}; "
                f"forgot on old address sends {forgot_mails} mail(s); {reverted}")
    finally:
        srv.stop()


def guesses(binary, rounds=12):
    srv = Server(binary, {"SESAME_EMAIL_MIN_INTERVAL_SECS": "0", "SESAME_IP_RATE_LIMIT": "0"})
    victim = "victim@example.com"
    try:
        srv.signup(victim, activate=False)
        for i in range(rounds):
            for _ in range(5):
                srv.call("PATCH", "/users/activate", {"email": victim, "code": "000000"})
            srv.call("POST", "/users/activate/resend", {"email": victim})
        time.sleep(2)
        codes = []
        for text in srv.sink.to(victim):
            codes += re.findall(r"verification code is: \**(\d{6})", text)
        status, _ = srv.call("PATCH", "/users/activate", {"email": victim, "code": codes[-1]})
        return (f"{rounds * 5} wrong codes across {rounds} resends: {len(codes)} codes mailed; "
                f"the last one then answers {status}")
    finally:
        srv.stop()


def conceal(binary):
    srv = Server(binary, {"SESAME_SIGNUP_CONCEALS_EXISTING": "true"})
    try:
        srv.signup("taken@example.com")
        out = []
        for email in ("taken@example.com", "free@example.com"):
            status, _ = srv.call("POST", "/users/signup", {
                "email": email, "password": PASSWORD, "confirmPassword": PASSWORD})
            login, body = srv.login(email)
            code = body.get("code") if isinstance(body, dict) else body
            out.append(f"{email.split('@')[0]}: signup {status}, login {login} {code}")
        return "; ".join(out)
    finally:
        srv.stop()


def metrics(binary):
    srv = Server(binary)
    try:
        status, _ = srv.call("GET", "/metrics")
        return f"GET /metrics on the API port: {status}"
    finally:
        srv.stop()


def outbox(binary):
    srv = Server(binary)
    try:
        srv.signup("someone@example.com")
        srv.call("PATCH", "/users/forgot", {"email": "someone@example.com"})
        token = srv.sink.wait_for("someone@example.com", r"reset token: ([A-Za-z0-9_-]{20,})")
        time.sleep(1)
        db = sqlite3.connect(f"file:{srv.db}?mode=ro", uri=True)
        rows = db.execute("SELECT text_body, html_body FROM outbox").fetchall()
        leaked = sum(1 for row in rows if any(token in (b or "") for b in row))
        return f"after delivery, {leaked} of {len(rows)} outbox rows still hold the reset token"
    finally:
        srv.stop()


def plainsmtp(binary):
    port = free_port()
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, SESAME_BIND=f"127.0.0.1:{port}",
               SESAME_DATABASE_URL=f"sqlite://{tmp}/s.db",
               SESAME_PUBLIC_URL=f"http://127.0.0.1:{port}",
               SESAME_SMTP_URL="smtp://user:hunter2@mail.example.com:587")
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=5)
        shown = "password printed" if "hunter2" in out else "password not printed"
        return f"smtp://user:pass@remote:587: exits {proc.returncode} ({shown})"
    except subprocess.TimeoutExpired:
        proc.kill()
        return "smtp://user:pass@remote:587: accepted, server running"


def flags(binary):
    proc = subprocess.run([binary, "check-config", "--jwt-secret", "x" * 40],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, SESAME_DATABASE_URL="sqlite::memory:"))
    first = (proc.stderr or proc.stdout).strip().splitlines()[:1]
    return f"--jwt-secret on the command line: exit {proc.returncode} {first}"


def lockout(binary):
    srv = Server(binary, {"SESAME_TRUSTED_PROXIES": "127.0.0.1/32"})
    try:
        srv.signup("owner@example.com")
        stranger = {"X-Forwarded-For": "203.0.113.7"}
        for _ in range(5):
            srv.login("owner@example.com", "wrong password", headers=stranger)
        owner, _ = srv.login("owner@example.com", headers={"X-Forwarded-For": "198.51.100.9"})
        again, _ = srv.login("owner@example.com", headers=stranger)
        return f"after 5 wrong from a stranger: owner elsewhere {owner}, stranger's network {again}"
    finally:
        srv.stop()


def name(binary):
    srv = Server(binary)
    try:
        words = "Mallory says click http://evil.example"
        srv.signup("stranger@example.com", name=words, activate=False)
        srv.sink.wait_for("stranger@example.com", r"verification code")
        inside = any("evil.example" in text for text in srv.sink.to("stranger@example.com"))
        return f"signup name in the verification email: {'yes' if inside else 'no'}"
    finally:
        srv.stop()


ATTACKS = {f.__name__: f for f in (h2body, slowloris, ipv6, flood, files, takeover, guesses,
                                   conceal, metrics, outbox, plainsmtp, flags, lockout, name)}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    for key in sys.argv[2:] or list(ATTACKS):
        try:
            result = ATTACKS[key](binary)
        except Exception as e:  # one attack failing must not hide the others
            result = f"could not run: {type(e).__name__}: {e}"
        print(f"{key:10} {result}", flush=True)


if __name__ == "__main__":
    main()
