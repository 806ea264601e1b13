// Holds docs/openapi.yaml to the servers: every operation in it is called
// against a real nq-broker and nq-dlq and each answer is checked against
// the schema of its status (which the document must list); the routes
// the servers say they serve (/v1/routes) must be exactly the document's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv from 'ajv';
import { startAll, call, until } from './daemons.mjs';
import { openEvents } from './sse.mjs';

const DOC = process.env.NQ_OPENAPI || path.join(path.dirname(fileURLToPath(import.meta.url)), '../../docs/openapi.yaml');
let api, nq;
const ajv = new Ajv({ strict: false, allErrors: true });
const called = new Set();

before(async () => {
  api = await SwaggerParser.dereference(DOC);
  nq = await startAll({ worker: { queues: 'c', handlers: ['ok=cat', 'bad=false'] } });
});
after(async () => { if (nq) await nq.stop(); });

function operation(method, url) {
  const p = url.split('?')[0];
  for (const [tpl, item] of Object.entries(api.paths)) {
    const re = new RegExp('^' + tpl.replace(/\{[^}]+\}/g, '[^/]+') + '$');
    if (re.test(p) && item[method.toLowerCase()]) return { tpl, op: item[method.toLowerCase()] };
  }
  return null;
}

// Calls a route the document must describe and checks the answer.
async function check(base, method, url, opts = {}, want = 200) {
  const found = operation(method, url);
  assert.ok(found, `${method} ${url} is not in the document`);
  called.add(found.op.operationId);
  const r = await call(base, method, url, opts);
  assert.equal(r.status, want, `${method} ${url}: ${r.text}`);
  const resp = found.op.responses[String(r.status)];
  assert.ok(resp, `${method} ${url}: status ${r.status} is not documented`);
  const schema = resp.content?.['application/json']?.schema;
  assert.ok(schema, `${method} ${url}: no JSON schema for ${r.status}`);
  const validate = ajv.compile(schema);
  assert.ok(validate(r.body), `${method} ${url}: ${ajv.errorsText(validate.errors)}\n${r.text}`);
  return r.body;
}

test('every operation answers as the document says', async () => {
  const B = nq.broker, D = nq.dlq;
  const one = await check(B, 'POST', '/v1/queues/c/jobs', { body: { type: 'ok', payload: { n: 1 } } });
  await check(B, 'POST', '/v1/queues/c/jobs', { body: { jobs: [{ type: 'ok' }, { type: 'ok' }] } });
  await check(B, 'GET', `/v1/jobs/${one.id}`);
  await check(B, 'GET', `/v1/jobs/${one.id}/wait?timeout=10s`);
  await check(B, 'GET', '/v1/jobs/00000000000000ff', {}, 404);
  await check(B, 'GET', '/v1/jobs?queue=c&state=succeeded&limit=5');
  const later = await check(B, 'POST', '/v1/queues/c/jobs', { body: { type: 'ok', delay_ms: '1h' } });
  await check(B, 'POST', `/v1/jobs/${later.id}/cancel`);
  await check(B, 'POST', `/v1/jobs/${later.id}/cancel`, {}, 412);
  await check(B, 'GET', '/v1/queues');
  await check(B, 'GET', '/v1/queues/c');
  await check(B, 'POST', '/v1/queues/p/pause');
  await check(B, 'POST', '/v1/queues/p/resume');
  await check(B, 'GET', '/v1/policies');
  await check(B, 'GET', '/v1/queues/c/policy');
  await check(B, 'POST', '/v1/queues/c/policy', { body: { settings: [{ key: 'max_attempts', value: '3' }] } });
  await check(B, 'POST', '/v1/queues/c/policy', { body: { settings: [{ key: 'nope', value: '3' }] } }, 400);
  await check(B, 'DELETE', '/v1/queues/c/policy?keys=max_attempts');
  await check(B, 'GET', '/v1/routes');
  await check(B, 'GET', '/v1/whoami');
  await check(B, 'GET', '/v1/cron');
  await check(B, 'POST', '/v1/cron/nope/trigger', {}, 404);
  await check(D, 'GET', '/v1/routes');
  const batch = await check(B, 'POST', '/v1/batches', { body: { on_complete: { queue: 'c', type: 'ok' } } });
  await check(B, 'POST', '/v1/queues/c/jobs', { body: { type: 'ok', depends: { batch_id: batch.id } } });
  await check(B, 'GET', `/v1/batches/${batch.id}`);
  await check(B, 'GET', '/v1/batches?limit=5');
  await check(B, 'POST', `/v1/batches/${batch.id}/seal`);
  await check(B, 'POST', `/v1/batches/${batch.id}/cancel`);
  await check(B, 'GET', '/v1/batches/00000000000000ff', {}, 404);
  await check(B, 'POST', '/v1/batches', { body: { on_success: { queue: 'bad queue', type: 'ok' } } }, 400);
  const made = await check(B, 'POST', '/v1/queues/c/jobs', { body: { jobs: [{ type: 'ok' }], batch: { seal: true, on_complete: { queue: 'c', type: 'ok' } } } });
  assert.match(made.batch_id, /^[0-9a-f]{16}$/);

  // events: a stream whose events match JobEvent
  const found = operation('GET', '/v1/events');
  called.add(found.op.operationId);
  const s = await openEvents(`${B}/v1/events?queue=c`);
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type'), /^text\/event-stream/);
  await call(B, 'POST', '/v1/queues/c/jobs', { body: { type: 'ok' } });
  const [ev] = await s.next(1);
  s.close();
  const v = ajv.compile(found.op.responses['200'].content['text/event-stream']['x-event']);
  assert.ok(v(ev.data), ajv.errorsText(v.errors));

  // nq-dlq: dead jobs to look at
  const dead = [];
  for (let i = 0; i < 3; i++) {
    const r = await call(B, 'POST', '/v1/queues/c/jobs', { body: { type: 'bad', max_attempts: 1 } });
    dead.push(r.body.id);
  }
  await until(async () => (await call(D, 'GET', '/v1/dlq/stats')).body.total >= 3);
  await check(D, 'GET', '/v1/dlq/jobs?queue=c&limit=2');
  await check(D, 'GET', `/v1/dlq/jobs/${dead[0]}`);
  await check(D, 'GET', '/v1/dlq/jobs/00000000000000ff', {}, 404);
  await check(D, 'GET', '/v1/dlq/stats');
  // the broker hands /v1/dlq/ to nq-dlq: one URL shows everything
  await check(B, 'GET', '/v1/dlq/stats');
  await check(B, 'GET', `/v1/dlq/jobs/${dead[0]}`);
  await check(D, 'POST', `/v1/dlq/jobs/${dead[0]}/replay`);
  await check(D, 'POST', '/v1/dlq/replay', { body: { ids: [dead[1]] } });
  await check(D, 'DELETE', `/v1/dlq/jobs/${dead[2]}`);
  await check(D, 'DELETE', `/v1/dlq/jobs/${dead[2]}`, {}, 404);
  await check(D, 'POST', '/v1/dlq/purge', { body: { all: true } });
});

test('the document and the servers list the same routes', async () => {
  const served = new Set();
  for (const base of [nq.broker, nq.dlq]) {
    const r = await call(base, 'GET', '/v1/routes');
    for (const x of r.body.routes) served.add(`${x.method} ${x.path}`);
  }
  const documented = new Set();
  for (const [tpl, item] of Object.entries(api.paths))
    for (const m of Object.keys(item))
      if (['get', 'post', 'put', 'delete', 'patch'].includes(m)) documented.add(`${m.toUpperCase()} ${tpl}`);
  const notServed = [...documented].filter((x) => !served.has(x));
  const notDocumented = [...served].filter((x) => !documented.has(x));
  assert.deepEqual(notServed, [], 'in the document but not served');
  assert.deepEqual(notDocumented, [], 'served but not in the document');
});

test('every operation of the document was called', () => {
  const all = [];
  for (const item of Object.values(api.paths))
    for (const [m, op] of Object.entries(item)) if (op.operationId) all.push(op.operationId);
  assert.deepEqual(all.filter((id) => !called.has(id)), []);
});
