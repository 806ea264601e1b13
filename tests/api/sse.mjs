// A small Server-Sent Events reader over fetch, for the tests.
export async function openEvents(url, headers = {}) {
  const ctl = new AbortController();
  const r = await fetch(url, { headers, signal: ctl.signal });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const queue = [];
  let wake = null;
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = { comment: [] };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) ev.comment.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6));
          }
          queue.push(ev);
          if (wake) { wake(); wake = null; }
        }
      }
    } catch { /* aborted */ }
  })();
  return {
    status: r.status,
    headers: r.headers,
    // The next n events that carry data (comments are kept aside).
    async next(n, ms = 10000) {
      const out = [];
      const end = Date.now() + ms;
      while (out.length < n) {
        const ev = queue.shift();
        if (ev) { if (ev.data) out.push(ev); else this.comments.push(...ev.comment); continue; }
        if (Date.now() > end) throw new Error(`got ${out.length} of ${n} events`);
        await new Promise((res) => { wake = res; setTimeout(res, 100); });
      }
      return out;
    },
    comments: [],
    close() { ctl.abort(); },
  };
}
