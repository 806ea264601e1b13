// nq's dashboard: plain JavaScript on the broker's JSON API (/v1/), built
// into nq-broker and served at /ui/. No library, nothing fetched from
// elsewhere. Every text from the API goes into the page as text (el()),
// never as HTML. Live updates come from /v1/events (Server-Sent Events),
// read with fetch so that the token goes in the Authorization header.
'use strict';

const S = {
  token: sessionStorage.getItem('nq-token') || '',
  roles: [],
  events: [], // the last EVENTS_MAX events seen, oldest first
  lastSeq: 0,
  history: new Map(), // queue -> [{t, done, failed, enq, wait, run}], for rates and the charts
  view: null, // {timer, onEvent}
};
const EVENTS_MAX = 5000;
const HISTORY_MAX = 120;
const STATES = ['ready', 'scheduled', 'leased', 'succeeded', 'dead', 'canceled', 'expired'];
const LIVE = new Set(['scheduled', 'ready', 'leased']);
const BREAKER = ['closed', 'open', 'half-open'];
const COLORS = ['#2f6fdf', '#1f8a4c', '#c2322c', '#b7791f', '#7c3aed', '#0e7490', '#be185d', '#4d7c0f'];

const can = (role) => S.roles.includes('admin') || S.roles.includes(role);
const isAdmin = () => S.roles.includes('admin');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the page ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}

function show(...nodes) {
  const m = document.getElementById('main');
  m.replaceChildren(...nodes);
}

function table(head, rows, attrs) {
  return el('table', attrs,
    el('thead', null, el('tr', null, head.map((h) => el('th', { class: h.num ? 'num' : h.wide ? 'wide' : null }, h.label || h)))),
    el('tbody', null, rows));
}

const td = (v, cls, f) => el('td', { class: cls, 'data-f': f }, v);
const num = (v, f) => td(v === undefined ? '' : String(v), 'num', f);
const pill = (text, cls) => el('span', { class: `pill ${cls || text}` }, text);

function fmtTime(us) {
  if (!us || us === '0') return '';
  return new Date(Number(us) / 1000).toISOString().replace('T', ' ').slice(0, 19);
}

function fmtAge(us) {
  if (!us || us === '0') return '';
  let s = Math.max(0, Math.round((Date.now() * 1000 - Number(us)) / 1e6));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  s = Math.floor(s / 60);
  return s < 1440 ? `${Math.floor(s / 60)}h ${s % 60}m` : `${Math.floor(s / 1440)}d ${Math.floor(s / 60) % 24}h`;
}

const rate = (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1));

// a latency in microseconds, as people read it
function fmtUs(us) {
  const v = Number(us);
  if (v < 1000) return `${v} \u00b5s`;
  if (v < 1e6) return `${(v / 1000).toFixed(v < 1e4 ? 1 : 0)} ms`;
  return `${(v / 1e6).toFixed(v < 1e7 ? 1 : 0)} s`;
}

// p50 / p99 of the recent jobs of a queue ('' when none ran lately)
const latency = (s, k) => (Number(s[`${k}_window_jobs`]) ? `${fmtUs(s[`${k}_p50_us`])} / ${fmtUs(s[`${k}_p99_us`])}` : '');
// the p99 for the chart, null when no job ran lately
const p99 = (s, k) => (Number(s[`${k}_window_jobs`]) ? Number(s[`${k}_p99_us`]) : null);

// base64 bytes as text when they are printable UTF-8, else as base64
function bytesText(b64) {
  if (!b64) return '';
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (!/[\u0000-\u0008\u000e-\u001f]/.test(text)) return prettyJson(text);
  } catch (e) { /* not text */ }
  return `base64: ${b64}`;
}

function prettyJson(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

function payloadText(spec) {
  if (!spec) return '';
  const p = spec.payload;
  if (p === undefined || p === '') return spec.payload_ref ? `claim check: ${spec.payload_ref}` : '(empty)';
  if (typeof p !== 'string') return JSON.stringify(p, null, 2);
  return spec.content_type === 'application/msgpack' ? p : `${spec.content_type || 'bytes'}\n${bytesText(p)}`;
}

function errorBox(e) {
  return el('p', { class: 'error' }, e.status === 403 ? `${e.message} (this token may not see this)` : e.message);
}

// ---- the API ----

async function api(method, path, body) {
  const h = {};
  if (S.token) h.authorization = `Bearer ${S.token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  let j = null;
  try { j = await r.json(); } catch (e) { /* no JSON */ }
  if (!r.ok) {
    const err = new Error((j && j.message) || `${r.status} ${r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return j;
}

const q = (o) => Object.entries(o).filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');

// ---- the token ----

async function signIn() {
  for (;;) {
    try {
      S.roles = (await api('GET', '/v1/whoami')).roles;
      document.getElementById('who').textContent = S.roles.includes('admin') ? 'admin' : S.roles.join(', ');
      return;
    } catch (e) {
      if (e.status !== 401) throw e;
      await askToken(S.token ? 'That token is not known here.' : '');
    }
  }
}

function askToken(msg) {
  const d = document.getElementById('login');
  document.getElementById('login-error').textContent = msg;
  document.getElementById('login-token').value = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      S.token = document.getElementById('login-token').value.trim();
      sessionStorage.setItem('nq-token', S.token);
      resolve();
    }, { once: true });
    d.showModal();
  });
}

// ---- live events ----

async function stream() {
  const live = document.getElementById('live');
  for (;;) {
    try {
      const h = { accept: 'text/event-stream' };
      if (S.token) h.authorization = `Bearer ${S.token}`;
      const r = await fetch(`/v1/events?last_event_id=${S.lastSeq}`, { headers: h });
      if (!r.ok) throw new Error(String(r.status));
      live.classList.add('on');
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onBlock(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) { /* reconnects */ }
    live.classList.remove('on');
    await sleep(2000);
  }
}

function onBlock(block) {
  let data = '';
  for (const line of block.split('\n')) if (line.startsWith('data: ')) data += line.slice(6);
  if (!data) return;
  const ev = JSON.parse(data);
  S.lastSeq = Math.max(S.lastSeq, Number(ev.seq));
  S.events.push(ev);
  if (S.events.length > EVENTS_MAX) S.events.splice(0, S.events.length - EVENTS_MAX);
  if (S.view && S.view.onEvent) S.view.onEvent(ev);
}

// ---- overview ----

function remember(stats) {
  const t = Date.now();
  for (const s of stats.queues) {
    const h = S.history.get(s.queue) || [];
    h.push({ t, done: Number(s.succeeded_total), failed: Number(s.failed_total), enq: Number(s.enqueued_total),
      wait: p99(s, 'wait'), run: p99(s, 'run') });
    if (h.length > HISTORY_MAX) h.shift();
    S.history.set(s.queue, h);
  }
}

// per second over the last few samples
function rates(queue) {
  const h = S.history.get(queue) || [];
  if (h.length < 2) return { enq: 0, done: 0 };
  const a = h[Math.max(0, h.length - 4)], b = h[h.length - 1];
  const dt = (b.t - a.t) / 1000 || 1;
  return { enq: (b.enq - a.enq) / dt, done: (b.done - a.done) / dt };
}

function deadRatio(s) {
  const d = Number(s.dead_total), ok = Number(s.succeeded_total);
  return d + ok ? `${((100 * d) / (d + ok)).toFixed(1)}%` : '';
}

function limits(s) {
  const parts = [];
  if (Number(s.in_flight_limit)) parts.push(`max ${s.in_flight_limit}`);
  if (Number(s.tokens)) parts.push(`${s.tokens} tokens`);
  if (Number(s.throttled)) parts.push(`${s.throttled} held`);
  return parts.join(', ');
}

const QUEUE_HEAD = ['Queue', { label: 'Ready', num: 1 }, { label: 'Scheduled', num: 1 }, { label: 'Leased', num: 1 },
  { label: 'Dead pending', num: 1 }, { label: 'In/s', num: 1 }, { label: 'Done/s', num: 1 }, { label: 'Oldest ready', num: 1 },
  { label: 'Wait p50 / p99', num: 1 }, { label: 'Run p50 / p99', num: 1 },
  { label: 'Dead ratio', num: 1 }, 'State', { label: 'Limits', wide: 1 }, 'Breaker'];

function queueRow(s) {
  const r = rates(s.queue);
  const breaker = BREAKER[Number(s.breaker_state)] || 'closed';
  return el('tr', { 'data-queue': s.queue },
    td(el('a', { href: `#/queue/${encodeURIComponent(s.queue)}` }, s.queue)),
    num(s.ready, 'ready'), num(s.scheduled, 'scheduled'), num(s.leased, 'leased'),
    num(s.dead_pending, 'dead_pending'), num(rate(r.enq), 'in_rate'), num(rate(r.done), 'done_rate'),
    num(Number(s.oldest_ready_us) ? fmtAge(s.oldest_ready_us) : '', 'oldest'),
    num(latency(s, 'wait'), 'wait'), num(latency(s, 'run'), 'run'), num(deadRatio(s), 'dead_ratio'),
    td(s.paused ? pill('paused') : pill('running', 'ready'), null, 'paused'),
    td(limits(s), 'wide', 'limits'),
    td(breaker === 'closed' ? breaker : pill(breaker), null, 'breaker'));
}

// The points of a queue's series: throughput from the counters, or a
// latency kept as it was read (gaps where no job ran lately).
function points(name, what) {
  const h = S.history.get(name) || [];
  const pts = [];
  for (let i = 1; i < h.length; i++) {
    if (what === 'done') pts.push({ t: h[i].t, v: (h[i].done - h[i - 1].done) / (((h[i].t - h[i - 1].t) / 1000) || 1) });
    else pts.push({ t: h[i].t, v: h[i][what] });
  }
  return pts;
}

// Lines per queue over the last 2 minutes: lines is [{what, dash}], each a
// series of points() drawn in the queue's colour; fmt labels the axis.
function drawChart(canvas, queues, lines, title, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, hgt = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = hgt * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, hgt);
  const series = queues.flatMap((name, k) => lines.map((l) => ({ k, dash: l.dash, pts: points(name, l.what) })));
  const now = Date.now(), span = 120000;
  const max = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.v || 0)));
  g.strokeStyle = '#dde1e8';
  g.fillStyle = '#6b7385';
  g.font = '11px system-ui, sans-serif';
  for (const f of [0, 0.5, 1]) {
    const y = hgt - 16 - f * (hgt - 28);
    g.beginPath(); g.moveTo(48, y); g.lineTo(w, y); g.stroke();
    g.fillText(fmt(max * f), 2, y + 4);
  }
  g.fillText(title, 52, hgt - 2);
  for (const s of series) {
    g.strokeStyle = COLORS[s.k % COLORS.length];
    g.lineWidth = 2;
    g.setLineDash(s.dash ? [5, 4] : []);
    g.beginPath();
    let on = false;
    for (const p of s.pts) {
      if (p.v === null || p.v === undefined) { on = false; continue; }
      const x = 48 + ((p.t - (now - span)) / span) * (w - 48);
      const y = hgt - 16 - (p.v / max) * (hgt - 28);
      if (on) g.lineTo(x, y); else g.moveTo(x, y);
      on = true;
    }
    g.stroke();
  }
  g.setLineDash([]);
}

function drawCharts(charts, names) {
  drawChart(charts.done, names, [{ what: 'done' }], 'jobs done per second, last 2 minutes', rate);
  drawChart(charts.latency, names, [{ what: 'wait' }, { what: 'run', dash: true }],
    'p99 of recent jobs: wait (solid), run (dashed)', (v) => (v ? fmtUs(Math.round(v)) : '0'));
}

function needAdmin(what) {
  return el('div', { class: 'card' }, el('p', { class: 'muted', id: 'need-admin' },
    `${what} need an admin token. You can still look a job up by its id (top right).`));
}

async function viewOverview() {
  if (!isAdmin()) return show(el('h1', null, 'Overview'), needAdmin('Queue statistics'));
  const body = el('tbody');
  const charts = { done: el('canvas', { id: 'chart' }), latency: el('canvas', { id: 'latency-chart' }) };
  const legend = el('div', { class: 'legend' });
  const info = el('p', { class: 'muted' });
  show(el('h1', null, 'Overview'),
    el('div', { class: 'card' }, table(QUEUE_HEAD, [], { id: 'queues' })),
    el('div', { class: 'card' }, charts.done, charts.latency, legend), info);
  document.querySelector('#queues tbody').replaceWith(body);
  let pending = null;
  const refresh = async () => {
    try {
      const st = await api('GET', '/v1/queues');
      remember(st);
      body.replaceChildren(...st.queues.map(queueRow));
      if (!st.queues.length) body.append(el('tr', null, el('td', { colspan: QUEUE_HEAD.length, class: 'muted' }, 'No queues yet: enqueue a job.')));
      const names = st.queues.map((s) => s.queue);
      drawCharts(charts, names);
      legend.replaceChildren(...names.map((n, k) => el('span', null, el('i', { class: 'swatch', 'data-k': k }), n)));
      legend.querySelectorAll('i').forEach((i) => { i.style.background = COLORS[Number(i.dataset.k) % COLORS.length]; });
      info.textContent = `broker ${st.broker.version}: ${st.broker.jobs_stored} jobs stored, ${(st.workers || []).length} workers seen`;
    } catch (e) { info.replaceChildren(errorBox(e)); }
  };
  await refresh();
  S.view.timer = setInterval(refresh, 1000);
  S.view.onEvent = () => { if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 300); };
}

// ---- a queue ----

function jobRow(j) {
  const last = (j.errors || []).slice(-1)[0];
  return el('tr', { 'data-job': j.id },
    td(el('a', { href: `#/job/${j.id}` }, j.id)), td(j.spec ? j.spec.type : ''), td(pill(j.state)),
    num(`${j.attempt}/${j.max_attempts}`), td(fmtTime(j.created_us), 'wide'), td(fmtTime(j.finished_us), 'wide'),
    td(last ? last.message : '', 'error'));
}

const JOB_HEAD = ['Id', 'Type', 'State', { label: 'Attempt', num: 1 }, { label: 'Created', wide: 1 }, { label: 'Finished', wide: 1 }, 'Last error'];

async function viewQueue(name, params) {
  if (!isAdmin()) return show(el('h1', null, `Queue ${name}`), needAdmin('Queues and their jobs'));
  const st = params.get('state') || 'ready';
  const type = params.get('type') || '';
  const head = el('div', { class: 'card' });
  const list = el('tbody');
  const more = el('div');
  const bar = el('form', { class: 'bar', id: 'filter' },
    el('span', { class: 'tabs' }, STATES.map((s) => el('a', { href: `#/queue/${encodeURIComponent(name)}?${q({ state: s, type })}`, class: s === st ? 'on' : null, 'data-state': s }, s))),
    el('input', { id: 'type', placeholder: 'type', value: type, 'aria-label': 'type' }),
    el('button', { type: 'submit', class: 'quiet' }, 'Search'));
  bar.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/queue/${encodeURIComponent(name)}?${q({ state: st, type: document.getElementById('type').value.trim() })}`;
  });
  show(el('h1', null, `Queue ${name}`), head, bar, el('div', { class: 'card' }, table(JOB_HEAD, [], { id: 'jobs' })), more);
  document.querySelector('#jobs tbody').replaceWith(list);
  const refreshHead = async () => {
    try {
      const s = (await api('GET', `/v1/queues/${encodeURIComponent(name)}`)).queues[0];
      remember({ queues: [s] });
      const btn = !isAdmin() ? null : s.paused
        ? el('button', { id: 'resume', onclick: () => pause(name, false) }, 'Resume')
        : el('button', { id: 'pause', class: 'danger', onclick: () => pause(name, true) }, 'Pause');
      head.replaceChildren(table(QUEUE_HEAD, [queueRow(s)], { id: 'queue' }), el('div', { class: 'bar' }, btn));
    } catch (e) { head.replaceChildren(errorBox(e)); }
  };
  let paged = false; // a later page is shown: the list is left as it is
  const load = async (after) => {
    paged = paged || Boolean(after);
    try {
      const r = await api('GET', `/v1/jobs?${q({ queue: name, state: st, type, limit: 50, after })}`);
      if (!after) list.replaceChildren();
      list.append(...r.jobs.map(jobRow));
      if (!r.jobs.length && !after) list.append(el('tr', null, el('td', { colspan: 7, class: 'muted' }, `No ${st} jobs.`)));
      more.replaceChildren(r.next_after_id ? el('button', { class: 'quiet', onclick: () => load(r.next_after_id) }, 'More') : '');
    } catch (e) { more.replaceChildren(errorBox(e)); }
  };
  const refresh = () => Promise.all([refreshHead(), paged ? null : load('')]);
  let pending = null;
  await refresh();
  S.view.timer = setInterval(refresh, 2000);
  S.view.onEvent = (ev) => {
    if (ev.queue === name && !pending) pending = setTimeout(() => { pending = null; refresh(); }, 300);
  };
}

async function pause(name, on) {
  try {
    await api('POST', `/v1/queues/${encodeURIComponent(name)}/${on ? 'pause' : 'resume'}`);
  } catch (e) { alert(e.message); }
  render();
}

// ---- a job ----

// a bar filled to pct (0-100); the width is set through the CSSOM, which the CSP allows
function progressBar(pct) {
  const bar = el('div', { class: 'progress' }, el('div', { class: 'fill' }));
  bar.firstChild.style.width = `${Math.min(100, Math.max(0, pct))}%`;
  return bar;
}

// nodes with sep between them
const joined = (nodes, sep) => nodes.flatMap((n, i) => (i ? [sep, n] : [n]));

const jobLink = (id) => el('a', { href: `#/job/${id}` }, id);
const batchLink = (id) => el('a', { href: `#/batch/${id}` }, id);

// The batch whose callback this job is: its one parent result is named by
// the batch and holds the batch's counts ({"batch": id, ...}).
function callbackOf(f) {
  const p = (f.parent_results || [])[0];
  if (!p || f.parent_results.length !== 1 || !p.result) return '';
  try { return JSON.parse(atob(p.result)).batch === p.id ? p.id : ''; } catch (e) { return ''; }
}

// A job's batch, the batch it is the callback of, its parents and children
// (rows of jobDetails; none when it has no such family).
function familyRows(j) {
  const d = (j.spec && j.spec.depends) || {};
  const f = j.family || {};
  const ended = new Map((f.parent_results || []).map((p) => [p.id, p.state]));
  const parent = (id) => [jobLink(id), ended.has(id) ? [' ', pill(ended.get(id))] : ''];
  const waiting = Number(f.waiting_on) ? ` (waiting for ${f.waiting_on})` : '';
  const of = callbackOf(f);
  return [
    d.batch_id ? [el('dt', null, 'Batch'), el('dd', { id: 'job-batch' }, batchLink(d.batch_id))] : null,
    of ? [el('dt', null, 'Callback of'), el('dd', { id: 'job-callback-of' }, 'batch ', batchLink(of))] : null,
    (d.depends_on || []).length ? [el('dt', null, 'Parents'),
      el('dd', { id: 'job-parents' }, joined(d.depends_on.map(parent), ', '), waiting)] : null,
    (f.children || []).length ? [el('dt', null, 'Children'),
      el('dd', { id: 'job-children' }, joined(f.children.map(jobLink), ', '))] : null,
  ];
}

function jobDetails(j, extra) {
  const pct = Number(j.progress_pct);
  const bar = progressBar(pct);
  return el('dl', { id: 'job' },
    el('dt', null, 'Id'), el('dd', null, j.id),
    el('dt', null, 'Queue'), el('dd', null, el('a', { href: `#/queue/${encodeURIComponent(j.spec.queue)}` }, j.spec.queue)),
    el('dt', null, 'Type'), el('dd', null, j.spec.type),
    el('dt', null, 'State'), el('dd', { id: 'job-state' }, pill(j.state), j.cancel_requested ? ' (cancel requested)' : '', j.in_dlq ? ' (in dead letters)' : ''),
    el('dt', null, 'Attempt'), el('dd', null, `${j.attempt} of ${j.max_attempts}`),
    el('dt', null, 'Created'), el('dd', null, fmtTime(j.created_us)),
    el('dt', null, 'Runs at'), el('dd', null, fmtTime(j.run_at_us)),
    el('dt', null, 'Started'), el('dd', null, fmtTime(j.started_us)),
    el('dt', null, 'Finished'), el('dd', null, fmtTime(j.finished_us)),
    el('dt', null, 'Worker'), el('dd', null, j.worker_id || ''),
    j.dead_reason ? [el('dt', null, 'Dead because'), el('dd', null, j.dead_reason)] : null,
    pct || j.progress_note ? [el('dt', null, 'Progress'), el('dd', { id: 'progress' }, bar, `${pct}% ${j.progress_note || ''}`)] : null,
    familyRows(j),
    extra,
    el('dt', null, 'Payload'), el('dd', null, el('pre', { id: 'payload' }, payloadText(j.spec))),
    j.result ? [el('dt', null, 'Result'), el('dd', null, el('pre', { id: 'result' }, bytesText(j.result)))] : null);
}

function attempts(j) {
  const rows = (j.errors || []).map((e) => el('tr', { class: 'attempt' },
    num(e.attempt), td(fmtTime(e.at_us)), td(e.worker_id || '', 'wide'), td(e.message, 'error attempt-error'), td(e.retryable ? 'retryable' : 'final')));
  return rows.length ? table([{ label: 'Attempt', num: 1 }, 'At', { label: 'Worker', wide: 1 }, 'Error', ''], rows, { id: 'attempts' })
    : el('p', { class: 'muted' }, 'No attempt failed.');
}

function jobEvents(id) {
  const rows = S.events.filter((e) => e.id === id).map((e) => el('tr', null,
    num(e.seq), td(fmtTime(e.at_us)), td(pill(e.kind, e.kind)), num(e.attempt || ''), td(e.worker_id || '', 'wide'),
    td(e.error || (e.progress_pct ? `${e.progress_pct}% ${e.progress_note || ''}` : ''), 'error')));
  return rows.length ? table([{ label: 'Seq', num: 1 }, 'At', 'Event', { label: 'Attempt', num: 1 }, { label: 'Worker', wide: 1 }, ''], rows, { id: 'events' })
    : el('p', { class: 'muted' }, 'No event of this job seen since the dashboard opened.');
}

async function viewJob(id) {
  const box = el('div');
  show(el('h1', null, `Job ${id}`), box);
  const refresh = async () => {
    try {
      let j = await api('GET', `/v1/jobs/${encodeURIComponent(id)}`);
      // the broker keeps a summary of a job nq-dlq holds: show nq-dlq's whole job
      if (j.in_dlq && isAdmin()) j = await api('GET', `/v1/dlq/jobs/${id}`).then((d) => ({ ...d.job, in_dlq: true }), () => j);
      const acts = el('div', { class: 'bar' });
      if (LIVE.has(j.state) && !j.cancel_requested && can('producer'))
        acts.append(el('button', { id: 'cancel', class: 'danger', onclick: () => cancel(id) }, 'Cancel'));
      if (j.in_dlq && isAdmin()) acts.append(el('a', { href: `#/dlq/${id}` }, 'Open in dead letters'));
      box.replaceChildren(el('div', { class: 'card' }, jobDetails(j)), acts,
        el('h2', null, 'Attempts'), el('div', { class: 'card' }, attempts(j)),
        el('h2', null, 'Events'), el('div', { class: 'card' }, jobEvents(id)));
      return j;
    } catch (e) {
      if (e.status === 404 && isAdmin()) box.replaceChildren(el('p', null, 'Not in the broker. ', el('a', { href: `#/dlq/${id}` }, 'Look in the dead letters.')));
      else box.replaceChildren(errorBox(e));
      return null;
    }
  };
  await refresh();
  S.view.timer = setInterval(refresh, 3000);
  S.view.onEvent = (ev) => { if (ev.id === id) refresh(); };
}

async function cancel(id) {
  if (!confirm(`Cancel job ${id}?`)) return;
  try { await api('POST', `/v1/jobs/${id}/cancel`); } catch (e) { alert(e.message); }
  render();
}

// ---- dead letters ----

const REASONS = ['', 'max_attempts', 'non_retryable', 'expired', 'schema_rejected', 'deadline'];

async function viewDlq(params) {
  if (!isAdmin()) return show(el('h1', null, 'Dead letters'), needAdmin('Dead letters'));
  const f = { queue: params.get('queue') || '', type: params.get('type') || '', reason: params.get('reason') || '' };
  const stats = el('div', { class: 'card' });
  const list = el('tbody');
  const more = el('div');
  const form = el('form', { class: 'bar', id: 'dlq-filter' },
    el('input', { id: 'f-queue', placeholder: 'queue', value: f.queue, 'aria-label': 'queue' }),
    el('input', { id: 'f-type', placeholder: 'type', value: f.type, 'aria-label': 'type' }),
    el('select', { id: 'f-reason', 'aria-label': 'reason' }, REASONS.map((r) => el('option', { value: r, selected: r === f.reason }, r || 'any reason'))),
    el('button', { type: 'submit', class: 'quiet' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = (k) => document.getElementById(k).value.trim();
    location.hash = `#/dlq?${q({ queue: v('f-queue'), type: v('f-type'), reason: v('f-reason') })}`;
  });
  show(el('h1', null, 'Dead letters'), stats, form,
    el('div', { class: 'card' }, table(['Id', 'Queue', 'Type', 'Reason', { label: 'Dead at', wide: 1 }, { label: 'Replays', num: 1 }, 'Last error', ''], [], { id: 'dead' })), more);
  document.querySelector('#dead tbody').replaceWith(list);
  try {
    const s = await api('GET', '/v1/dlq/stats');
    stats.replaceChildren(el('p', null, `${s.total} dead jobs kept`),
      (s.entries || []).length ? table(['Queue', 'Reason', { label: 'Count', num: 1 }],
        s.entries.map((e) => el('tr', null, td(e.queue), td(e.reason), num(e.count))), { id: 'dlq-stats' }) : '');
  } catch (e) { stats.replaceChildren(errorBox(e)); return; }
  const load = async (before) => {
    try {
      const r = await api('GET', `/v1/dlq/jobs?${q({ ...f, limit: 50, before })}`);
      if (!before) list.replaceChildren();
      list.append(...(r.jobs || []).map(deadRow));
      if (!(r.jobs || []).length && !before) list.append(el('tr', null, el('td', { colspan: 8, class: 'muted' }, 'No dead jobs.')));
      more.replaceChildren(r.next_before_id ? el('button', { class: 'quiet', onclick: () => load(r.next_before_id) }, 'More') : '');
    } catch (e) { more.replaceChildren(errorBox(e)); }
  };
  await load('');
}

function deadRow(d) {
  const j = d.job;
  const last = (j.errors || []).slice(-1)[0];
  return el('tr', { 'data-dead': j.id },
    td(el('a', { href: `#/dlq/${j.id}` }, j.id)), td(j.spec.queue), td(j.spec.type), td(d.reason), td(fmtTime(d.dead_at_us), 'wide'),
    num(d.replays), td(last ? last.message : '', 'error'), td(deadButtons(j.id)));
}

function deadButtons(id) {
  return [el('button', { class: 'quiet replay', onclick: () => dlqAct(id, 'replay') }, 'Replay'), ' ',
    el('button', { class: 'danger purge', onclick: () => dlqAct(id, 'purge') }, 'Purge')];
}

async function dlqAct(id, what) {
  const ask = what === 'replay' ? `Replay job ${id}? It is enqueued again as a new job.` : `Purge job ${id}? It is deleted for good.`;
  if (!confirm(ask)) return;
  try {
    const r = await api(what === 'replay' ? 'POST' : 'DELETE', `/v1/dlq/jobs/${id}${what === 'replay' ? '/replay' : ''}`);
    const res = r.results && r.results[0];
    if (what === 'replay' && res && res.id) { location.hash = `#/job/${res.id}`; return; }
  } catch (e) { alert(e.message); }
  location.hash = '#/dlq';
  render();
}

async function viewDead(id) {
  if (!isAdmin()) return show(el('h1', null, 'Dead letters'), needAdmin('Dead letters'));
  const box = el('div');
  show(el('h1', null, `Dead job ${id}`), box);
  try {
    const d = (await api('GET', `/v1/dlq/jobs/${encodeURIComponent(id)}`)).job;
    const extra = [el('dt', null, 'Reason'), el('dd', null, d.reason), el('dt', null, 'Dead at'), el('dd', null, fmtTime(d.dead_at_us)),
      el('dt', null, 'Replays'), el('dd', null, String(d.replays), d.replayed_as ? [' (last as ', el('a', { href: `#/job/${d.replayed_as}` }, d.replayed_as), ')'] : '')];
    box.replaceChildren(el('div', { class: 'card' }, jobDetails(d.job, extra)), el('div', { class: 'bar' }, deadButtons(id)),
      el('h2', null, 'Attempts'), el('div', { class: 'card' }, attempts(d.job)));
  } catch (e) { box.replaceChildren(errorBox(e)); }
}

// ---- batches ----

const PAGE = 50;
const BATCHES_MAX = 1000; // the most GET /v1/batches answers at once
const ENDS = ['succeeded', 'dead', 'canceled', 'expired'];
const cnt = (v) => Number(v || 0);
const endedOf = (b) => ENDS.reduce((n, k) => n + cnt(b[k]), 0);

// open: jobs may join; sealed: it waits for its jobs; completed: every job
// ended and its callbacks were enqueued (canceled: completed after a cancel)
function batchState(b) {
  if (cnt(b.completed_us)) return b.cancel_requested ? 'canceled' : 'completed';
  if (b.cancel_requested) return 'canceling';
  return b.sealed ? 'sealed' : 'open';
}
const BATCH_PILL = { completed: 'succeeded', canceled: 'canceled', canceling: 'leased', sealed: 'leased', open: 'ready' };
const batchPill = (b) => pill(batchState(b), BATCH_PILL[batchState(b)]);
const donePct = (b) => (cnt(b.total) ? Math.floor((100 * endedOf(b)) / cnt(b.total)) : 0);

const CALLBACKS = [
  { k: 'on_complete', label: 'on_complete', when: 'every job ended' },
  { k: 'on_success', label: 'on_success', when: 'every job succeeded' },
];

// each callback: a link to its job once enqueued, else its name, muted
function callbackLinks(b) {
  const links = CALLBACKS.filter((c) => b[c.k]).map((c) => (b[`${c.k}_id`]
    ? el('a', { href: `#/job/${b[`${c.k}_id`]}`, class: 'callback', 'data-callback': c.k }, c.label)
    : el('span', { class: 'muted' }, c.label)));
  return joined(links, ', ');
}

const BATCH_HEAD = ['Id', 'State', { label: 'Jobs', num: 1 }, { label: 'Pending', num: 1 }, { label: 'Succeeded', num: 1 },
  { label: 'Dead', num: 1 }, { label: 'Canceled', num: 1 }, { label: 'Expired', num: 1 }, { label: 'Done', wide: 1 },
  { label: 'Created', wide: 1 }, { label: 'Completed', wide: 1 }, 'Callbacks'];

function batchRow(b) {
  return el('tr', { 'data-batch': b.id },
    td(batchLink(b.id)), td(batchPill(b), null, 'state'), num(cnt(b.total), 'total'), num(cnt(b.pending), 'pending'),
    ...ENDS.map((k) => num(cnt(b[k]), k)), td(progressBar(donePct(b)), 'wide'),
    td(fmtTime(b.created_us), 'wide'), td(fmtTime(b.completed_us), 'wide'), td(callbackLinks(b), null, 'callbacks'));
}

async function viewBatches() {
  if (!isAdmin()) return show(el('h1', null, 'Batches'), needAdmin('The list of batches'));
  const list = el('tbody');
  const more = el('div');
  show(el('h1', null, 'Batches'), el('div', { class: 'card' }, table(BATCH_HEAD, [], { id: 'batches' })), more,
    el('p', { class: 'muted' }, 'Oldest first. A completed batch is kept as long as a finished job (--result-ttl); one never sealed stays.'));
  document.querySelector('#batches tbody').replaceWith(list);
  let shown = PAGE; // every row shown is read again at each refresh
  const load = async () => {
    try {
      const r = await api('GET', `/v1/batches?${q({ limit: shown })}`);
      const bs = r.batches || [];
      list.replaceChildren(...bs.map(batchRow));
      if (!bs.length) list.append(el('tr', null, el('td', { colspan: BATCH_HEAD.length, class: 'muted' }, 'No batches yet.')));
      if (!r.next_after_id) more.replaceChildren();
      else if (shown < BATCHES_MAX) more.replaceChildren(el('button', { class: 'quiet', id: 'more', onclick: () => { shown += PAGE; load(); } }, 'More'));
      else more.replaceChildren(el('p', { class: 'muted' }, `The oldest ${BATCHES_MAX} batches; nqctl batch list --after ${r.next_after_id} shows the others.`));
    } catch (e) { more.replaceChildren(errorBox(e)); }
  };
  let pending = null;
  await load();
  S.view.timer = setInterval(load, 2000);
  S.view.onEvent = (ev) => {
    if (ev.kind === 'batch_completed' && !pending) pending = setTimeout(() => { pending = null; load(); }, 300);
  };
}

function batchDetails(b) {
  return el('dl', { id: 'batch' },
    el('dt', null, 'Id'), el('dd', null, b.id),
    el('dt', null, 'State'), el('dd', { id: 'batch-state' }, batchPill(b), b.sealed ? ' (sealed: no more jobs join it)' : ' (not sealed: jobs may join it)'),
    el('dt', null, 'Done'), el('dd', { id: 'batch-done' }, progressBar(donePct(b)), `${endedOf(b)} of ${cnt(b.total)} jobs ended`),
    el('dt', null, 'Created'), el('dd', null, fmtTime(b.created_us)),
    el('dt', null, 'Completed'), el('dd', null, fmtTime(b.completed_us)));
}

// The jobs by state: the pending ones by state while the broker counts
// them (at most 10,000 pending), then how the others ended.
function batchCounts(b) {
  const live = ['waiting', 'scheduled', 'ready', 'leased'];
  const byState = live.reduce((n, k) => n + cnt(b[k]), 0) === cnt(b.pending);
  const tile = (label, v, f) => el('div', { class: 'count', 'data-f': f }, el('b', null, String(v)), pill(label, f));
  const pending = byState ? live.map((k) => tile(k, cnt(b[k]), k)) : [tile('pending (too many to tell by state)', cnt(b.pending), 'pending')];
  return el('div', { class: 'counts', id: 'batch-counts' },
    tile('added', cnt(b.total), 'total'), ...pending, ...ENDS.map((k) => tile(k, cnt(b[k]), k)));
}

// Each callback with its job once enqueued (jobs: its state, by id).
function batchCallbacks(b, jobs) {
  const rows = CALLBACKS.filter((c) => b[c.k]).map((c) => {
    const id = b[`${c.k}_id`];
    const why = cnt(b.completed_us) ? 'not enqueued: not every job succeeded' : 'enqueued when the batch completes';
    return el('tr', { 'data-callback': c.k }, td(c.label), td(c.when, 'wide'), td(b[c.k].queue), td(b[c.k].type),
      td(id ? jobLink(id) : el('span', { class: 'muted' }, why), null, 'job'), td(jobs[id] ? pill(jobs[id]) : '', null, 'job-state'));
  });
  return rows.length ? table(['Callback', { label: 'When', wide: 1 }, 'Queue', 'Type', 'Job', 'State'], rows, { id: 'callbacks' })
    : el('p', { class: 'muted' }, 'No callbacks.');
}

async function callbackStates(b) {
  const ids = CALLBACKS.map((c) => b[`${c.k}_id`]).filter(Boolean);
  const got = await Promise.all(ids.map((id) => api('GET', `/v1/jobs/${id}`).then((j) => j.state, () => '')));
  return Object.fromEntries(ids.map((id, i) => [id, got[i]]));
}

async function viewBatch(id) {
  const box = el('div');
  show(el('h1', null, `Batch ${id}`), box);
  const refresh = async () => {
    try {
      const b = await api('GET', `/v1/batches/${encodeURIComponent(id)}`);
      const jobs = await callbackStates(b);
      const acts = el('div', { class: 'bar' });
      // the broker lets a producer cancel a batch too; the dashboard keeps a
      // cancel of many jobs at once to admins
      if (isAdmin() && !cnt(b.completed_us) && !b.cancel_requested)
        acts.append(el('button', { id: 'batch-cancel', class: 'danger', onclick: () => cancelBatch(b) }, 'Cancel batch'));
      box.replaceChildren(el('div', { class: 'card' }, batchDetails(b)), acts,
        el('h2', null, 'Jobs'), el('div', { class: 'card' }, batchCounts(b)),
        el('h2', null, 'Callbacks'), el('div', { class: 'card' }, batchCallbacks(b, jobs)));
    } catch (e) { box.replaceChildren(errorBox(e)); }
  };
  await refresh();
  S.view.timer = setInterval(refresh, 2000);
  S.view.onEvent = (ev) => { if (ev.kind === 'batch_completed' && ev.batch_id === id) refresh(); };
}

async function cancelBatch(b) {
  const left = cnt(b.pending);
  if (!confirm(`Cancel batch ${b.id}? It is sealed, and its ${left} jobs that have not ended are canceled (a running one at its next heartbeat).`)) return;
  try { await api('POST', `/v1/batches/${b.id}/cancel`); } catch (e) { alert(e.message); }
  render();
}

// ---- workers and cron ----

async function viewWorkers() {
  if (!isAdmin()) return show(el('h1', null, 'Workers'), needAdmin('Workers'));
  const box = el('div', { class: 'card' });
  show(el('h1', null, 'Workers'), box, el('p', { class: 'muted' }, 'Workers seen fetching in the last 5 minutes.'));
  const refresh = async () => {
    try {
      const ws = (await api('GET', '/v1/queues')).workers || [];
      box.replaceChildren(ws.length ? table(['Worker', 'Queues', { label: 'Free slots', num: 1 }, { label: 'Leased', num: 1 }, 'Last seen', { label: 'Fetches', num: 1, wide: 1 }],
        ws.map((w) => el('tr', { 'data-worker': w.worker_id }, td(w.worker_id), td((w.queues || []).join(', ')), num(w.free_slots, 'free'),
          num(w.leased, 'leased'), td(`${fmtAge(w.last_seen_us)} ago`), td(String(w.fetches), 'num wide'))), { id: 'workers' })
        : el('p', { class: 'muted' }, 'No worker fetched lately.'));
    } catch (e) { box.replaceChildren(errorBox(e)); }
  };
  await refresh();
  S.view.timer = setInterval(refresh, 2000);
}

async function viewCron() {
  if (!isAdmin()) return show(el('h1', null, 'Cron schedules'), needAdmin('Cron schedules'));
  const box = el('div', { class: 'card' });
  show(el('h1', null, 'Cron schedules'), box);
  try {
    const s = (await api('GET', '/v1/cron')).schedules || [];
    box.replaceChildren(s.length ? table(['Name', 'Cron', 'Queue', 'Type', 'Last tick', 'Next tick', 'Last job', ''],
      s.map((c) => el('tr', null, td(c.name), td(`${c.cron} ${c.zone || ''}`), td(c.queue), td(c.type), td(fmtTime(c.last_tick_us)), td(fmtTime(c.next_tick_us)),
        td(c.last_job_id ? [el('a', { href: `#/job/${c.last_job_id}` }, c.last_job_id), ' ', pill(c.last_job_state)] : ''),
        td(el('button', { class: 'quiet', onclick: () => trigger(c.name) }, 'Run now')))), { id: 'cron' })
      : el('p', { class: 'muted' }, 'No schedules (the queues file names none).'));
  } catch (e) { box.replaceChildren(errorBox(e)); }
}

async function trigger(name) {
  if (!confirm(`Enqueue ${name}'s job now?`)) return;
  try { location.hash = `#/job/${(await api('POST', `/v1/cron/${encodeURIComponent(name)}/trigger`)).id}`; } catch (e) { alert(e.message); }
}

// ---- routing ----

async function render() {
  if (S.view && S.view.timer) clearInterval(S.view.timer);
  S.view = {};
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const name = parts[0] || 'overview';
  const tab = name === 'batch' ? 'batches' : name;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('on', a.dataset.view === tab);
  document.getElementById('nav').hidden = !isAdmin();
  try {
    if (name === 'queue') await viewQueue(parts[1], params);
    else if (name === 'job') await viewJob(parts[1]);
    else if (name === 'dlq' && parts[1]) await viewDead(parts[1]);
    else if (name === 'dlq') await viewDlq(params);
    else if (name === 'batches') await viewBatches();
    else if (name === 'batch') await viewBatch(parts[1]);
    else if (name === 'workers') await viewWorkers();
    else if (name === 'cron') await viewCron();
    else await viewOverview();
  } catch (e) { show(errorBox(e)); }
  document.body.dataset.ready = name;
}

async function main() {
  document.getElementById('find').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = document.getElementById('find-id').value.trim();
    if (id) location.hash = `#/job/${id}`;
  });
  try { await signIn(); } catch (e) { show(errorBox(e)); return; }
  window.addEventListener('hashchange', render);
  if (can('producer')) stream();
  await render();
}

main();
