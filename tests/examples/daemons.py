"""Starts the real nq daemons for the examples' tests: the api and nq-dlq on
ipc:// files in the test's directory, everything else on ports the daemons
pick (port 0) and report in their ready files. Python standard library."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("NQ_BUILD_DIR", os.path.join(ROOT, "build"))
BIN = {
    "broker": os.environ.get("NQ_BROKER", os.path.join(BUILD, "broker/nq-broker")),
    "dlq": os.environ.get("NQ_DLQ_BIN", os.path.join(BUILD, "dlq/nq-dlq")),
    "worker": os.environ.get("NQ_WORKER", os.path.join(BUILD, "worker/nq-worker")),
}
PYTHON = sys.executable


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}", flush=True)


def read_ready(path, proc, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            fail(f"{what} exited {proc.returncode}")
        if os.path.exists(path):
            out = {}
            for line in open(path).read().splitlines():
                k, _, v = line.partition("=")
                out[k] = v
            return out
        time.sleep(0.025)
    fail(f"{what} wrote no ready file {path}")


class Daemons:
    """One test's services; stop() ends every one still running."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"nq-{name}-")
        self.procs = []
        self.env = dict(os.environ, NQ_LOG_LEVEL="warn")

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             env=dict(self.env, **(env or {})))
        p.nq_name = name
        self.procs.append(p)
        return p

    def start_nq(self, queues_config, blob_dir=None):
        d = self.dir
        self.api = f"ipc://{d}/api.sock"
        dlq_sock = f"ipc://{d}/dlq.sock"
        self.dlq = self.start("dlq", [BIN["dlq"], "--listen", dlq_sock, "--broker", self.api,
                                      "--http", "127.0.0.1:0", "--data-dir", f"{d}/dlq",
                                      "--sync", "none", "--ready-file", f"{d}/dlq.ready"])
        read_ready(f"{d}/dlq.ready", self.dlq, "nq-dlq")
        argv = [BIN["broker"], "--api", self.api, "--work", "tcp://127.0.0.1:0",
                "--results", "tcp://127.0.0.1:0", "--events", "tcp://127.0.0.1:0",
                "--http", "127.0.0.1:0", "--dlq", dlq_sock, "--data-dir", f"{d}/broker",
                "--sync", "none", "--lease-check", "100ms", "--queues-config", queues_config,
                "--ready-file", f"{d}/broker.ready"]
        if blob_dir:
            argv += ["--blob-dir", blob_dir]
        self.broker = self.start("broker", argv)
        self.ready = read_ready(f"{d}/broker.ready", self.broker, "nq-broker")
        http = self.ready["http"]
        self.http = (http if http.startswith("http") else "http://" + http).rstrip("/")

    def start_worker(self, name, queues, concurrency, handlers, env=None):
        argv = [BIN["worker"], "--work", self.ready["work"], "--results", self.ready["results"],
                "--queues", queues, "--concurrency", str(concurrency), "--http", "",
                "--heartbeat", "1s", "--lease", "10s"]
        for h in handlers:
            argv += ["--handler", h]
        return self.start(name, argv, env)

    def start_service(self, name, argv):
        ready = os.path.join(self.dir, f"{name}.ready")
        p = self.start(name, argv + ["--ready-file", ready])
        end = time.monotonic() + 20
        while not os.path.exists(ready):
            if p.poll() is not None or time.monotonic() > end:
                fail(f"{name} did not start: {self.log(name)}")
            time.sleep(0.025)
        return p, open(ready).read().strip()

    def log(self, name):
        try:
            return open(os.path.join(self.dir, f"{name}.log"), errors="replace").read()[-3000:]
        except OSError:
            return ""

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def run_test(name, run):
    """Runs run(Daemons) and stops the daemons; the directory (logs,
    stores) is removed when it passed and kept, named, when it failed."""
    ds = Daemons(name)
    try:
        run(ds)
    except BaseException:
        print(f"logs and stores kept in {ds.dir}", flush=True)
        raise
    finally:
        ds.stop_all()
    shutil.rmtree(ds.dir)
    print(f"example {name}: passed", flush=True)


def call(base, method, path, body=None, timeout=30):
    """(status, parsed JSON) of one HTTP call."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"text": text.decode(errors="replace")}


def wait_job(base, job_id, timeout=60):
    """The job at its end, or fail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st, job = call(base, "GET", f"/v1/jobs/{job_id}/wait?timeout=5s")
        if st == 200 and job["state"] in ("succeeded", "dead", "canceled", "expired"):
            return job
        time.sleep(0.05)
    fail(f"job {job_id} did not end within {timeout} s")


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2]


def quantile(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]
