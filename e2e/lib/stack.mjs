// A live sesame for tests from the outside: the debug binary on a free port
// with a fresh SQLite file, its email captured by an SMTP sink, and the
// captured mail served as JSON so every client (Node, Python, Postman) can
// read the codes and links a user would read.
//
//   const stack = await startStack({ name: "browser" });
//   stack.baseUrl      // http://127.0.0.1:PORT, also SESAME_PUBLIC_URL
//   stack.mailboxUrl   // GET {mailboxUrl}/messages?to=ADDRESS&min=1
//   stack.databaseUrl  // the server's database, for `sesame admin create`
//   await stack.stop();

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** How long to wait for the server and for mail (generous: CI has 2 cores). */
export const WAIT_MS = 30_000;

/** Captured messages, in arrival order, with waiters woken on arrival. */
class Mailbox {
  constructor() {
    this.messages = [];
    this.waiters = new Set();
  }

  add(message) {
    this.messages.push(message);
    for (const wake of this.waiters) wake();
  }

  to(address) {
    const wanted = address.toLowerCase();
    return this.messages.filter((m) => m.to.includes(wanted));
  }

  /** At least `min` messages to `address`, or what there is after `timeoutMs`. */
  async waitFor(address, min, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (this.to(address).length < min && Date.now() < deadline) {
      await new Promise((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
        this.waiters.add(wake);
      });
    }
    return this.to(address);
  }
}

/** Listens on loopback; `netServer` is where the address is (SMTPServer wraps one). */
async function listen(server, port = 0, netServer = server) {
  await new Promise((resolve, reject) => {
    netServer.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return netServer.address().port;
}

/** A port the OS just handed out (closed again, for sesame to bind). */
async function freePort() {
  const probe = net.createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function startSmtpSink(mailbox) {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          mailbox.add({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
            subject: parsed.subject ?? "",
            text: parsed.text ?? "",
            html: typeof parsed.html === "string" ? parsed.html : "",
            receivedAt: new Date().toISOString(),
          });
          callback();
        })
        .catch(callback);
    },
  });
  const port = await listen(server, 0, server.server);
  return { port, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** `GET /messages?to=ADDRESS&min=N`: waits up to WAIT_MS for N messages. */
async function startMailboxHttp(mailbox) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://mailbox");
    const to = url.searchParams.get("to");
    if (url.pathname !== "/messages" || !to) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "use GET /messages?to=ADDRESS[&min=N]" }));
      return;
    }
    const min = Number(url.searchParams.get("min") ?? "0");
    const messages = await mailbox.waitFor(to, min, WAIT_MS);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(messages));
  });
  const port = await listen(server);
  return { port, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function waitUntilReady(baseUrl, child) {
  const deadline = Date.now() + WAIT_MS;
  let exited = null;
  child.once("exit", (code) => (exited = code));
  while (Date.now() < deadline) {
    if (exited !== null) return false;
    try {
      const res = await fetch(`${baseUrl}/health/ready`);
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`sesame did not become ready at ${baseUrl} within ${WAIT_MS} ms`);
}

/**
 * Starts the SMTP sink, the mailbox endpoint and sesame.
 * `name` labels the log file: target/e2e/logs/sesame-NAME.log.
 */
export async function startStack({ name = "e2e", env = {} } = {}) {
  const binary = process.env.SESAME_BIN ?? path.join(repoRoot, "target/debug/sesame");
  const logDir = path.join(repoRoot, "target/e2e/logs");
  mkdirSync(logDir, { recursive: true });
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "sesame-e2e-"));
  const mailbox = new Mailbox();
  const smtp = await startSmtpSink(mailbox);
  const mailboxHttp = await startMailboxHttp(mailbox);
  const logPath = path.join(logDir, `sesame-${name}.log`);
  const databaseUrl = `sqlite://${path.join(dataDir, "sesame.db")}`;
  const log = createWriteStream(logPath);

  // The port is picked by the OS, then bound by sesame; another process may
  // grab it in between, so a failed start is retried on a new port.
  let child;
  let baseUrl;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    child = spawn(binary, [], {
      // A temp working directory, so no developer's `.env` is read.
      cwd: dataDir,
      env: {
        PATH: process.env.PATH,
        RUST_LOG: "info,sqlx=warn",
        SESAME_BIND: `127.0.0.1:${port}`,
        // Swagger UI sends requests to the spec's server URL: the real address.
        SESAME_PUBLIC_URL: baseUrl,
        SESAME_DATABASE_URL: databaseUrl,
        SESAME_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
        SESAME_ARGON2_MEMORY_KIB: "1024",
        SESAME_ARGON2_ITERATIONS: "1",
        SESAME_IP_RATE_LIMIT: "0",
        SESAME_OUTBOX_RETRY_BASE_MS: "100",
        SESAME_OUTBOX_RETRY_MAX_MS: "1000",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const spawned = await Promise.race([
      once(child, "spawn").then(() => true),
      once(child, "error").then(([err]) => {
        throw new Error(`cannot run ${binary} (${err.message}); build it with \`cargo build\``);
      }),
    ]);
    if (spawned && (await waitUntilReady(baseUrl, child))) break;
    if (attempt === 3) {
      throw new Error(`sesame exited during start-up three times; see ${logPath}`);
    }
  }

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    log.end();
    await Promise.all([smtp.close(), mailboxHttp.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  };

  return {
    baseUrl,
    mailboxUrl: `http://127.0.0.1:${mailboxHttp.port}`,
    databaseUrl,
    binary,
    mailbox,
    logPath,
    stop,
  };
}
