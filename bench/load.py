#!/usr/bin/env python3
"""Load benchmark of sesame, with the targets of issue 6.

    python3 bench/load.py                 # build, run every scenario, print the tables
    python3 bench/load.py --help          # durations, cores, log level, JSON output

What it does, in one run on one machine:

1. builds the release binary and the `hash_cost` example (`--no-build` skips);
   installs `wrk` from Debian's packages when it is missing;
2. times one argon2id hash and verification with the configured parameters
   (`SESAME_ARGON2_*` or the defaults) on the server's core;
3. starts a local SMTP sink (in this process) and sesame on a temporary
   database with per-IP rate limits off (`SESAME_IP_RATE_LIMIT=0`) and every
   other setting at its default; seeds users through the API (signup, the
   emailed code, activate);
4. restarts sesame on that existing database three times and takes the
   median time from exec to the first `200` of `/health/ready`; reads the
   idle RSS; logs in the users again for tokens;
5. drives each scenario with wrk: the server on one core, wrk (and this
   script) on another, both pinned with `taskset`; `ping` and `me` take
   turns for `--rounds` rounds (3), and the median round is reported, since
   their ratio is a target and a single pair of runs is noisy;
6. prints a markdown table of the scenarios, the other measurements, and
   the targets met or missed.

Scenarios (each asks for 2xx answers only; any other answer is counted):

    ping      GET /ping                                   64 connections
    me        GET /users/me, tokens of 64 sessions         64 connections
    refresh   POST /users/token/refresh along token chains 64 connections
    login     POST /users/login, pool of users             16 connections
    login64   the same at 64 connections, for the peak RSS
    signup    POST /users/signup, a fresh address each     16 connections

The server logs at its default level (`info`) to a file in the temporary
directory; `--rust-log warn` measures the cost of the per-request log line.

`--database postgres` runs the same scenarios with sesame on PostgreSQL: a
private cluster of `scripts/postgres` (its state in the temporary directory;
stopped and deleted at the end) with `fsync`, `synchronous_commit` and
`full_page_writes` back on (an answered write is on disk, as on SQLite), and
`pg_stat_statements` loaded to count the statements and transactions each
scenario sent per request. PostgreSQL runs on the load generator's cores
(`--postgres-cores`), so sesame's core does sesame's work only. Or
`--postgres-url` names a superuser URL of a server to use (a database is
created there and dropped after).
"""
import argparse
import asyncio
import email as email_parser
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BINARY = os.path.join(ROOT, "target", "release", "sesame")
HASH_COST = os.path.join(ROOT, "target", "release", "examples", "hash_cost")
PASSWORD = "correct horse battery staple"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per fast scenario (ping, me, refresh)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of ping and me, taking turns")
    p.add_argument("--hash-duration", type=int, default=20, help="seconds per hashing scenario (login, signup)")
    p.add_argument("--users", type=int, default=64, help="users seeded for login and me")
    p.add_argument("--server-cores", default="0", help="cores for sesame (taskset list)")
    p.add_argument("--load-cores", default="1", help="cores for wrk and this script (taskset list)")
    p.add_argument("--rust-log", default=None, help="RUST_LOG for the server (default: unset, i.e. info)")
    p.add_argument("--scenarios", default="ping,me,refresh,login,login64,signup")
    p.add_argument("--no-build", action="store_true", help="use the binaries in target/release as they are")
    p.add_argument("--release-dir", help="run the sesame and examples/hash_cost of this directory "
                   "(another build, for a before/after comparison); implies --no-build")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (database, log)")
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                   help="the backend sesame runs on (default: sqlite)")
    p.add_argument("--postgres-url", help="with --database postgres: a superuser URL of a server "
                   "to use instead of a private scripts/postgres cluster")
    p.add_argument("--postgres-cores", default=None,
                   help="cores for the private PostgreSQL cluster (default: --load-cores)")
    p.add_argument("--perf", metavar="DIR", help="record a perf profile (cpu-clock) of the server "
                   "during each scenario into DIR/SCENARIO.perf.data")
    return p.parse_args()


def cores(spec):
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def core_ticks(which):
    """(busy, total) clock ticks of the given cores, from /proc/stat."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in which:
                ticks = [int(x) for x in fields[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    return busy, total


def process_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_for_quiet(which, limit=0.10, timeout=120):
    """Waits until the given cores are at most `limit` busy over half a
    second (other work on a shared machine skews every number); returns
    the last reading."""
    deadline = time.time() + timeout
    while True:
        b0, t0 = core_ticks(which)
        time.sleep(0.5)
        b1, t1 = core_ticks(which)
        busy = (b1 - b0) / max(t1 - t0, 1)
        if busy <= limit or time.time() > deadline:
            return busy


# --- the SMTP sink ------------------------------------------------------------

class SmtpSink:
    """Accepts every email on loopback and keeps each recipient's last
    verification code. Runs an asyncio loop in a thread of this process."""

    def __init__(self):
        self.codes = {}
        self.received = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _session(self, reader, writer):
        writer.write(b"220 sink ESMTP\r\n")
        rcpt = None
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250 sink\r\n")
                elif verb == b"RCPT":
                    rcpt = line.decode().split(":", 1)[1].strip().strip("<>").lower()
                    writer.write(b"250 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self._store(rcpt, data)
                    writer.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:  # MAIL, RSET, NOOP
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _store(self, rcpt, data):
        with self.lock:
            self.received += 1
        msg = email_parser.message_from_bytes(data[:-5])
        text = ""
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                text += part.get_payload(decode=True).decode("utf-8", "replace")
        m = re.search(r"verification code is: (\d{6})", text)
        if m and rcpt:
            with self.lock:
                self.codes[rcpt] = m.group(1)

    def code_for(self, address, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                code = self.codes.pop(address, None)
            if code:
                return code
            time.sleep(0.005)
        raise RuntimeError(f"no verification email for {address}")


# --- the server ---------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """The PostgreSQL sesame runs on with --database postgres: a database on
    the server of --postgres-url, or on a private scripts/postgres cluster
    made durable again (the script's test settings turn fsync off) and
    pinned to --postgres-cores. Counts statements with pg_stat_statements."""

    def __init__(self, args, tmp):
        self.script = os.path.join(ROOT, "scripts", "postgres")
        self.env = dict(os.environ, SESAME_PG_STATE=os.path.join(tmp, "postgres"))
        self.own = not args.postgres_url
        if self.own:
            self.env.pop("SESAME_TEST_POSTGRES_URL", None)
            subprocess.run([self.script, "start"], env=self.env, check=True, stdout=sys.stderr)
            admin = self._script_out("url")
            for setting, value in (("fsync", "on"), ("synchronous_commit", "on"),
                                   ("full_page_writes", "on"), ("wal_level", "replica"),
                                   ("shared_preload_libraries", "pg_stat_statements")):
                psql(admin, f"ALTER SYSTEM SET {setting} = '{value}'")
            subprocess.run([self.script, "halt"], env=self.env, check=True, stdout=sys.stderr)
            subprocess.run([self.script, "resume"], env=self.env, check=True, stdout=sys.stderr)
            self._pin(args.postgres_cores or args.load_cores)
        else:
            admin = args.postgres_url
        self.admin = admin
        self.db = f"sesame_load_{uuid.uuid4().hex[:8]}"
        psql(admin, f"CREATE DATABASE {self.db}")
        base, _, _ = admin.rpartition("/")
        self.url = f"{base}/{self.db}"
        self.version = psql(self.url, "SHOW server_version")
        self.counting = bool(psql(self.url, "SELECT 1 FROM pg_available_extensions "
                                            "WHERE name = 'pg_stat_statements'"))
        if self.counting:
            try:
                psql(self.url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                psql(self.url, "SELECT count(*) FROM pg_stat_statements")
            except SystemExit:  # not in shared_preload_libraries of that server
                self.counting = False

    def _script_out(self, command):
        return subprocess.run([self.script, command], env=self.env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def _pin(self, spec):
        """Pins the postmaster and the processes it started (its later
        children, the connections, inherit the postmaster's cores)."""
        state = self.env["SESAME_PG_STATE"]
        with open(os.path.join(state, "cluster")) as f:
            cluster = f.read().strip()
        with open(os.path.join(cluster, "data", "postmaster.pid")) as f:
            postmaster = f.readline().strip()
        children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True,
                                  text=True).stdout.split()
        for pid in [postmaster, *children]:
            subprocess.run(["taskset", "-a", "-p", "-c", spec, pid], check=False,
                           stdout=subprocess.DEVNULL)

    def reset_counts(self):
        if self.counting:
            psql(self.url, "SELECT pg_stat_statements_reset()")

    def counts(self):
        """(statements, explicit COMMITs) sesame sent since reset_counts,
        from pg_stat_statements (BEGIN, COMMIT and the advisory lock
        included; this script's own queries left out), or NaNs."""
        if not self.counting:
            return float("nan"), float("nan")
        mine = ("dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT LIKE '%pg_stat_statements%'")
        statements = int(psql(self.url, f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE {mine}"))
        commits = int(psql(self.url, f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                     f"WHERE {mine} AND upper(query) LIKE 'COMMIT%'"))
        return statements, commits

    def close(self):
        if self.own:
            subprocess.run([self.script, "stop"], env=self.env, check=False, stdout=sys.stderr)
        else:
            psql(self.admin, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


def psql(url, statement):
    out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url, "-c", statement],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed on {statement!r}: {out.stderr}")
    return out.stdout.strip()


class Server:
    def __init__(self, args, tmp, sink, database_url=None):
        self.port = free_port()
        self.log_path = os.path.join(tmp, "sesame.log")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SESAME_") or k.startswith("SESAME_ARGON2_")}
        self.env.pop("RUST_LOG", None)
        self.env.update(
            SESAME_BIND=f"127.0.0.1:{self.port}",
            SESAME_DATABASE_URL=database_url or f"sqlite://{tmp}/sesame.db",
            SESAME_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
            SESAME_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
            SESAME_IP_RATE_LIMIT="0",
            NO_COLOR="1",
        )
        if args.rust_log:
            self.env["RUST_LOG"] = args.rust_log
        self.cores = args.server_cores
        self.proc = None

    def start(self):
        """Starts sesame and waits until /health/ready answers 200; returns the seconds it took."""
        log = open(self.log_path, "a")
        started = time.perf_counter()
        self.proc = subprocess.Popen(["taskset", "-c", self.cores, BINARY], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health/ready")
                if c.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"sesame exited with {self.proc.returncode}; see {self.log_path}")
            if time.perf_counter() - started > 30:
                sys.exit("sesame did not become ready in 30 s")
            time.sleep(0.001)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def status_kib(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/{self.proc.pid}/status")

    def reset_peak_rss(self):
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def call(self, method, path, body=None, token=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        c.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = c.getresponse()
        data = resp.read()
        c.close()
        return resp.status, (json.loads(data) if data else None)


def seed_users(server, sink, n):
    emails = []
    for i in range(n):
        address = f"user{i}-{uuid.uuid4().hex[:8]}@bench.example.com"
        status, body = server.call("POST", "/users/signup",
                                   {"email": address, "password": PASSWORD, "confirmPassword": PASSWORD})
        assert status == 201, (status, body)
        status, body = server.call("PATCH", "/users/activate",
                                   {"email": address, "code": sink.code_for(address)})
        assert status == 200, (status, body)
        emails.append(address)
    return emails


def log_in(server, address):
    status, body = server.call("POST", "/users/login", {"email": address, "password": PASSWORD})
    assert status == 200, (status, body)
    return body["accessToken"], body["refreshToken"]


# --- wrk ----------------------------------------------------------------------

def ensure_wrk():
    if shutil.which("wrk"):
        return
    print("wrk is missing: installing it from Debian's packages", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=False,
                   stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        subprocess.run(sudo + ["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=True,
                       stdout=subprocess.DEVNULL)


def wrk(args, server, script, connections, seconds, script_args=()):
    cmd = ["taskset", "-c", args.load_cores, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
           "--timeout", "10s", "-s", os.path.join(BENCH, "wrk", script),
           f"http://127.0.0.1:{server.port}", "--", *map(str, script_args)]
    env = dict(os.environ, SESAME_BENCH_LUA=os.path.join(BENCH, "wrk"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    m = re.search(r"^SESAME_BENCH (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        sys.exit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    return r


# --- the run ------------------------------------------------------------------

def main():
    args = parse_args()
    if args.release_dir:
        global BINARY, HASH_COST
        BINARY = os.path.join(os.path.abspath(args.release_dir), "sesame")
        HASH_COST = os.path.join(os.path.abspath(args.release_dir), "examples", "hash_cost")
        args.no_build = True
    # A run stopped with SIGTERM (a timeout) still stops its server and cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    scenarios = args.scenarios.split(",")
    server_cores = cores(args.server_cores)
    os.sched_setaffinity(0, cores(args.load_cores))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "sesame",
                        "--example", "hash_cost"], cwd=ROOT, check=True)
    ensure_wrk()
    results = {"scenarios": {}, "machine": machine(args)}
    tmp = tempfile.mkdtemp(prefix="sesame-bench-")
    sink = SmtpSink()
    pg = Postgres(args, tmp) if args.database == "postgres" else None
    if pg:
        results["postgres"] = pg.version
    server = Server(args, tmp, sink, pg.url if pg else None)

    def time_hash():
        wait_for_quiet(server_cores)
        out = subprocess.run(["taskset", "-c", args.server_cores, HASH_COST, "21"],
                             env=server.env, capture_output=True, text=True, check=True)
        cost = json.loads(out.stdout)
        # The smaller of the two timings: the higher, stricter ceiling.
        if "hash" not in results or cost["verify_ms"] < results["hash"]["verify_ms"]:
            results["hash"] = cost

    print("timing one argon2id hash and verification ...", file=sys.stderr)
    time_hash()
    hash_concurrency = int(os.environ.get("SESAME_HASH_CONCURRENCY") or len(server_cores))
    results["hash_concurrency"] = hash_concurrency

    try:
        # Users and tokens come first, so that the restarted server has
        # hashed nothing before the hashing scenarios (see the RSS bound).
        print("seeding users through the API ...", file=sys.stderr)
        server.start()
        emails = seed_users(server, sink, args.users)
        access_tokens = [log_in(server, e)[0] for e in emails]
        refresh_tokens = [log_in(server, emails[i % len(emails)])[1] for i in range(2 * 64)]
        server.stop()

        startups = []
        for _ in range(3):
            startups.append(server.start())
            if len(startups) < 3:
                server.stop()
        results["startup_ms"] = statistics.median(startups) * 1000
        time.sleep(1)
        results["idle_rss_kib"] = server.status_kib("VmRSS")

        tokens_file = os.path.join(tmp, "access_tokens.txt")
        refresh_file = os.path.join(tmp, "refresh_tokens.txt")
        emails_file = os.path.join(tmp, "emails.txt")
        for path, lines in ((tokens_file, access_tokens), (refresh_file, refresh_tokens),
                            (emails_file, emails)):
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")

        run_id = uuid.uuid4().hex[:8]
        plan = {
            "ping": ("ping.lua", 64, args.duration, ()),
            "me": ("me.lua", 64, args.duration, (tokens_file, 1)),
            "refresh": ("refresh.lua", 64, args.duration, (refresh_file, 1)),
            "login": ("login.lua", 16, args.hash_duration, (emails_file, 1, PASSWORD)),
            "login64": ("login.lua", 64, args.hash_duration, (emails_file, 1, PASSWORD)),
            "signup": ("signup.lua", 16, args.hash_duration, (run_id, 1, PASSWORD)),
        }
        def measure(name, label):
            script, conns, seconds, script_args = plan[name]
            print(f"{label}: {conns} connections, {seconds} s ...", file=sys.stderr)
            if label == "ping":  # warm up the server and the page cache
                wrk(args, server, script, conns, 2, script_args)
            if name == "login":  # again, next to the scenarios it is the ceiling of
                time_hash()
                # The base of the RSS bound: warmed up by the scenarios
                # before (connections, SQLite page caches), no hash yet.
                results["base_rss_kib"] = server.status_kib("VmRSS")
                server.reset_peak_rss()
            mails_before = sink.received
            busy_before = wait_for_quiet(server_cores)
            if pg:
                pg.reset_counts()
            core_before = core_ticks(server_cores)
            server_before = process_ticks(server.proc.pid)
            perf = None
            if args.perf:
                os.makedirs(args.perf, exist_ok=True)
                perf = subprocess.Popen(
                    ["taskset", "-c", args.load_cores, "perf", "record", "-q", "-e", "cpu-clock",
                     "-F", "2000", "-g", "-p", str(server.proc.pid),
                     "-o", os.path.join(args.perf, f"{label}.perf.data")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = wrk(args, server, script, conns, seconds, script_args)
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
            core_busy = core_ticks(server_cores)[0] - core_before[0]
            server_cpu = process_ticks(server.proc.pid) - server_before
            elapsed_ticks = r["duration_us"] / 1e6 * os.sysconf("SC_CLK_TCK") * len(server_cores)
            r["server_cpu_share"] = server_cpu / elapsed_ticks
            r["others_share"] = max(core_busy - server_cpu, 0) / elapsed_ticks
            r["busy_before"] = busy_before
            r["connections"] = conns
            if pg:
                statements, commits = pg.counts()
                r["pg_statements_per_request"] = statements / max(r["requests"], 1)
                r["pg_commits_per_request"] = commits / max(r["requests"], 1)
            if name in ("login", "login64"):
                r["peak_rss_kib"] = server.status_kib("VmHWM")
            if name == "signup":
                deadline = time.time() + 30
                while sink.received - mails_before < r["requests"] - r["non_2xx"] and time.time() < deadline:
                    time.sleep(0.05)
                r["emails_delivered"] = sink.received - mails_before
            return r

        # ping and me take turns for --rounds rounds: their ratio is a
        # target, and one pair of 10-second runs on a shared VM moved it by
        # ten points. The round with the median requests/s is shown.
        paired = [n for n in ("ping", "me") if n in scenarios]
        rounds = {name: [] for name in paired}
        for i in range(args.rounds if paired else 0):
            for name in paired:
                label = name if i == 0 else f"{name}-{i + 1}"
                rounds[name].append(measure(name, label))
        for name in scenarios:
            if name in rounds:
                runs = sorted(rounds[name], key=lambda r: r["rps"])
                r = runs[(len(runs) - 1) // 2]
                r["rounds_rps"] = [run["rps"] for run in rounds[name]]
                results["scenarios"][name] = r
            else:
                results["scenarios"][name] = measure(name, name)
        if len(paired) == 2:
            results["me_ping_ratios"] = [m["rps"] / p["rps"] for m, p in zip(rounds["me"], rounds["ping"])]
        results["idle_rss_after_kib"] = server.status_kib("VmRSS")
    finally:
        server.stop()
        if pg:
            pg.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results["binary_bytes"] = os.path.getsize(BINARY)
    report(results, server_cores)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def machine(args):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].split(" Copyright")[0]
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
        "server_cores": args.server_cores, "load_cores": args.load_cores,
        "rust_log": args.rust_log or "unset (info)", "commit": rev, "wrk": wrk_version.strip(),
        "date": time.strftime("%Y-%m-%d"),
    }


def report(results, server_cores):
    m = results["machine"]
    s = results["scenarios"]
    cost = results["hash"]
    ceiling = len(server_cores) / (cost["verify_ms"] / 1000)
    print()
    print(f"sesame {m['commit']} on {m['cpu']} ({m['cpus']} CPUs, Linux {m['kernel']}), {m['date']}; "
          f"server on core {m['server_cores']}, {m['wrk']} on core {m['load_cores']}; "
          f"RUST_LOG {m['rust_log']}; "
          + (f"PostgreSQL {results['postgres']}" if "postgres" in results else "SQLite"))
    print()
    pg = "postgres" in results
    print("| scenario | connections | requests/s | 2xx/s | p50 ms | p99 ms | non-2xx | of which 503 BUSY | socket errors | server CPU | others on its core |"
          + (" PostgreSQL statements / COMMITs per request |" if pg else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if pg else ""))
    for name, r in s.items():
        ok_rps = r['rps'] * (1 - r['non_2xx'] / max(r['requests'], 1))
        print(f"| {name} | {r['connections']} | {r['rps']:,.1f} | {ok_rps:,.1f} | {r['p50_us'] / 1000:.2f} | "
              f"{r['p99_us'] / 1000:.2f} | {r['non_2xx']} | {r.get('busy_503', 0)} | {r['socket_errors']} | "
              f"{r['server_cpu_share']:.0%} | {r['others_share']:.0%} |"
              + (f" {r['pg_statements_per_request']:.2f} / {r['pg_commits_per_request']:.2f} |" if pg else ""))
    print()
    mem = cost["memory_kib"]
    limit = results["hash_concurrency"]
    idle = results["idle_rss_kib"]
    base = results.get("base_rss_kib", idle)
    # Hashing memory is limit × m; the rest of a login (64 connections'
    # buffers, request bodies, allocator rounding) gets 1 MiB.
    slack = 1024
    bound = base + limit * mem + slack
    print("| measurement | value |")
    print("|---|---:|")
    print(f"| argon2id m={mem} KiB, t={cost['iterations']}, p={cost['parallelism']}: one hash / one verify | "
          f"{cost['hash_ms']:.1f} ms / {cost['verify_ms']:.1f} ms |")
    print(f"| hash ceiling (cores for the server {len(server_cores)} ÷ one verify) | {ceiling:.1f} /s |")
    print(f"| start-up to ready, existing database (median of 3) | {results['startup_ms']:.0f} ms |")
    print(f"| idle RSS after start / after the run | {idle / 1024:.1f} MiB / "
          f"{results['idle_rss_after_kib'] / 1024:.1f} MiB |")
    if "login64" in s:
        print(f"| RSS before the first hash (base: after ping, me, refresh) | {base / 1024:.1f} MiB |")
        print(f"| peak RSS under login, 16 then 64 connections (bound: base + limit {limit} × "
              f"{mem / 1024:.0f} MiB + 1 MiB for requests in flight) | "
              f"{s['login64']['peak_rss_kib'] / 1024:.1f} MiB "
              f"(bound {bound / 1024:.1f} MiB) |")
    if "me_ping_ratios" in results:
        rounds = ", ".join(f"{p:,.0f} / {m:,.0f} = {m / p:.0%}" for p, m in
                           zip(s["ping"]["rounds_rps"], s["me"]["rounds_rps"]))
        print(f"| ping / me requests/s in each round | {rounds} |")
    if "signup" in s:
        print(f"| emails delivered to the SMTP sink during signup | {s['signup']['emails_delivered']} |")
    print(f"| binary size (target/release/sesame) | {results['binary_bytes'] / 1e6:.1f} MB |")
    print()
    print("| target | measured | met |")
    print("|---|---|:-:|")

    def row(what, measured, ok):
        print(f"| {what} | {measured} | {'yes' if ok else '**no**'} |")

    # Issue 6's targets on SQLite; issue 14's on PostgreSQL, where every
    # request is a round trip to another process.
    login_target, me_target = (0.85, 0.25) if pg else (0.9, 0.5)
    # Successful answers only: a 503 BUSY answered at once is no login.
    def ok_rps(r):
        return r["rps"] * (1 - r["non_2xx"] / max(r["requests"], 1))

    if "login" in s:
        share = ok_rps(s["login"]) / ceiling
        row(f"login ≥ {login_target:.0%} of the hash ceiling", f"{share:.0%}", share >= login_target)
    if "signup" in s:
        share = ok_rps(s["signup"]) / ceiling
        row("signup ≥ 85% of the hash ceiling", f"{share:.0%}", share >= 0.85)
    if "me_ping_ratios" in results:
        ratios = results["me_ping_ratios"]
        share = statistics.median(ratios)
        row(f"me ≥ {me_target:.0%} of ping requests/s (median of the rounds)", f"{share:.0%}",
            share >= me_target)
    if "me" in s:
        p99 = s["me"]["p99_us"] / 1000
        row("me p99 ≤ 5 ms at 64 connections", f"{p99:.2f} ms", p99 <= 5)
    # More logins than one second of hashing can serve wait for nobody: they
    # are answered 503 BUSY at once (issue 13), so 64 connections on one
    # core are shed load by design. Every other non-2xx answer is a failure.
    bad = sum(r["non_2xx"] - r.get("busy_503", 0) + r["socket_errors"] for r in s.values())
    row("no non-2xx answer other than 503 BUSY (nor socket error) in any scenario", str(bad), bad == 0)
    if "login64" in s:
        share = ok_rps(s["login64"]) / ceiling
        row("login at 64 connections: successful logins ≥ 85% of the hash ceiling (the rest shed as 503 BUSY)",
            f"{share:.0%}", share >= 0.85)
    row("idle RSS ≤ 20 MB", f"{idle / 1024:.1f} MiB", idle * 1024 <= 20e6)
    if "login64" in s:
        peak = s["login64"]["peak_rss_kib"]
        row("peak RSS under login (64 conns) ≤ base + limit × argon2 memory + 1 MiB",
            f"{peak / 1024:.1f} ≤ {bound / 1024:.1f} MiB", peak <= bound)
    row("start-up to ready ≤ 200 ms", f"{results['startup_ms']:.0f} ms", results["startup_ms"] <= 200)


if __name__ == "__main__":
    main()
