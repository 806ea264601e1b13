// Enqueues over the broker's JSON API and prints one bench line:
//   single: N single-job POSTs from C keep-alive connections (each
//           connection one request at a time): jobs/s, p50 and p99 of
//           one POST's round trip
//   batch:  POSTs of B jobs each, one connection: jobs/s
// usage: node http_load.mjs single|batch BASE_URL JOBS [CONNS|BATCH]
// Node's own http module, so it needs no packages.
import http from 'node:http';

const [mode, base, jobsArg, knob] = process.argv.slice(2);
const jobs = Number(jobsArg);
const url = new URL(base);
const payload = { data: 'x'.repeat(80) }; // about the 100 bytes of nq-bench

// body: an object, or its JSON text already made
function post(agent, path, body) {
  return new Promise((resolve, reject) => {
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request({
      host: url.hostname, port: url.port, path, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(text)
        : reject(new Error(`${res.statusCode} ${text.slice(0, 200)}`))));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const queue = `bench-http-${process.pid}`;

if (mode === 'single') {
  const conns = Number(knob || 16);
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const lat = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conns }, async () => {
    while (next < jobs) {
      next++;
      const s = process.hrtime.bigint();
      await post(agent, `/v1/queues/${queue}/jobs`, { type: 't', payload });
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  console.log(`bench http_single jobs=${jobs} conns=${conns} jobs_per_s=${Math.round(jobs / secs)} ` +
    `p50_ms=${pct(lat, 0.5).toFixed(3)} p99_ms=${pct(lat, 0.99).toFixed(3)}`);
  agent.destroy();
} else {
  const batch = Number(knob || 1000);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // made once: the client's own JSON work is not what is measured
  const body = JSON.stringify({ jobs: Array.from({ length: batch }, () => ({ type: 't', payload })) });
  const t0 = process.hrtime.bigint();
  let done = 0;
  while (done < jobs) {
    const r = JSON.parse(await post(agent, `/v1/queues/${queue}/jobs`, body));
    if (r.results.some((x) => x.status && x.status.code !== 'OK')) throw new Error('a job was refused');
    done += batch;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`bench http_batch jobs=${done} batch=${batch} jobs_per_s=${Math.round(done / secs)}`);
  agent.destroy();
}
