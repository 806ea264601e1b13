// The dashboard in a real browser: Debian's chromium, driven by
// puppeteer-core, against a real nq-broker, nq-dlq and nq-worker (the
// daemons of tests/api). It checks what a person would see: counts that
// move while jobs run, an attempt's error on a job's page, a dead job
// replayed from the page ending succeeded, a pause from the page holding
// jobs back, a batch's counts moving to completed with its callback linked,
// a batch canceled from its page, and a token without admin rights shown
// no admin buttons.
// NQ_UI_SCREENSHOTS=DIR saves the main views as PNGs (docs/ holds them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { startAll, call, until } from '../api/daemons.mjs';

const CHROMIUM = process.env.NQ_CHROMIUM || '/usr/bin/chromium';
const TOK = { producer: 'p-token-ui', worker: 'w-token-ui', admin: 'a-token-ui' };
const SHOTS = process.env.NQ_UI_SCREENSHOTS;
let nq, browser, page, flag;
const problems = []; // CSP reports and page errors
const dialogs = []; // the confirmations asked, answered with `answer`
let answer = true;

before(async () => {
  try {
    browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  } catch (e) {
    console.log(`ui tests: chromium cannot start (${e.message.split('\n')[0]}); skipped`);
    process.exit(77);
  }
  const env = { NQ_P: TOK.producer, NQ_W: TOK.worker, NQ_A: TOK.admin };
  flag = `${process.env.TMPDIR || '/tmp'}/nq-ui-flag-${process.pid}`;
  nq = await startAll({
    env,
    brokerFlags: ['--producer-tokens', 'env:NQ_P', '--worker-tokens', 'env:NQ_W', '--admin-tokens', 'env:NQ_A',
      '--dlq-token-file', 'env:NQ_P'],
    dlqFlags: ['--producer-tokens', 'env:NQ_P', '--admin-tokens', 'env:NQ_A', '--token-file', 'env:NQ_A'],
    worker: { queues: 'work,mail', handlers: ['slow=sleep 0.3', 'bad=false', `flip=test -f ${flag}`],
      env: { NQ_TOKEN_FILE: 'env:NQ_W' } },
  });
  page = await open(TOK.admin);
});

after(async () => {
  if (browser) await browser.close();
  if (nq) await nq.stop();
  if (flag) fs.rmSync(flag, { force: true });
});

const A = (m, u, o = {}) => call(nq.broker, m, u, { token: TOK.admin, ...o });
const enqueue = async (queue, job) => (await A('POST', `/v1/queues/${queue}/jobs`, { body: job })).body.id;
const enqueueMany = async (queue, jobs) => (await A('POST', `/v1/queues/${queue}/jobs`, { body: { jobs } })).body.results;

// A fresh browser context (its own session storage) signed in with token.
async function open(token, viewport = { width: 1280, height: 800 }) {
  const ctx = await browser.createBrowserContext();
  const p = await ctx.newPage();
  await p.setViewport(viewport);
  p.on('console', (m) => { if (/Content.Security.Policy|Refused/.test(m.text())) problems.push(m.text()); });
  p.on('pageerror', (e) => problems.push(String(e)));
  p.on('dialog', (d) => { dialogs.push(d.message()); return answer ? d.accept() : d.dismiss(); });
  await p.goto(`${nq.broker}/ui/`);
  await p.waitForSelector('#login[open]');
  await p.type('#login-token', token);
  await p.click('#login-go');
  await p.waitForSelector('body[data-ready]');
  return p;
}

async function go(p, hash, ready) {
  await p.evaluate((h) => { document.body.removeAttribute('data-ready'); location.hash = h; }, hash);
  await p.waitForSelector(`body[data-ready="${ready}"]`);
}

const text = (p, sel) => p.$eval(sel, (e) => e.textContent.trim());
const href = (p, sel) => p.$eval(sel, (a) => a.getAttribute('href'));
// the cells of a row that carry data-f, as {f: text}
const cells = (p, row) => p.$$eval(`${row} td[data-f]`, (tds) => Object.fromEntries(tds.map((t) => [t.dataset.f, t.textContent])));
// a latency cell: p50 / p99 with units
const LATENCY = /^\d+(\.\d)? (\u00b5s|ms|s) \/ \d+(\.\d)? (\u00b5s|ms|s)$/;

async function shot(p, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

test('the overview shows a queue\'s counts changing while jobs run', async () => {
  for (let i = 0; i < 6; i++) await enqueue('mail', { type: 'slow' });
  await A('POST', '/v1/queues/work/jobs', { body: { jobs: Array.from({ length: 24 }, () => ({ type: 'slow' })) } });
  await go(page, '#/', 'overview');
  const seen = new Set();
  await until(async () => {
    const cells = await page.$$eval('tr[data-queue="work"] td[data-f]', (tds) => tds.map((t) => `${t.dataset.f}=${t.textContent}`));
    const ready = cells.find((c) => c.startsWith('ready='));
    const leased = cells.find((c) => c.startsWith('leased='));
    if (ready) seen.add(`${ready} ${leased}`);
    return ready === 'ready=0' && leased === 'leased=0' && seen.size >= 3;
  }, 30000);
  assert.ok(seen.size >= 3, `the counts moved: ${[...seen].join(' | ')}`);
  assert.ok(await page.$('#chart'), 'a throughput chart');
  assert.ok(await page.$('#latency-chart'), 'a latency chart');
  // the jobs that ran show their wait and run as p50 / p99 with a unit
  await until(async () => {
    const lat = await page.$$eval('tr[data-queue="work"] td[data-f="wait"], tr[data-queue="work"] td[data-f="run"]',
      (tds) => tds.map((t) => t.textContent));
    return lat.length === 2 && lat.every((t) => LATENCY.test(t));
  }, 10000);
  await shot(page, 'dashboard-overview');
});

test('a job\'s page shows each attempt\'s error', async () => {
  const id = await enqueue('work', { type: 'bad', max_attempts: 2, payload: { order: 42 } });
  await until(async () => (await A('GET', `/v1/jobs/${id}`)).body.state === 'dead');
  await go(page, `#/job/${id}`, 'job');
  await page.waitForSelector('#attempts .attempt-error');
  const errors = await page.$$eval('#attempts .attempt-error', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(errors, ['exit 1', 'exit 1']);
  assert.match(await text(page, '#payload'), /"order": 42/);
  assert.match(await text(page, '#job-state'), /dead/);
  await shot(page, 'dashboard-job');
});

test('a dead job replayed from the dead letters ends succeeded', async () => {
  const id = await enqueue('work', { type: 'flip', max_attempts: 1 });
  await until(async () => (await A('GET', `/v1/dlq/jobs/${id}`)).status === 200);
  fs.writeFileSync(flag, '');
  await go(page, '#/dlq', 'dlq');
  await page.waitForSelector(`tr[data-dead="${id}"] button.replay`);
  await shot(page, 'dashboard-dead-letters');
  await page.click(`tr[data-dead="${id}"] button.replay`); // confirmed by the dialog handler
  await page.waitForFunction((old) => /^#\/job\/[0-9a-f]+$/.test(location.hash) && !location.hash.endsWith(old), {}, id);
  await page.waitForFunction(() => /succeeded/.test(document.querySelector('#job-state')?.textContent || ''), { timeout: 20000 });
  const replayed = page.url().split('/').pop();
  assert.equal((await A('GET', `/v1/jobs/${replayed}`)).body.spec.replay_of, id);
});

test('pausing a queue from its page stops dispatch; resuming starts it again', async () => {
  await go(page, '#/queue/work', 'queue');
  await page.waitForSelector('#pause');
  // the queue's own page shows its recent jobs' wait and run too
  const lat = await page.$$eval('#queue td[data-f="wait"], #queue td[data-f="run"]', (tds) => tds.map((t) => t.textContent));
  assert.ok(lat.length === 2 && lat.every((t) => LATENCY.test(t)), `latency on the queue's page: ${lat}`);
  await page.click('#pause');
  await page.waitForSelector('#resume');
  assert.equal((await A('GET', '/v1/queues/work')).body.queues[0].paused, true);
  for (let i = 0; i < 3; i++) await enqueue('work', { type: 'slow' });
  await new Promise((r) => setTimeout(r, 1500));
  const s = (await A('GET', '/v1/queues/work')).body.queues[0];
  assert.equal(s.ready, 3, 'nothing was leased while paused');
  assert.equal(s.leased, 0);
  await page.waitForFunction(() => document.querySelector('#queue td[data-f="ready"]')?.textContent === '3');
  await page.waitForFunction(() => document.querySelectorAll('#jobs tr[data-job]').length === 3);
  await shot(page, 'dashboard-queue');
  await page.click('#resume');
  await until(async () => (await A('GET', '/v1/queues/work')).body.queues[0].ready === 0, 20000);
});

test('a batch made through the API shows in the list, its counts move to completed, its callback is linked', async () => {
  await A('POST', '/v1/queues/work/pause');
  const id = (await A('POST', '/v1/batches', { body: { on_complete: { queue: 'mail', type: 'slow' } } })).body.id;
  const jobs = Array.from({ length: 6 }, () => ({ type: 'slow', depends: { batch_id: id } }));
  const made = await A('POST', '/v1/queues/work/jobs', { body: { jobs } });
  assert.equal(made.status, 200, made.text);
  await go(page, '#/batches', 'batches');
  const row = `#batches tr[data-batch="${id}"]`;
  const seen = new Set();
  const look = async () => {
    const c = await cells(page, row);
    seen.add(`${c.state} ${c.succeeded}/${c.total} pending ${c.pending}`);
    return c;
  };
  await until(async () => (await look()).pending === '6', 10000);
  await A('POST', '/v1/queues/work/resume');
  await until(async () => (await look()).succeeded === '6', 20000);
  await A('POST', `/v1/batches/${id}/seal`);
  await until(async () => (await look()).state === 'completed', 10000);
  assert.ok(seen.has('open 0/6 pending 6') && seen.has('completed 6/6 pending 0'), `the counts moved: ${[...seen].join(' | ')}`);
  const cb = (await A('GET', `/v1/batches/${id}`)).body.on_complete_id;
  assert.match(cb, /^[0-9a-f]{16}$/);
  assert.equal(await href(page, `${row} a.callback[data-callback="on_complete"]`), `#/job/${cb}`);

  // its page: counts by state, the callback's job and its state
  await page.click(`${row} a[href="#/batch/${id}"]`);
  await page.waitForSelector('#batch-counts');
  assert.match(await text(page, '#batch-state'), /completed/);
  assert.equal(await text(page, '#batch-counts [data-f="succeeded"] b'), '6');
  assert.equal(await text(page, '#batch-counts [data-f="total"] b'), '6');
  assert.equal(await href(page, '#callbacks tr[data-callback="on_complete"] td[data-f="job"] a'), `#/job/${cb}`);
  await page.waitForFunction(() => /succeeded/.test(document.querySelector('#callbacks td[data-f="job-state"]')?.textContent || ''), { timeout: 20000 });
  assert.equal(await page.$('#batch-cancel'), null, 'no cancel once completed');
  await shot(page, 'dashboard-batch');

  // the callback's page names its batch, and a job of the batch its batch
  await page.click('#callbacks td[data-f="job"] a');
  await page.waitForSelector('#job-callback-of a');
  assert.equal(await href(page, '#job-callback-of a'), `#/batch/${id}`);
  await go(page, `#/job/${made.body.results[0].id}`, 'job');
  assert.equal(await href(page, '#job-batch a'), `#/batch/${id}`);
});

test('a job\'s page links its parents and its children', async () => {
  const r = await enqueueMany('work', [{ type: 'slow', delay_ms: '1h' }, { type: 'slow', depends: { depends_on_index: [0] } }]);
  const [parent, child] = r.map((x) => x.id);
  await go(page, `#/job/${parent}`, 'job');
  assert.equal(await href(page, '#job-children a'), `#/job/${child}`);
  assert.equal(await page.$('#job-parents'), null);
  await go(page, `#/job/${child}`, 'job');
  assert.equal(await href(page, '#job-parents a'), `#/job/${parent}`);
  assert.match(await text(page, '#job-parents'), /waiting for 1/);
  await A('POST', `/v1/jobs/${parent}/cancel`);
});

test('a pending batch canceled from its page, after a confirmation', async () => {
  const r = await A('POST', '/v1/queues/work/jobs', { body: {
    jobs: Array.from({ length: 3 }, () => ({ type: 'slow', delay_ms: '1h' })),
    batch: { seal: true, on_complete: { queue: 'mail', type: 'slow' } } } });
  const id = r.body.batch_id;
  await go(page, `#/batch/${id}`, 'batch');
  assert.match(await text(page, '#batch-state'), /sealed/);
  assert.equal(await text(page, '#batch-counts [data-f="scheduled"] b'), '3');
  const asked = dialogs.length;
  answer = false; // a cancel not confirmed does nothing
  await page.click('#batch-cancel');
  await until(() => dialogs.length > asked);
  answer = true;
  assert.match(dialogs.at(-1), new RegExp(`Cancel batch ${id}\\? .* 3 jobs`));
  await new Promise((res) => setTimeout(res, 300));
  assert.ok(!(await A('GET', `/v1/batches/${id}`)).body.cancel_requested, 'not canceled without a yes');
  await page.click('#batch-cancel');
  await page.waitForFunction(() => /canceled/.test(document.querySelector('#batch-state')?.textContent || ''), { timeout: 10000 });
  const b = (await A('GET', `/v1/batches/${id}`)).body;
  assert.equal(b.cancel_requested, true);
  assert.equal(Number(b.canceled), 3);
  await page.waitForFunction(() => document.querySelector('#batch-counts [data-f="canceled"] b')?.textContent === '3');
  assert.equal(await page.$('#batch-cancel'), null, 'no cancel once canceled');
  await page.waitForSelector('#callbacks td[data-f="job"] a');
  assert.equal(await href(page, '#callbacks td[data-f="job"] a'), `#/job/${b.on_complete_id}`);
});

test('a token without admin rights sees no admin buttons', async () => {
  const dead = await enqueue('work', { type: 'bad', max_attempts: 1 });
  await until(async () => (await A('GET', `/v1/jobs/${dead}`)).body.state === 'dead');
  const batch = (await A('POST', '/v1/queues/work/jobs', { body: { jobs: [{ type: 'slow', delay_ms: '1h' }], batch: {} } })).body.batch_id;
  const p = await open(TOK.producer);
  await p.waitForSelector('#need-admin');
  assert.equal(await p.$eval('#nav', (n) => n.hidden), true, 'no admin views in the menu');
  for (const [hash, ready] of [['#/queue/work', 'queue'], ['#/dlq', 'dlq'], [`#/job/${dead}`, 'job'], ['#/workers', 'workers'],
    ['#/batches', 'batches'], [`#/batch/${batch}`, 'batch']]) {
    await go(p, hash, ready);
    const buttons = await p.$$eval('main button', (bs) => bs.map((b) => b.textContent));
    assert.deepEqual(buttons, [], `${hash}: no buttons that would fail`);
  }
  // a batch is shown to a producer (by its id), without the cancel
  assert.equal(await text(p, '#batch-counts [data-f="scheduled"] b'), '1');
  assert.match(await text(p, '#batch-state'), /open/);
  // and it follows the batch: a job that joins it shows without a reload
  await enqueue('work', { type: 'slow', delay_ms: '1h', depends: { batch_id: batch } });
  await p.waitForFunction(() => document.querySelector('#batch-counts [data-f="total"] b')?.textContent === '2', { timeout: 10000 });
  // a producer may cancel: the button is there for a job that waits
  const later = await enqueue('work', { type: 'slow', delay_ms: '1h' });
  await go(p, `#/job/${later}`, 'job');
  await p.waitForSelector('#cancel');
  await p.click('#cancel');
  await p.waitForFunction(() => /canceled/.test(document.querySelector('#job-state')?.textContent || ''));
  await p.browserContext().close();
});

test('workers and a phone-sized overview', async () => {
  await go(page, '#/workers', 'workers');
  await page.waitForSelector('#workers tr[data-worker]');
  const queues = await page.$eval('#workers tr[data-worker] td:nth-child(2)', (t) => t.textContent);
  assert.equal(queues, 'work, mail');
  await shot(page, 'dashboard-workers');
  await go(page, '#/batches', 'batches');
  await page.waitForSelector('#batches tr[data-batch]');
  await shot(page, 'dashboard-batches');
  const phone = await open(TOK.admin, { width: 390, height: 844, isMobile: true, deviceScaleFactor: 1 });
  await phone.waitForSelector('tr[data-queue="work"]');
  const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 400, `the page fits a phone (${wide}px wide)`);
  await shot(phone, 'dashboard-phone');
  const batches = (await A('GET', '/v1/batches')).body.batches;
  for (const [hash, ready] of [['#/batches', 'batches'], [`#/batch/${batches[0].id}`, 'batch']]) {
    await go(phone, hash, ready);
    const w = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 400, `${hash} fits a phone (${w}px wide)`);
  }
  await phone.browserContext().close();
});

test('the list of batches pages on with More', async () => {
  for (let i = 0; i < 50; i++) assert.equal((await A('POST', '/v1/batches', { body: {} })).status, 200);
  const all = (await A('GET', '/v1/batches?limit=1000')).body.batches.length;
  assert.ok(all > 50 && all <= 100, `${all} batches`);
  await go(page, '#/', 'overview'); // the page shows #/batches already: a new visit
  await go(page, '#/batches', 'batches');
  assert.equal((await page.$$('#batches tr[data-batch]')).length, 50);
  await page.click('#more');
  await page.waitForFunction((n) => document.querySelectorAll('#batches tr[data-batch]').length === n, {}, all);
  assert.equal(await page.$('#more'), null, 'no More on the last page');
});

test('/ui/ is served from the binary with its types, a CSP and ETags', async () => {
  const get = (u, headers = {}) => fetch(nq.broker + u, { headers, redirect: 'manual' });
  const index = await get('/ui/');
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(index.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  const js = await get('/ui/app.js');
  assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal((await get('/ui/style.css')).headers.get('content-type'), 'text/css; charset=utf-8');
  const etag = js.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]+"$/);
  assert.equal((await get('/ui/app.js', { 'if-none-match': etag })).status, 304);
  assert.equal((await get('/ui/app.js', { 'if-none-match': '"other"' })).status, 200);
  const bare = await get('/ui');
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get('location'), '/ui/');
  assert.equal((await get('/ui/nope.js')).status, 404);
  assert.equal((await fetch(`${nq.broker}/ui/`, { method: 'POST' })).status, 405);
});

test('the page broke no Content-Security-Policy rule and threw nothing', () => {
  assert.deepEqual(problems, []);
});
