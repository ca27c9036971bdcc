#!/usr/bin/env node
// Runs a command against a live sesame:
//
//   node e2e/lib/with-stack.mjs NAME -- COMMAND [ARGS...]
//
// The command gets SESAME_URL (the server) and MAILBOX_URL (captured email,
// `GET $MAILBOX_URL/messages?to=ADDRESS&min=N`); everything is torn down
// afterwards and the command's exit code is passed on.

import { spawn } from "node:child_process";
import { once } from "node:events";

import { startStack } from "./stack.mjs";

const separator = process.argv.indexOf("--");
const name = process.argv[2];
const command = process.argv.slice(separator + 1);
if (separator !== 3 || command.length === 0) {
  console.error("usage: with-stack.mjs NAME -- COMMAND [ARGS...]");
  process.exit(2);
}

const stack = await startStack({ name });
let code = 1;
try {
  const child = spawn(command[0], command.slice(1), {
    stdio: "inherit",
    env: { ...process.env, SESAME_URL: stack.baseUrl, MAILBOX_URL: stack.mailboxUrl },
  });
  const [exitCode, signal] = await once(child, "exit");
  code = exitCode ?? (signal ? 1 : 0);
} finally {
  await stack.stop();
}
if (code !== 0) console.error(`(sesame's log for this run: ${stack.logPath})`);
process.exit(code);
