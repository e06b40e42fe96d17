#!/usr/bin/env node
// A payment service in Node.js that takes part in sagas the Switchyard console shows and acts on.
// No dependencies (Node 20: global fetch, and NATS's text protocol over a plain socket), so it reads as a recipe:
//
//  1. It reports each step of its "node.payment" saga to Switchyard as JSON events (POST /api/v1/saga-events;
//     the JSON Schema is GET /api/v1/schema/saga-event.json). Every event has its own event_id: resend freely.
//  2. It listens for the commands an operator starts from the console ("compensate", "retry-step", ...), which
//     Switchyard publishes to the subject a compensation route names, and reports what it did as saga events.
//     A command's idempotency_key is its dedupe key: a command delivered twice is carried out once.
//
//   SWITCHYARD_URL=http://127.0.0.1:8000 SWITCHYARD_TOKEN=<manage.py create_api_token ...> \
//   NATS_URL=nats://127.0.0.1:4222 PAYMENTS_SUBJECT=payments.commands node payments.js [--payments N]
"use strict";
const net = require("node:net");
const crypto = require("node:crypto");

const SWITCHYARD = process.env.SWITCHYARD_URL || "http://127.0.0.1:8000";
const TOKEN = process.env.SWITCHYARD_TOKEN;
const SUBJECT = process.env.PAYMENTS_SUBJECT || "payments.commands";
const STREAM = process.env.PAYMENTS_STREAM || "PAYMENTS_COMMANDS";
const SAGA_TYPE = "node.payment";
const payments = Number((process.argv.find((a) => a.startsWith("--payments=")) || "--payments=1").split("=")[1]);

function log(what, fields) {
  console.log(JSON.stringify({ what, ...fields })); // one JSON object a line: easy to read and to test
}

// --- 1. Reporting saga events --------------------------------------------------------------------------------------
const seqs = new Map(); // saga id -> last seq sent: events are applied in seq order, whatever order they arrive in

async function report(sagaId, step, direction, status, extra = {}) {
  const seq = (seqs.get(sagaId) || 0) + 1;
  seqs.set(sagaId, seq);
  const event = {
    event_id: crypto.randomUUID(),
    saga_id: sagaId,
    saga_type: SAGA_TYPE,
    step,
    direction,
    status,
    seq,
    occurred_at: new Date().toISOString(),
    ...extra,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await fetch(`${SWITCHYARD}/api/v1/saga-events`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(event),
      });
      if (answer.status === 201 || answer.status === 200) return; // created, or a duplicate of one we sent
      if (answer.status < 500) throw new Error(`refused: ${answer.status} ${await answer.text()}`);
    } catch (error) {
      if (attempt >= 5 || String(error.message).startsWith("refused")) throw error;
    }
    await new Promise((r) => setTimeout(r, Math.random() * 200 * 2 ** attempt)); // backoff with jitter
  }
}

async function takePayment(order) {
  const sagaId = `pay-${crypto.randomUUID()}`;
  const correlation = `ORD-${order}`;
  await report(sagaId, "authorize", "execute", "succeeded", { correlation_id: correlation, context: { order } });
  // The card network refuses the capture: the saga fails and waits for an operator to compensate it.
  await report(sagaId, "capture", "execute", "failed", {
    error: { type: "CaptureDeclined", message: "card network refused the capture" },
  });
  log("saga failed", { saga_id: sagaId, correlation_id: correlation });
  return sagaId;
}

// --- 2. Receiving commands over NATS ----------------------------------------------------------------------------
const done = new Set(); // idempotency keys carried out (a real service keeps them in its database)

async function onCommand(command) {
  if (done.has(command.idempotency_key)) return log("duplicate command", command);
  done.add(command.idempotency_key);
  if (command.command === "compensate") {
    // Undo the step (here: release the authorization), then say so. The saga becomes `compensated`.
    await report(command.saga_id, command.step, "compensate", "succeeded", { idempotency_key: command.idempotency_key });
    log("compensated", { saga_id: command.saga_id, step: command.step });
  } else {
    log("ignored command", command);
  }
}

function natsConnect(url) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port) || 4222, hostname);
  let buffer = Buffer.alloc(0);
  const handlers = new Map();
  let nextSid = 1;
  socket.on("data", (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const end = buffer.indexOf("\r\n");
      if (end < 0) return;
      const line = buffer.subarray(0, end).toString();
      const parts = line.split(" ");
      if (parts[0] === "MSG" || parts[0] === "HMSG") {
        // MSG subject sid [reply] size | HMSG subject sid [reply] header-size total-size
        const total = Number(parts[parts.length - 1]);
        const headerSize = parts[0] === "HMSG" ? Number(parts[parts.length - 2]) : 0;
        if (buffer.length < end + 2 + total + 2) return; // wait for the rest of the message
        const payload = buffer.subarray(end + 2 + headerSize, end + 2 + total).toString();
        buffer = buffer.subarray(end + 2 + total + 2);
        const handler = handlers.get(parts[2]);
        if (handler) handler(payload);
        continue;
      }
      buffer = buffer.subarray(end + 2);
      if (parts[0] === "PING") socket.write("PONG\r\n");
      else if (parts[0] === "-ERR") log("nats error", { line });
    }
  });
  return {
    ready: new Promise((resolve, reject) => {
      socket.once("connect", () => {
        socket.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, headers: true, name: "node-payments" })}\r\n`);
        resolve();
      });
      socket.once("error", reject);
    }),
    subscribe(subject, handler) {
      const sid = String(nextSid++);
      handlers.set(sid, handler);
      socket.write(`SUB ${subject} ${sid}\r\n`);
    },
    request(subject, body) {
      const inbox = `_INBOX.${crypto.randomUUID()}`;
      return new Promise((resolve) => {
        this.subscribe(inbox, (payload) => resolve(JSON.parse(payload)));
        const data = Buffer.from(JSON.stringify(body));
        socket.write(`PUB ${subject} ${inbox} ${data.length}\r\n`);
        socket.write(Buffer.concat([data, Buffer.from("\r\n")]));
      });
    },
    close: () => socket.end(),
  };
}

async function main() {
  if (!TOKEN) throw new Error("SWITCHYARD_TOKEN is not set (python manage.py create_api_token <user>)");
  const nats = natsConnect(process.env.NATS_URL || "nats://127.0.0.1:4222");
  await nats.ready;
  // The console publishes commands with JetStream and waits for the stream's ack, so a stream must hold the subject
  // (creating the same stream again is a no-op). This plain subscription sees commands sent while it runs; a service
  // that must also get those sent while it was down reads the stream with a durable JetStream consumer instead.
  const created = await nats.request(`$JS.API.STREAM.CREATE.${STREAM}`, { name: STREAM, subjects: [SUBJECT] });
  if (created.error && created.error.err_code !== 10058) throw new Error(`stream: ${JSON.stringify(created.error)}`);
  nats.subscribe(SUBJECT, (payload) => onCommand(JSON.parse(payload)).catch((e) => log("command failed", { error: String(e) })));
  log("ready", { subject: SUBJECT });
  for (let order = 1; order <= payments; order++) await takePayment(1000 + order);
  const stop = () => {
    nats.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  log("fatal", { error: String(error) });
  process.exit(1);
});
