// bench.mjs: nq-bench's workloads against Redis + BullMQ, measured the
// same way, printing the same line:
//
//   bench jobs=N enqueue_per_s=X e2e_per_s=Y p50_ms=A p99_ms=B p999_ms=C
//
// The main process forks --workers worker processes (one BullMQ Worker
// each, --concurrency jobs at once, a no-op processor) and, once they are
// ready, one producer process that adds the jobs in batches of --batch
// (addBulk; add for 1) over --producers connections. Every job's data
// carries its sequence number and the CLOCK_MONOTONIC time
// (process.hrtime) its add was sent; latency is processor start minus that.
// e2e ends at the last 'completed' event, which BullMQ emits once Redis has
// moved the job to completed. Jobs are removed on completion, BullMQ's
// fastest setting.
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';

const HIST_LINEAR = 128;
const HIST_SUB = 64;
const HIST_BUCKETS = HIST_LINEAR + 34 * HIST_SUB;

const { values: opt } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    index: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '6379' },
    queue: { type: 'string', default: `bench-${process.pid}` },
    jobs: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '100' },
    workers: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '64' },
    producers: { type: 'string', default: '1' },
    'payload-size': { type: 'string', default: '100' },
    rate: { type: 'string', default: '0' },
    'duration-ms': { type: 'string', default: '0' },
    'max-time-ms': { type: 'string', default: '600000' },
  },
});

function num(name) {
  const v = opt[name];
  if (!/^[0-9]+$/.test(v)) {
    console.error(`bullmq bench: --${name}: '${v}' is not a whole number`);
    process.exit(2);
  }
  return Number(v);
}

const conf = {
  port: num('port'), jobs: num('jobs'), batch: num('batch'),
  workers: num('workers'), concurrency: num('concurrency'),
  producers: num('producers'), payloadSize: num('payload-size'),
  rate: num('rate'), durationMs: num('duration-ms'),
  maxTimeMs: num('max-time-ms'),
};
if (conf.rate) conf.jobs = Math.floor(conf.rate * conf.durationMs / 1000);
if (conf.jobs < 1 || conf.batch < 1 || conf.workers < 1 ||
    conf.concurrency < 1 || conf.producers < 1 || conf.payloadSize < 16) {
  console.error('bullmq bench: need --jobs >= 1 (or --rate with ' +
    '--duration-ms), --batch, --workers, --concurrency, --producers >= 1, ' +
    '--payload-size >= 16');
  process.exit(2);
}
const connection = { host: opt.host, port: conf.port,
  maxRetriesPerRequest: null };
const jobOpts = { removeOnComplete: true, removeOnFail: true };
const now = () => process.hrtime.bigint();

function bucket(us) {
  if (us < HIST_LINEAR) return us;
  const msb = us.toString(2).length - 1;
  const i = HIST_LINEAR + (msb - 7) * HIST_SUB +
    Math.floor(us / 2 ** (msb - 6)) - HIST_SUB;
  return Math.min(i, HIST_BUCKETS - 1);
}

function bucketValue(i) {
  if (i < HIST_LINEAR) return i;
  const e = Math.floor((i - HIST_LINEAR) / HIST_SUB);
  const sub = (i - HIST_LINEAR) % HIST_SUB;
  return (HIST_SUB + sub) * 2 ** (e + 1) + 2 ** e;
}

function quantileMs(hist, q) {
  const total = hist.reduce((a, b) => a + b, 0);
  const rank = Math.max(1, Math.floor(q * total));
  let seen = 0;
  for (let i = 0; total && i < HIST_BUCKETS; i++) {
    seen += hist[i];
    if (seen >= rank) return bucketValue(i) / 1000;
  }
  return 0;
}

// ---- worker process ----

async function workerMain() {
  const hist = new Array(HIST_BUCKETS).fill(0);
  let handled = 0;
  let lastDone = 0n;
  const w = new Worker(opt.queue, async (job) => {
    const us = Number((now() - BigInt(job.data.t)) / 1000n);
    hist[bucket(Math.max(0, us))]++;
  }, { connection, concurrency: conf.concurrency, drainDelay: 1 });
  w.on('completed', () => { handled++; lastDone = now(); });
  w.on('error', (e) => process.send({ type: 'error', message: String(e) }));
  const progress = setInterval(() => process.send({ type: 'progress',
    handled }), 20);
  process.on('message', async (m) => {
    if (m.type !== 'stop') return;
    clearInterval(progress);
    await w.close();
    process.send({ type: 'final', handled, lastDone: String(lastDone),
      hist }, () => process.exit(0));
  });
  await w.waitUntilReady();
  process.send({ type: 'ready' });
}

// ---- producer process ----

async function producerMain() {
  const queues = [];
  for (let i = 0; i < conf.producers; i++) {
    const q = new Queue(opt.queue, { connection });
    await q.waitUntilReady();
    queues.push(q);
  }
  // JSON of {s, t, p} comes to about --payload-size bytes.
  const pad = 'x'.repeat(Math.max(0, conf.payloadSize - 50));
  let next = 0;
  let firstSend = 0n;
  let lastAck = 0n;
  const t0 = now();
  const sleepUntil = (due) => new Promise((resolve) => setTimeout(resolve,
    Math.max(0, Number((due - now()) / 1000000n))));
  async function loop(q) {
    for (;;) {
      const first = next * conf.batch;
      next++;
      if (first >= conf.jobs) return;
      const n = Math.min(conf.batch, conf.jobs - first);
      if (conf.rate) {
        await sleepUntil(t0 + BigInt(Math.floor(first * 1e9 / conf.rate)));
      }
      const t = now();
      if (!firstSend || t < firstSend) firstSend = t;
      const data = (s) => ({ s, t: String(t), p: pad });
      if (n === 1) {
        await q.add('noop', data(first), jobOpts);
      } else {
        const jobs = [];
        for (let i = 0; i < n; i++) {
          jobs.push({ name: 'noop', data: data(first + i), opts: jobOpts });
        }
        await q.addBulk(jobs);
      }
      const done = now();
      if (done > lastAck) lastAck = done;
    }
  }
  await Promise.all(queues.map(loop));
  await Promise.all(queues.map((q) => q.close()));
  process.send({ type: 'done', firstSend: String(firstSend),
    lastAck: String(lastAck) }, () => process.exit(0));
}

// ---- main ----

function mainProcess() {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--role'));
  const children = [];
  const handled = new Array(conf.workers).fill(0);
  const finals = [];
  let producerDone = null;
  let stopping = false;
  let ready = 0;
  const die = (message) => {
    console.error(`bullmq bench: ${message}`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  };
  setTimeout(() => die(`gave up after ${conf.maxTimeMs} ms: ` +
    `${handled.reduce((a, b) => a + b, 0)} of ${conf.jobs} jobs done`),
    conf.maxTimeMs).unref();
  const spawn = (role, index) => {
    const c = fork(process.argv[1], [...args, '--role', role, '--index',
      String(index), '--queue', opt.queue]);
    c.on('exit', (code) => {
      if (code !== 0 && !stopping) die(`${role} ${index} exited ${code}`);
    });
    children.push(c);
    return c;
  };
  const maybeStop = () => {
    if (stopping || !producerDone ||
        handled.reduce((a, b) => a + b, 0) < conf.jobs) return;
    stopping = true;
    for (const w of children.slice(0, conf.workers)) w.send({ type: 'stop' });
  };
  const report = () => {
    const hist = new Array(HIST_BUCKETS).fill(0);
    let last = 0n;
    for (const f of finals) {
      f.hist.forEach((v, i) => { hist[i] += v; });
      if (BigInt(f.lastDone) > last) last = BigInt(f.lastDone);
    }
    const first = BigInt(producerDone.firstSend);
    const perS = (to) => (to > first
      ? (conf.jobs * 1e9 / Number(to - first)).toFixed(0) : '0');
    console.log(`bench jobs=${conf.jobs} ` +
      `enqueue_per_s=${perS(BigInt(producerDone.lastAck))} ` +
      `e2e_per_s=${perS(last)} p50_ms=${quantileMs(hist, 0.5).toFixed(3)} ` +
      `p99_ms=${quantileMs(hist, 0.99).toFixed(3)} ` +
      `p999_ms=${quantileMs(hist, 0.999).toFixed(3)}`);
    process.exit(0);
  };
  for (let i = 0; i < conf.workers; i++) {
    spawn('worker', i).on('message', (m) => {
      if (m.type === 'error') die(`worker ${i}: ${m.message}`);
      if (m.type === 'ready' && ++ready === conf.workers) {
        spawn('producer', 0).on('message', (p) => {
          if (p.type === 'done') producerDone = p;
          maybeStop();
        });
      }
      if (m.type === 'progress') handled[i] = m.handled;
      if (m.type === 'final') {
        handled[i] = m.handled;
        finals.push(m);
        if (finals.length === conf.workers) report();
      }
      maybeStop();
    });
  }
}

if (opt.role === 'worker') workerMain().catch((e) => {
  console.error(`bullmq bench: worker: ${e}`); process.exit(1);
});
else if (opt.role === 'producer') producerMain().catch((e) => {
  console.error(`bullmq bench: producer: ${e}`); process.exit(1);
});
else mainProcess();
