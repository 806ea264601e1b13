// Starts a real nq-broker, nq-dlq and nq-worker for the API tests: the
// api socket and nq-dlq on ipc:// files in a fresh directory, everything
// else on ports the daemons pick (port 0) and report in their ready files.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BUILD = process.env.NQ_BUILD_DIR ||
  path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../build');
export const BIN = {
  broker: process.env.NQ_BROKER || path.join(BUILD, 'broker/nq-broker'),
  dlq: process.env.NQ_DLQ_BIN || path.join(BUILD, 'dlq/nq-dlq'),
  worker: process.env.NQ_WORKER || path.join(BUILD, 'worker/nq-worker'),
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function readReady(file, proc, what) {
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited ${proc.exitCode}: ${proc.logText()}`);
    if (fs.existsSync(file)) {
      const out = {};
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
      }
      return out;
    }
    await sleep(25);
  }
  throw new Error(`${what} wrote no ready file`);
}

function start(bin, args, dir, name, env = {}) {
  const log = path.join(dir, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const p = spawn(bin, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  fs.closeSync(fd);
  alive.add(p);
  p.on('exit', () => alive.delete(p));
  p.logText = () => fs.readFileSync(log, 'utf8').split('\n').slice(-20).join('\n');
  return p;
}

// Daemons left running when the test itself is stopped are killed.
const alive = new Set();
process.on('exit', () => { for (const p of alive) p.kill('SIGKILL'); });
for (const sig of ['SIGTERM', 'SIGINT'])
  process.on(sig, () => process.exit(1));

const httpUrl = (addr) => (addr.startsWith('http') ? addr : `http://${addr}`).replace(/\/$/, '');

// opts.brokerFlags, opts.dlqFlags: more flags; opts.worker: handlers;
// opts.noDlq: a broker without --dlq, and no nq-dlq.
export async function startAll(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nq-api-'));
  const apiSock = `ipc://${dir}/api.sock`;
  const dlqSock = `ipc://${dir}/dlq.sock`;
  const env = { NQ_LOG_LEVEL: 'warn', ...(opts.env || {}) };
  const dlq = opts.noDlq ? null : start(BIN.dlq, ['--listen', dlqSock, '--broker', apiSock,
    '--http', '127.0.0.1:0', '--data-dir', `${dir}/dlq`, '--sync', 'none',
    '--ready-file', `${dir}/dlq.ready`, ...(opts.dlqFlags || [])], dir, 'dlq', env);
  const dready = dlq ? await readReady(`${dir}/dlq.ready`, dlq, 'nq-dlq') : {};
  const broker = start(BIN.broker, ['--api', apiSock, '--work', 'tcp://127.0.0.1:0',
    '--results', 'tcp://127.0.0.1:0', '--events', 'tcp://127.0.0.1:0',
    '--http', '127.0.0.1:0', ...(dlq ? ['--dlq', dlqSock] : []), '--data-dir', `${dir}/broker`,
    '--sync', 'none', '--lease-check', '100ms', '--ready-file', `${dir}/broker.ready`,
    ...(opts.brokerFlags || [])], dir, 'broker', env);
  const bready = await readReady(`${dir}/broker.ready`, broker, 'nq-broker');
  const procs = dlq ? [broker, dlq] : [broker];
  if (opts.worker) {
    const args = ['--work', bready.work, '--results', bready.results, '--queues',
      opts.worker.queues, '--http', '127.0.0.1:0', '--concurrency', '4'];
    for (const h of opts.worker.handlers) args.push('--handler', h);
    procs.push(start(BIN.worker, args, dir, 'worker', { ...env, ...(opts.worker.env || {}) }));
  }
  return {
    dir,
    ready: bready,
    // The broker stops (its worker first, which would wait for it).
    async stopBroker() {
      for (const p of procs.slice(2).concat([broker])) {
        if (p.exitCode !== null) continue;
        p.kill('SIGTERM');
        await new Promise((r) => p.on('exit', r));
      }
    },
    broker: httpUrl(bready.http),
    dlq: dready.http && httpUrl(dready.http),
    async stop() {
      for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.on('exit', r)))));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// One HTTP call: { status, headers, body (parsed JSON when it is), text }.
export async function call(base, method, url, { body, token, raw, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let data;
  if (raw !== undefined) data = raw;
  else if (body !== undefined) {
    data = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const r = await fetch(base + url, { method, headers: h, body: data });
  const text = await r.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

export async function until(fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(50);
  }
}
