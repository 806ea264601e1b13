// The dashboard in a real browser: Debian's chromium, driven by
// puppeteer-core, against a real nq-broker, nq-dlq and nq-worker (the
// daemons of tests/api). It checks what a person would see: counts that
// move while jobs run, an attempt's error on a job's page, a dead job
// replayed from the page ending succeeded, a pause from the page holding
// jobs back, and a token without admin rights shown no admin buttons.
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

// A fresh browser context (its own session storage) signed in with token.
async function open(token, viewport = { width: 1280, height: 800 }) {
  const ctx = await browser.createBrowserContext();
  const p = await ctx.newPage();
  await p.setViewport(viewport);
  p.on('console', (m) => { if (/Content.Security.Policy|Refused/.test(m.text())) problems.push(m.text()); });
  p.on('pageerror', (e) => problems.push(String(e)));
  p.on('dialog', (d) => d.accept());
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
    return lat.length === 2 && lat.every((t) => /^\d+(\.\d)? (\u00b5s|ms|s) \/ \d+(\.\d)? (\u00b5s|ms|s)$/.test(t));
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

test('a token without admin rights sees no admin buttons', async () => {
  const dead = await enqueue('work', { type: 'bad', max_attempts: 1 });
  await until(async () => (await A('GET', `/v1/jobs/${dead}`)).body.state === 'dead');
  const p = await open(TOK.producer);
  await p.waitForSelector('#need-admin');
  assert.equal(await p.$eval('#nav', (n) => n.hidden), true, 'no admin views in the menu');
  for (const [hash, ready] of [['#/queue/work', 'queue'], ['#/dlq', 'dlq'], [`#/job/${dead}`, 'job'], ['#/workers', 'workers']]) {
    await go(p, hash, ready);
    const buttons = await p.$$eval('main button', (bs) => bs.map((b) => b.textContent));
    assert.deepEqual(buttons, [], `${hash}: no buttons that would fail`);
  }
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
  const phone = await open(TOK.admin, { width: 390, height: 844, isMobile: true, deviceScaleFactor: 1 });
  await phone.waitForSelector('tr[data-queue="work"]');
  const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 400, `the page fits a phone (${wide}px wide)`);
  await shot(phone, 'dashboard-phone');
  await phone.browserContext().close();
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
