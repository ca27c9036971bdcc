#!/usr/bin/env node
// Runs a command against a live sesame:
//
//   node e2e/lib/with-stack.mjs NAME [SESAME_X=VALUE ...] -- COMMAND [ARGS...]
//
// `SESAME_X=VALUE` settings are added to the server's environment. The
// command gets SESAME_URL (the server), MAILBOX_URL (captured email,
// `GET $MAILBOX_URL/messages?to=ADDRESS&min=N`), and SESAME_BIN with
// SESAME_DATABASE_URL (to run `sesame admin create` on the server's
// database); everything is torn down afterwards and the command's exit code
// is passed on.

import { spawn } from "node:child_process";
import { once } from "node:events";

import { startStack } from "./stack.mjs";

const separator = process.argv.indexOf("--");
const name = process.argv[2];
const settings = process.argv.slice(3, separator);
const command = process.argv.slice(separator + 1);
const setting = /^(SESAME_[A-Z0-9_]+)=(.*)$/s;
if (separator < 3 || command.length === 0 || !settings.every((s) => setting.test(s))) {
  console.error("usage: with-stack.mjs NAME [SESAME_X=VALUE ...] -- COMMAND [ARGS...]");
  process.exit(2);
}
const env = Object.fromEntries(settings.map((s) => s.match(setting).slice(1)));

const stack = await startStack({ name, env });
let code = 1;
try {
  const child = spawn(command[0], command.slice(1), {
    stdio: "inherit",
    env: {
      ...process.env,
      SESAME_URL: stack.baseUrl,
      MAILBOX_URL: stack.mailboxUrl,
      SESAME_BIN: stack.binary,
      SESAME_DATABASE_URL: stack.databaseUrl,
    },
  });
  const [exitCode, signal] = await once(child, "exit");
  code = exitCode ?? (signal ? 1 : 0);
} finally {
  await stack.stop();
}
if (code !== 0) console.error(`(sesame's log for this run: ${stack.logPath})`);
process.exit(code);
