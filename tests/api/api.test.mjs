// The JSON API's behaviour against real daemons: every error status,
// tokens by role, bodies too big or malformed or of the wrong types
// (refused with nothing changed), payloads both ways, waits, and the
// event stream's order and Last-Event-ID resume.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startAll, call, until } from './daemons.mjs';
import { openEvents } from './sse.mjs';

const TOK = { producer: 'p-token-1', worker: 'w-token-1', admin: 'a-token-1' };
let nq;

before(async () => {
  nq = await startAll({
    env: { NQ_P: TOK.producer, NQ_W: TOK.worker, NQ_A: TOK.admin },
    brokerFlags: ['--producer-tokens', 'env:NQ_P', '--worker-tokens', 'env:NQ_W',
      '--admin-tokens', 'env:NQ_A', '--dlq-token-file', 'env:NQ_P', '--max-payload', '1k'],
    dlqFlags: ['--producer-tokens', 'env:NQ_P', '--admin-tokens', 'env:NQ_A',
      '--token-file', 'env:NQ_P', '--broker-timeout', '1s'],
    worker: { queues: 't', handlers: ['ok=cat', 'bad=false', 'slow=sleep 2',
      'parents=cat "$NQ_PARENT_RESULTS"'],
      env: { NQ_TOKEN_FILE: 'env:NQ_W' } },
  });
});
after(async () => { if (nq) await nq.stop(); });

const B = (m, u, o = {}) => call(nq.broker, m, u, { token: TOK.admin, ...o });
const D = (m, u, o = {}) => call(nq.dlq, m, u, { token: TOK.admin, ...o });
const enqueued = async (q) => {
  const r = await B('GET', `/v1/queues/${q}`);
  return r.body.queues[0]?.enqueued_total ?? 0;
};
function isError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.equal(r.body.code, code, r.text);
  assert.equal(typeof r.body.message, 'string');
  assert.ok(r.body.message.length > 0);
}

test('a JSON payload is stored as msgpack and shown as JSON; other types as base64', async () => {
  const p = { to: 'a@example.com', n: [1, 2.5, null, true], s: 'é' };
  const a = await B('POST', '/v1/queues/x/jobs', { body: { type: 'email', payload: p, priority: 5 } });
  assert.equal(a.status, 200, a.text);
  const g = await B('GET', `/v1/jobs/${a.body.id}`);
  assert.deepEqual(g.body.spec.payload, p);
  assert.equal(g.body.spec.content_type, 'application/msgpack');
  assert.equal(g.body.spec.priority, 5);
  assert.equal(g.body.state, 'ready');
  const raw = Buffer.from([0, 1, 2, 255]).toString('base64');
  const b = await B('POST', '/v1/queues/x/jobs', { body: { type: 'blob', payload: raw, content_type: 'application/octet-stream' } });
  const h = await B('GET', `/v1/jobs/${b.body.id}`);
  assert.equal(h.body.spec.payload, raw);
  const o = await B('GET', `/v1/jobs/${b.body.id}?omit_payload=true`);
  assert.equal(o.body.spec.payload, '');
});

test('a batch answers per job, in order; one bad job fails alone', async () => {
  const before = await enqueued('batch');
  const r = await B('POST', '/v1/queues/batch/jobs', { body: { jobs: [{ type: 'a' }, { type: 'bad type' }, { type: 'c' }] } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.results.length, 3);
  assert.match(r.body.results[0].id, /^[0-9a-f]{16}$/);
  assert.equal(r.body.results[1].status.code, 'INVALID_ARGUMENT');
  assert.match(r.body.results[2].id, /^[0-9a-f]{16}$/);
  assert.equal(await enqueued('batch'), before + 2);
  const dup1 = await B('POST', '/v1/queues/batch/jobs', { body: { type: 'a', idempotency_key: 'k1' } });
  const dup2 = await B('POST', '/v1/queues/batch/jobs', { body: { type: 'a', idempotency_key: 'k1' } });
  assert.equal(dup2.body.id, dup1.body.id);
  assert.equal(dup2.body.duplicate, true);
});

test('malformed JSON and wrong types are refused with 400 and change nothing', async () => {
  const before = await enqueued('x');
  const cases = [
    { raw: '{"type": "a",', why: /malformed JSON/ },
    { raw: '[1,2]', why: /JSON object/ },
    { body: { type: 'a', priority: 'high' }, why: /priority: want an integer/ },
    { body: { type: 'a', max_attempts: -1 }, why: /max_attempts/ },
    { body: { type: 'a', max_attempts: 1e12 }, why: /max_attempts/ },
    { body: { type: 7 }, why: /type: want a string/ },
    { body: { type: 'a', colour: 'red' }, why: /colour: no such field/ },
    { body: { jobs: [{ type: 'a' }, { type: 'b', delay_ms: [] }] }, why: /jobs\[1\]\.delay_ms/ },
    { body: { type: 'a', payload: 'not base64!', content_type: 'text/plain' }, why: /payload: not base64/ },
    { body: { type: 'a', queue: 'other' }, why: /queue: the body says otherwise/ },
    { body: { type: 'a', payload: 'x'.repeat(2000) }, why: /payload is \d+ bytes, limit is 1024/ },
  ];
  for (const c of cases) {
    const r = await B('POST', '/v1/queues/x/jobs', c);
    isError(r, 400, 'INVALID_ARGUMENT');
    assert.match(r.body.message, c.why);
  }
  isError(await B('GET', '/v1/jobs?limit=lots'), 400, 'INVALID_ARGUMENT');
  isError(await B('GET', '/v1/jobs?colour=red'), 400, 'INVALID_ARGUMENT');
  isError(await B('GET', '/v1/jobs/abc'), 400, 'INVALID_ARGUMENT');
  isError(await B('POST', '/v1/queues/x/pause', { body: { a: 1 } }), 400, 'INVALID_ARGUMENT');
  assert.equal(await enqueued('x'), before);
  assert.equal((await B('GET', '/v1/queues/x')).body.queues[0].paused, false);
});

test('tokens: none or unknown 401, another role 403, each role its routes', async () => {
  const body = { type: 'ok' };
  isError(await call(nq.broker, 'POST', '/v1/queues/x/jobs', { body }), 401, 'UNAUTHENTICATED');
  const none = await call(nq.broker, 'GET', '/v1/queues', {});
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');
  isError(await call(nq.broker, 'POST', '/v1/queues/x/jobs', { body, token: 'nope' }), 401, 'UNAUTHENTICATED');
  isError(await call(nq.broker, 'POST', '/v1/queues/x/jobs', { body, headers: { authorization: 'Basic eDp5' } }), 401, 'UNAUTHENTICATED');
  isError(await call(nq.broker, 'POST', '/v1/queues/x/jobs', { body, token: TOK.worker }), 403, 'PERMISSION_DENIED');
  const p = await call(nq.broker, 'POST', '/v1/queues/x/jobs', { body, token: TOK.producer });
  assert.equal(p.status, 200, p.text);
  assert.equal((await call(nq.broker, 'GET', `/v1/jobs/${p.body.id}`, { token: TOK.producer })).status, 200);
  for (const [m, u] of [['GET', '/v1/queues'], ['POST', '/v1/queues/x/pause'], ['GET', '/v1/jobs?queue=x'], ['GET', '/v1/queues/x/policy']])
    isError(await call(nq.broker, m, u, { token: TOK.producer }), 403, 'PERMISSION_DENIED');
  isError(await call(nq.dlq, 'GET', '/v1/dlq/stats', { token: TOK.producer }), 403, 'PERMISSION_DENIED');
  isError(await call(nq.dlq, 'GET', '/v1/dlq/stats', {}), 401, 'UNAUTHENTICATED');
  assert.equal((await D('GET', '/v1/dlq/stats')).status, 200);
  isError(await call(nq.broker, 'GET', '/v1/events', {}), 401, 'UNAUTHENTICATED');
  isError(await call(nq.broker, 'GET', '/v1/events', { token: TOK.worker }), 403, 'PERMISSION_DENIED');
  // the broker's /v1/dlq/ (handed to nq-dlq) asks the same roles
  isError(await call(nq.broker, 'GET', '/v1/dlq/stats', { token: TOK.producer }), 403, 'PERMISSION_DENIED');
  isError(await call(nq.broker, 'GET', '/v1/dlq/stats', {}), 401, 'UNAUTHENTICATED');
  assert.equal((await B('GET', '/v1/dlq/stats')).status, 200);
  // whoami tells the roles, for the dashboard
  assert.deepEqual((await call(nq.broker, 'GET', '/v1/whoami', { token: TOK.producer })).body.roles, ['producer']);
  assert.ok((await B('GET', '/v1/whoami')).body.roles.includes('admin'));
  isError(await call(nq.broker, 'GET', '/v1/whoami', { token: 'nope' }), 401, 'UNAUTHENTICATED');
});

test('404, 405 and 412 as JSON', async () => {
  isError(await B('GET', '/v1/jobs/00000000000000ff'), 404, 'NOT_FOUND');
  isError(await B('GET', '/v1/nothing/here'), 404, 'NOT_FOUND');
  const m = await B('PUT', '/v1/jobs');
  assert.equal(m.status, 405);
  assert.equal(m.headers.get('allow'), 'GET');
  const s = await B('POST', '/v1/queues/typed/policy', { body: { settings: [{ key: 'types', value: 'a' }] } });
  assert.equal(s.status, 200, s.text);
  isError(await B('POST', '/v1/queues/typed/jobs', { body: { type: 'b' } }), 412, 'FAILED_PRECONDITION');
  assert.equal((await B('GET', '/v1/queues/typed')).body.queues?.[0]?.ready ?? 0, 0);
});

test('deadline, finish_within and a unique scope travel in a JSON body', async () => {
  assert.equal((await B('POST', '/v1/queues/dl/pause')).status, 200);
  const at = (Date.now() + 1000) * 1000;
  const d = await B('POST', '/v1/queues/dl/jobs', { body: { type: 'a', deadline_us: at } });
  const f = await B('POST', '/v1/queues/dl/jobs', { body: { type: 'a', finish_within_ms: '1s' } });
  assert.equal(d.status, 200, d.text);
  assert.equal(f.status, 200, f.text);
  await until(async () => (await B('GET', `/v1/jobs/${d.body.id}`)).body.state === 'expired', 10000);
  await until(async () => (await B('GET', `/v1/jobs/${f.body.id}`)).body.dead_reason === 'deadline', 10000);
  const u = { type: 'a', idempotency_key: 'u1', unique: { scope: 'queued' } };
  const u1 = await B('POST', '/v1/queues/dl/jobs', { body: u });
  const u2 = await B('POST', '/v1/queues/dl/jobs', { body: u });
  assert.equal(u2.body.id, u1.body.id);
  assert.equal(u2.body.duplicate, true);
  assert.equal((await B('GET', `/v1/jobs/${u1.body.id}`)).body.spec.unique.scope, 'queued');
});

test('a queue at its max depth answers 429', async () => {
  const s = await B('POST', '/v1/queues/full/policy', { body: { settings: [{ key: 'max_depth', value: '1' }] } });
  assert.equal(s.status, 200, s.text);
  assert.equal((await B('POST', '/v1/queues/full/jobs', { body: { type: 'a' } })).status, 200);
  isError(await B('POST', '/v1/queues/full/jobs', { body: { type: 'a' } }), 429, 'RESOURCE_EXHAUSTED');
  assert.equal(await enqueued('full'), 1);
  const r = await B('DELETE', '/v1/queues/full/policy?keys=max_depth');
  assert.equal(r.body.queues[0].values.find((v) => v.key === 'max_depth').source, 'default');
});

// Sends a request by hand (writes that fail once the server closed are
// ignored) and gives what came back.
function rawRequest(head, body) {
  const port = new URL(nq.broker).port;
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(head);
      if (body) s.write(body);
    });
    s.on('data', (d) => { got += d; });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    setTimeout(() => { s.destroy(); resolve(got); }, 5000);
  });
}

test('a body over the limit is refused with 413 before it is read', async () => {
  const before = await enqueued('x');
  const head = (n) => `POST /v1/queues/x/jobs HTTP/1.1\r\nHost: x\r\n` +
    `Authorization: Bearer ${TOK.admin}\r\nContent-Type: application/json\r\nContent-Length: ${n}\r\n\r\n`;
  const big = JSON.stringify({ type: 'a', payload: 'x'.repeat(2 * 1024 * 1024) });
  // announced, with or without Expect: 100-continue, and not sent: 413
  for (const h of [head(100000000), head(big.length).replace('\r\n\r\n', '\r\nExpect: 100-continue\r\n\r\n')]) {
    const answer = await rawRequest(h, '{"type":');
    assert.match(answer, /^HTTP\/1\.1 413/);
    assert.doesNotMatch(answer, /100 Continue/);
    assert.match(answer, /"code":"RESOURCE_EXHAUSTED"/);
  }
  // sent whole at once: the server answers 413 and closes at once, so the
  // client may see the answer or a reset (it is still writing); either
  // way nothing was taken
  const whole = await rawRequest(head(big.length), big);
  assert.ok(whole === '' || /^HTTP\/1\.1 413/.test(whole), whole.slice(0, 200));
  // without a length (chunked), past the limit: the connection closes
  const chunk = 'x'.repeat(65536);
  const chunked = `POST /v1/queues/x/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
    `${(chunk.length).toString(16)}\r\n${chunk}\r\n`.repeat(40);
  const c = await rawRequest(chunked, '');
  assert.doesNotMatch(c, /^HTTP\/1\.1 200/);
  assert.equal(await enqueued('x'), before);
  const ok = await B('POST', '/v1/queues/x/jobs', { body: { type: 'a' } });
  assert.equal(ok.status, 200);
});

test('wait answers at the end state, or with the job as it is at the timeout', async () => {
  const a = await B('POST', '/v1/queues/t/jobs', { body: { type: 'ok', payload: { v: 1 } } });
  const w = await B('GET', `/v1/jobs/${a.body.id}/wait?timeout=20s`);
  assert.equal(w.body.state, 'succeeded', w.text);
  assert.deepEqual(JSON.parse(Buffer.from(w.body.result, 'base64').toString()), { v: 1 });
  const later = await B('POST', '/v1/queues/t/jobs', { body: { type: 'ok', delay_ms: '1h' } });
  const t0 = Date.now();
  const s = await B('GET', `/v1/jobs/${later.body.id}/wait?timeout=300ms`);
  assert.equal(s.body.state, 'scheduled');
  assert.ok(Date.now() - t0 >= 250);
  const c = await B('POST', `/v1/jobs/${later.body.id}/cancel`);
  assert.equal(c.body.state, 'canceled');
});

test('events arrive in order, filtered, and resume after Last-Event-ID', async () => {
  const url = `${nq.broker}/v1/events?queue=ev&kind=enqueued`;
  const auth = { authorization: `Bearer ${TOK.producer}` };
  const s = await openEvents(url, auth);
  assert.equal(s.status, 200);
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await B('POST', '/v1/queues/ev/jobs', { body: { type: 'a' } })).body.id);
  await B('POST', '/v1/queues/other/jobs', { body: { type: 'a' } });
  const got = await s.next(5);
  s.close();
  assert.deepEqual(got.map((e) => e.data.id), ids);
  assert.ok(got.every((e) => e.event === 'enqueued' && e.data.queue === 'ev'));
  const seqs = got.map((e) => Number(e.id));
  assert.ok(seqs.every((v, i) => i === 0 || v > seqs[i - 1]));
  assert.deepEqual(got.map((e) => e.data.seq), seqs);
  // missed while away: given on reconnect, after the last seen id only
  const missed = [];
  for (let i = 0; i < 3; i++) missed.push((await B('POST', '/v1/queues/ev/jobs', { body: { type: 'a' } })).body.id);
  const r = await openEvents(url, { ...auth, 'last-event-id': String(seqs[4]) });
  const again = await r.next(3);
  assert.deepEqual(again.map((e) => e.data.id), missed);
  const more = (await B('POST', '/v1/queues/ev/jobs', { body: { type: 'a' } })).body.id;
  assert.equal((await r.next(1))[0].data.id, more);
  r.close();
  isError(await call(nq.broker, 'GET', '/v1/events?last_event_id=x', { token: TOK.producer }), 400, 'INVALID_ARGUMENT');
  const m = await call(nq.broker, 'GET', '/metrics');
  assert.match(m.text, /^nq_http_sse_events_total [1-9]/m);
});

test('a batch made in one enqueue runs its callback once, with batch_completed on the stream', async () => {
  const s = await openEvents(`${nq.broker}/v1/events?kind=batch_completed`, { authorization: `Bearer ${TOK.producer}` });
  const r = await B('POST', '/v1/queues/t/jobs', { body: {
    jobs: [{ type: 'ok' }, { type: 'ok' }, { type: 'bad', max_attempts: 1 }],
    batch: { seal: true, on_complete: { queue: 't', type: 'parents' }, on_success: { queue: 't', type: 'ok' } } } });
  assert.equal(r.status, 200, r.text);
  const id = r.body.batch_id;
  const [ev] = await s.next(1);
  s.close();
  assert.equal(ev.event, 'batch_completed');
  assert.equal(ev.data.batch_id, id);
  await until(async () => (await B('GET', `/v1/batches/${id}`)).body.on_complete_id);
  const b = (await B('GET', `/v1/batches/${id}`)).body;
  assert.equal(Number(b.succeeded), 2);
  assert.equal(Number(b.dead), 1);
  assert.ok(!b.on_success_id);
  const cb = await B('GET', `/v1/jobs/${b.on_complete_id}/wait?timeout=10s`);
  assert.equal(cb.body.state, 'succeeded');
  assert.match(Buffer.from(cb.body.result, 'base64').toString(), new RegExp(`"${id}":\\{"batch":"${id}","total":3,"succeeded":2,"dead":1`));
  isError(await B('POST', '/v1/queues/t/jobs', { body: { type: 'ok', depends: { batch_id: id } } }), 412, 'FAILED_PRECONDITION');
});

test('a stream that does not read skips what fell off the ring, and holds nothing back', async () => {
  const port = new URL(nq.broker).port;
  let got = '';
  const s = net.connect(port, '127.0.0.1', () => s.write(
    `GET /v1/events?queue=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOK.producer}\r\n\r\n`));
  s.on('data', (d) => { got += d; });
  await until(() => got.includes('200 OK'));
  s.pause(); // reads nothing more: the kernel's buffers fill, then the ring passes it
  const jobs = Array.from({ length: 1000 }, () => ({ type: 'a', payload: { pad: 'p'.repeat(200) } }));
  const t0 = Date.now();
  for (let i = 0; i < 30; i++) {
    const r = await B('POST', '/v1/queues/slow/jobs', { body: { jobs } });
    assert.equal(r.status, 200);
  }
  const took = Date.now() - t0;
  s.resume();
  await until(() => /: skipped \d+ events/.test(got), 20000);
  s.destroy();
  const m = await call(nq.broker, 'GET', '/metrics');
  assert.match(m.text, /^nq_http_sse_skipped_total [1-9]/m);
  // generous: the point is that 30,000 enqueues were not held to the reader's pace
  assert.ok(took < 60000, `enqueues took ${took} ms`);
});

test('nq-dlq: list, show, replay, purge; a stopping broker answers 503, a gone one 503 or 504', async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await B('POST', '/v1/queues/t/jobs', { body: { type: 'bad', max_attempts: 1 } })).body.id);
  // stats count other queues' dead jobs too: wait for these three
  await until(async () => (await D('GET', '/v1/dlq/jobs?queue=t&limit=10')).body.jobs.length >= 3);
  const l = await D('GET', '/v1/dlq/jobs?queue=t&limit=2');
  assert.equal(l.body.jobs.length, 2);
  const page2 = await D('GET', `/v1/dlq/jobs?queue=t&limit=2&before=${l.body.next_before_id}`);
  assert.ok(page2.body.jobs.length >= 1);
  const sh = await D('GET', `/v1/dlq/jobs/${ids[0]}`);
  assert.equal(sh.body.job.errors[0].message, 'exit 1');
  assert.equal(sh.body.reason, 'max_attempts');
  const rp = await D('POST', `/v1/dlq/jobs/${ids[0]}/replay`);
  assert.equal(rp.body.replayed, 1, rp.text);
  const p = await D('DELETE', `/v1/dlq/jobs/${ids[1]}`);
  assert.equal(p.body.purged, 1);
  isError(await D('GET', `/v1/dlq/jobs/${ids[1]}`), 404, 'NOT_FOUND');
  isError(await D('POST', '/v1/dlq/replay', { body: { ids: 'x', all: 'maybe' } }), 400, 'INVALID_ARGUMENT');
  const later = await B('POST', '/v1/queues/t/jobs', { body: { type: 'ok', delay_ms: '1h' } });
  const waiting = B('GET', `/v1/jobs/${later.body.id}/wait?timeout=60s`);
  await new Promise((r) => setTimeout(r, 200));
  await nq.stopBroker();
  const w = await waiting;
  isError(w, 503, 'UNAVAILABLE');
  assert.match(w.body.message, /shutting down/);
  // nq-dlq cannot reach it: refused (503) or timed out (504), as it went
  const gone = await D('POST', `/v1/dlq/jobs/${ids[2]}/replay`);
  if (gone.status === 503) isError(gone, 503, 'UNAVAILABLE');
  else isError(gone, 504, 'DEADLINE_EXCEEDED');
  assert.equal((await D('GET', `/v1/dlq/jobs/${ids[2]}`)).status, 200);
});

test('a broker without nq-dlq answers /v1/dlq/ with 503 saying so', async () => {
  const alone = await startAll({ noDlq: true });
  try {
    const r = await call(alone.broker, 'GET', '/v1/dlq/stats');
    isError(r, 503, 'UNAVAILABLE');
    assert.match(r.body.message, /--dlq/);
  } finally {
    await alone.stop();
  }
});
