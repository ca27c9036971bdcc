#!/usr/bin/env python3
"""How sesame's cost grows with data (issue 14): the same requests at 10,000
and at 1,000,000 users, on SQLite and on PostgreSQL.

    python3 bench/scale.py                       # 10k and 1M, both backends
    python3 bench/scale.py --sizes 10000 --backends sqlite
    python3 bench/scale.py --help

For each backend and size, on a fresh database:

1. starts sesame (release build; rate limits off, everything else at its
   defaults, a local SMTP sink) and signs up 64 users through the API, the
   "bench users"; the first is made an administrator (role set in the
   database);
2. stops it and seeds the other users straight into the database, not
   through HTTP: every row has the argon2 hash sesame made for the bench
   users (so the default argon2 parameters, and the same password), an id
   like a UUID v7 (time first), a unique email `NAME.I@DOMAIN` (64 names of
   4 letters, 8 domains) and referral code; each bench user referred 20 of
   them, and one seeded user in ten was referred by an earlier one. SQLite:
   Python's sqlite3 in one transaction on the database sesame migrated (the
   search index's triggers fill it as the rows go in); PostgreSQL: one
   `COPY` through psql. Only users are seeded (no sessions, no codes);
3. reads the database's size: SQLite the file and its WAL after
   `wal_checkpoint(TRUNCATE)`, PostgreSQL `pg_database_size` after `VACUUM
   ANALYZE`; prints the query plan of an admin search (EXPLAIN QUERY PLAN /
   EXPLAIN ANALYZE);
4. starts sesame again, logs the bench users in for tokens, and drives each
   scenario with wrk (bench/load.py's way: sesame pinned to core 0, wrk to
   core 1; PostgreSQL is not pinned):

       me            GET /users/me, 64 sessions                       64 conns
       referred      GET /users/referred of a bench user (20 each)    16 conns
       search        GET /admin/users?search=.J@ (one match; J varies) 16 conns
       search-broad  GET /admin/users?search=NAME. (1/64 of users)     16 conns
       refresh       POST /users/token/refresh along token chains     64 conns
       login         POST /users/login, the 64 bench users            16 conns
       signup        POST /users/signup, a fresh address each         16 conns

5. at the largest size: times `sesame backup` (SQLite) or `pg_dump -Fc`
   (PostgreSQL, for reference), with sesame stopped.

PostgreSQL: as in bench/load.py (`load.Postgres`), a private
`scripts/postgres` cluster in the run's temporary directory (stopped and
deleted at the end) with `fsync`, `synchronous_commit` and
`full_page_writes` back on, so that commits cost what they would in
production, pinned to `--postgres-cores` (default: the load cores); or the
server of `--postgres-url` as it is (a superuser URL: the script creates and
drops its databases `sesame_scale_N`, and changes no setting there).

Prints one markdown table (backend × size × scenario: requests/s, p50, p99,
non-2xx) and the sizes and backup times.
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (bench/load.py: the SMTP sink, the server, wrk)

ROOT = load.ROOT
BINARY = load.BINARY
PASSWORD = load.PASSWORD
psql = load.psql
BENCH_USERS = 64
REFERRALS_EACH = 20
NAMES = [c + v + d + w for c, v, d, w in
         zip("bdfgklmnprstvzbdfgklmnprstvzbdfgklmnprstvzbdfgklmnprstvzbdfgklmn",
             "aeiou" * 13, "lmnrst" * 11, "aeiouy" * 11)]
NAMES = sorted(set(NAMES))
DOMAINS = [f"mail{d}.example.com" for d in range(8)]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000,1000000", help="numbers of users, comma-separated")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--duration", type=int, default=8, help="seconds per scenario")
    p.add_argument("--hash-duration", type=int, default=10, help="seconds for login and signup")
    p.add_argument("--server-cores", default="0")
    p.add_argument("--load-cores", default="1")
    p.add_argument("--postgres-url", help="a PostgreSQL superuser URL, used as it is (default: a private "
                   "scripts/postgres cluster, durable, on --postgres-cores)")
    p.add_argument("--postgres-cores", help="cores for the private cluster (default: --load-cores)")
    p.add_argument("--no-build", action="store_true", help="use target/release/sesame as it is")
    p.add_argument("--binary", help="another sesame binary (implies --no-build; for trying the script)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    args.rust_log = None
    return args


def uuid7(ms, rng):
    """A UUID v7: 48 bits of milliseconds, then random bits."""
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def stored_time(ms):
    """sesame's stored text of a time on SQLite (RFC 3339, microseconds, Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}000Z"


def seeded_rows(n, bench_ids, password_hash):
    """The seeded users: (id, email, hash, referral code, referred_by, created)."""
    rng = random.Random(14)
    start_ms = int(time.time() * 1000) - 10 * n - 86_400_000
    ids = []
    for i in range(n):
        ms = start_ms + 10 * i
        uid = uuid7(ms, rng)
        ids.append(uid)
        if i < len(bench_ids) * REFERRALS_EACH:
            referrer = bench_ids[i // REFERRALS_EACH]
        elif i > 0 and i % 10 == 0:
            referrer = ids[rng.randrange(i)]
        else:
            referrer = None
        email = f"{NAMES[i % len(NAMES)]}.{i}@{DOMAINS[i % len(DOMAINS)]}"
        yield uid, email, password_hash, f"s{i:07x}", referrer, stored_time(ms)


# --- the backends --------------------------------------------------------------

class Sqlite:
    name = "sqlite"

    def __init__(self, tmp, size):
        self.path = os.path.join(tmp, f"scale-{size}.db")
        self.url = f"sqlite://{self.path}"

    def sql(self, statement):
        with sqlite3.connect(self.path) as db:
            return db.execute(statement).fetchall()

    def seed(self, n, bench_ids, password_hash):
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO users (id, email, password_hash, active, disabled, role, referral_code, "
            "referred_by, created_at, updated_at) VALUES (?, ?, ?, 1, 0, 'user', ?, ?, ?, ?)",
            ((uid, email, h, code, ref, t, t) for uid, email, h, code, ref, t
             in seeded_rows(n, bench_ids, password_hash)))
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.close()

    def size(self):
        self.sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))

    def explain(self, term):
        # The two queries of src/store/admin.rs: the first page's ids (the
        # admin's view is then built for those 50 only) and the count, which
        # reads the FTS5 index alone for a search of printable lower-case
        # ASCII. Python's sqlite3, not sesame's bundled SQLite: the plan may differ.
        quoted = '"' + term.replace('"', '""') + '"'
        page = ("SELECT id FROM users WHERE rowid IN (SELECT rowid FROM users_email_search "
                "WHERE users_email_search MATCH ?) AND instr(email, ?) > 0 "
                "ORDER BY created_at, id LIMIT 50 OFFSET 0")
        count = "SELECT COUNT(*) FROM users_email_search WHERE users_email_search MATCH ?"
        lines = []
        with sqlite3.connect(self.path) as db:
            for what, sql, values in (("page", page, (quoted, term)), ("count", count, (quoted,))):
                plan = db.execute("EXPLAIN QUERY PLAN " + sql, values).fetchall()
                started = time.perf_counter()
                rows = db.execute(sql, values).fetchall()
                took = time.perf_counter() - started
                lines.append(f"{what}: {sql}")
                lines += [f"  {'  ' * (parent and 1)}{detail}" for _, parent, _, detail in plan]
                answer = rows[0][0] if what == "count" else len(rows)
                lines.append(f"  ({answer} {'counted' if what == 'count' else 'ids'} in "
                             f"{took * 1000:.1f} ms by Python's sqlite3)")
        return "\n".join(lines)

    def backup(self, tmp, server_env):
        target = os.path.join(tmp, "backup.db")
        started = time.perf_counter()
        subprocess.run([BINARY, "backup", target], env=server_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - started
        size = os.path.getsize(target)
        os.remove(target)
        return took, size

    def drop(self):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)


class Postgres:
    name = "postgres"

    def __init__(self, admin_url, size):
        self.admin_url = admin_url
        self.db = f"sesame_scale_{size}"
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.db}"
        psql(admin_url, f"DROP DATABASE IF EXISTS {self.db}")
        psql(admin_url, f"CREATE DATABASE {self.db}")

    def sql(self, statement):
        return psql(self.url, statement)

    def seed(self, n, bench_ids, password_hash):
        columns = ("id, email, password_hash, active, disabled, role, referral_code, "
                   "referred_by, created_at, updated_at")
        proc = subprocess.Popen(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c",
             f"COPY users ({columns}) FROM STDIN WITH (FORMAT csv)"],
            stdin=subprocess.PIPE, text=True)
        batch = []
        for uid, email, h, code, ref, t in seeded_rows(n, bench_ids, password_hash):
            batch.append(f'{uid},{email},"{h}",t,f,user,{code},{ref or ""},{t},{t}\n')
            if len(batch) == 10_000:
                proc.stdin.write("".join(batch))
                batch = []
        proc.stdin.write("".join(batch))
        proc.stdin.close()
        if proc.wait() != 0:
            sys.exit("COPY into users failed")
        psql(self.url, "VACUUM ANALYZE")

    def size(self):
        return int(psql(self.url, "SELECT pg_database_size(current_database())"))

    def explain(self, term):
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        literal = pattern.replace("'", "''")
        # The two queries of src/store/admin.rs: the first page's ids (the
        # admin's view is then built for those only) and the count.
        where = f"WHERE email LIKE '{literal}' ESCAPE '\\'"
        page = f"SELECT id FROM users {where} ORDER BY created_at, id LIMIT 50 OFFSET 0"
        count = f"SELECT COUNT(*) FROM users {where}"
        return "\n".join(f"{sql}\n" + psql(self.url, f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")
                         for sql in (page, count))

    def backup(self, tmp, server_env):
        target = os.path.join(tmp, "backup.pgdump")
        started = time.perf_counter()
        subprocess.run(["pg_dump", "-Fc", "-f", target, self.url], check=True)
        took = time.perf_counter() - started
        size = os.path.getsize(target)
        os.remove(target)
        return took, size

    def drop(self):
        psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.db}")


# --- the run ------------------------------------------------------------------

def run_one(args, tmp, backend, size, sink, results):
    label = f"{backend.name} {size:,}"
    print(f"== {label}", file=sys.stderr)
    server = load.Server(args, tmp, sink)
    server.env["SESAME_DATABASE_URL"] = backend.url
    r = {"backend": backend.name, "users": size, "scenarios": {}}

    print("bench users through the API ...", file=sys.stderr)
    server.start()
    emails = load.seed_users(server, sink, BENCH_USERS)
    server.stop()
    rows = backend.sql("SELECT id, password_hash FROM users ORDER BY created_at")
    if isinstance(rows, str):  # psql's text
        rows = [line.split("|", 1) for line in rows.splitlines()]
    bench_ids = [row[0] for row in rows]
    password_hash = rows[0][1]
    backend.sql(f"UPDATE users SET role = 'admin' WHERE id = '{bench_ids[0]}'")

    seeded = size - BENCH_USERS
    print(f"seeding {seeded:,} users ...", file=sys.stderr)
    started = time.perf_counter()
    backend.seed(seeded, bench_ids, password_hash)
    r["seed_seconds"] = time.perf_counter() - started
    r["db_bytes"] = backend.size()
    print(f"seeded in {r['seed_seconds']:.0f} s; database {r['db_bytes'] / 1e6:.1f} MB", file=sys.stderr)
    rare = f".{seeded // 2 + 7}@"
    broad = f"{NAMES[5]}."
    r["plan_search"] = backend.explain(rare)
    r["plan_search_broad"] = backend.explain(broad)
    print(r["plan_search"], file=sys.stderr)

    server.start()
    try:
        tokens = [load.log_in(server, e) for e in emails]
        access = [t[0] for t in tokens]
        refresh = [load.log_in(server, emails[i % len(emails)])[1] for i in range(2 * 64)]
        admin = access[0]
        rng = random.Random(6)
        files = {
            "access": access,
            "refresh": refresh,
            "emails": emails,
            "referred": [f"/users/referred?limit=50\t{t}" for t in access],
            "search": [f"/admin/users?search=.{rng.randrange(seeded)}%40\t{admin}" for _ in range(256)],
            "search-broad": [f"/admin/users?search={name}.\t{admin}" for name in NAMES],
        }
        paths = {}
        for name, lines in files.items():
            paths[name] = os.path.join(tmp, f"{name}.txt")
            with open(paths[name], "w") as f:
                f.write("\n".join(lines) + "\n")
        # One answer of each read, checked before it is timed.
        for name in ("referred", "search", "search-broad"):
            path, token = files[name][0].split("\t")
            status, body = server.call("GET", path.replace("%40", "@"), token=token)
            assert status == 200, (name, status, body)
            r[f"{name}_total"] = body.get("total")
        run_id = uuid.uuid4().hex[:8]
        plan = [
            ("me", "me.lua", 64, args.duration, (paths["access"], 1)),
            ("referred", "get.lua", 16, args.duration, (paths["referred"], 1)),
            ("search", "get.lua", 16, args.duration, (paths["search"], 1)),
            ("search-broad", "get.lua", 16, args.duration, (paths["search-broad"], 1)),
            ("refresh", "refresh.lua", 64, args.duration, (paths["refresh"], 1)),
            ("login", "login.lua", 16, args.hash_duration, (paths["emails"], 1, PASSWORD)),
            ("signup", "signup.lua", 16, args.hash_duration, (run_id, 1, PASSWORD)),
        ]
        load.wrk(args, server, "ping.lua", 64, 2, ())  # warm up
        for name, script, conns, seconds, script_args in plan:
            print(f"{label}: {name}, {conns} connections, {seconds} s ...", file=sys.stderr)
            load.wait_for_quiet(load.cores(args.server_cores), limit=0.2, timeout=20)
            w = load.wrk(args, server, script, conns, seconds, script_args)
            w["connections"] = conns
            r["scenarios"][name] = w
        r["idle_rss_kib"] = server.status_kib("VmRSS")
    finally:
        server.stop()
    if size == max(args.sizes):
        took, nbytes = backend.backup(tmp, server.env)
        r["backup_seconds"], r["backup_bytes"] = took, nbytes
    results["runs"].append(r)
    backend.drop()


def main():
    args = parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.binary:
        global BINARY
        BINARY = load.BINARY = os.path.abspath(args.binary)
        args.no_build = True
    backends = args.backends.split(",")
    os.sched_setaffinity(0, load.cores(args.load_cores))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "sesame"], cwd=ROOT, check=True)
    load.ensure_wrk()
    results = {"machine": load.machine(args), "runs": []}
    tmp = tempfile.mkdtemp(prefix="sesame-scale-")
    sink = load.SmtpSink()
    pg = None
    try:
        if "postgres" in backends:
            # The same server as bench/load.py's: --postgres-url as it is, or
            # a private cluster made durable again and pinned to the load cores.
            pg = load.Postgres(args, tmp)
            results["postgres"] = pg.version
        for name in backends:
            for size in args.sizes:
                backend = Sqlite(tmp, size) if name == "sqlite" else Postgres(pg.admin, size)
                run_one(args, tmp, backend, size, sink, results)
    finally:
        if pg:
            pg.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def report(results):
    m = results["machine"]
    print()
    print(f"sesame {m['commit']} on {m['cpu']} ({m['cpus']} CPUs, Linux {m['kernel']}), {m['date']}; "
          f"server on core {m['server_cores']}, {m['wrk']} on core {m['load_cores']}"
          + (f"; PostgreSQL {results['postgres']}" if "postgres" in results else ""))
    print()
    print("| backend | users | scenario | connections | requests/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results["runs"]:
        for name, w in r["scenarios"].items():
            print(f"| {r['backend']} | {r['users']:,} | {name} | {w['connections']} | {w['rps']:,.1f} | "
                  f"{w['p50_us'] / 1000:.2f} | {w['p99_us'] / 1000:.2f} | {w['non_2xx'] + w['socket_errors']} |")
    print()
    print("| backend | users | seeding | database size | bytes per user | matches: search / broad / referred | backup |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results["runs"]:
        backup = (f"{r['backup_seconds']:.1f} s ({r['backup_bytes'] / 1e6:.0f} MB"
                  f"{', pg_dump -Fc' if r['backend'] == 'postgres' else ''})" if "backup_seconds" in r else "")
        print(f"| {r['backend']} | {r['users']:,} | {r['seed_seconds']:.0f} s | {r['db_bytes'] / 1e6:.1f} MB | "
              f"{r['db_bytes'] / r['users']:.0f} | {r['search_total']} / {r['search-broad_total']} / "
              f"{r['referred_total']} | {backup} |")
    print()
    for r in results["runs"]:
        print(f"Plan of the admin search on {r['backend']} at {r['users']:,} users (one match):")
        print("```")
        print(r["plan_search"])
        print("```")
        print(f"and of the broad search (1/{len(NAMES)} of the users):")
        print("```")
        print(r["plan_search_broad"])
        print("```")


if __name__ == "__main__":
    main()
