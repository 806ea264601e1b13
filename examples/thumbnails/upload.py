#!/usr/bin/env python3
"""The upload side of the thumbnails example: takes an image, hands it to
nq by claim check, answers at once.

    curl -F user=ada -F image=@cat.jpg http://127.0.0.1:7491/uploads
    -> 202 {"job_id": "...", "thumbnails": "THUMBS/<job_id>/", "duplicate": false}
    cp cat.jpg DROP/ada/     # the same, by a file dropped into DROP/<user>/

An image is far larger than a job should be, so it goes by claim check:
written whole to the blob directory that nq-broker (--blob-dir) and the
workers share, the job carrying only its reference, size and SHA-256.
The uploader is the job's group_key, so that the queue's fairness takes
turns between uploaders; user and image digest make the unique key, so
the same image sent twice is made once. Standard library only.
"""
import argparse
import email.parser
import email.policy
import hashlib
import json
import mimetypes
import os
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_UPLOAD = 32 << 20
USER = re.compile(r"[A-Za-z0-9._-]{1,64}")


def write_blob(blob_dir, data):
    """The blob's path: written under a temporary name, fsync'd, renamed
    to a blob name (nq- and 32 hex digits) and the directory fsync'd, as
    libnq does, so that the broker may delete it with its job."""
    name = "nq-" + secrets.token_hex(16)
    tmp, final = os.path.join(blob_dir, f".{name}.tmp"), os.path.join(blob_dir, name)
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, final)
    fd = os.open(blob_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


class Nq:
    def __init__(self, url, blob_dir, thumbs, token=None, queue="thumbnails"):
        self.url, self.token, self.queue = url.rstrip("/"), token, queue
        self.blob_dir, self.thumbs = os.path.realpath(blob_dir), thumbs

    def enqueue_image(self, user, filename, data):
        """{"job_id", "duplicate", "thumbnails"}; raises OSError or HTTPError."""
        digest = hashlib.sha256(data).hexdigest()
        path = write_blob(self.blob_dir, data)
        spec = {"type": "image.thumbnail", "group_key": user,
                "idempotency_key": f"{user}/{digest}",
                "content_type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
                "payload_ref": "file://" + urllib.parse.quote(path, safe="/._~-"),
                "payload_size": len(data), "payload_sha256": digest}
        try:
            job = self.post(spec)
        except urllib.error.HTTPError:
            os.unlink(path)  # refused: no job holds it. Without an answer the
            raise            # job may exist, and the blob stays.
        if job.get("duplicate"):
            os.unlink(path)  # the first upload's blob is the job's
        return {"job_id": job["id"], "duplicate": job.get("duplicate", False),
                "thumbnails": os.path.join(self.thumbs, job["id"]) + "/"}

    def post(self, spec):
        req = urllib.request.Request(f"{self.url}/v1/queues/{self.queue}/jobs", method="POST",
                                     data=json.dumps(spec).encode(),
                                     headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


def form_fields(content_type, body):
    """{name: (filename, bytes)} of a multipart/form-data body."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    out = {}
    for part in msg.iter_parts() if msg.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[name] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return out


class Uploads(BaseHTTPRequestHandler):
    nq = None
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/uploads":
            return self.answer(404, {"error": "POST /uploads"})
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_UPLOAD:
            self.close_connection = True
            return self.answer(413, {"error": f"at most {MAX_UPLOAD >> 20} MiB"})
        fields = form_fields(self.headers.get("Content-Type", ""), self.rfile.read(n))
        user = fields.get("user", ("", b""))[1].decode(errors="replace")
        filename, image = fields.get("image", ("", b""))
        if not USER.fullmatch(user) or not image:
            return self.answer(400, {"error": "fields: user (A-Z a-z 0-9 . _ -) and image (a file)"})
        try:
            self.answer(202, self.nq.enqueue_image(user, filename, image))
        except urllib.error.HTTPError as e:
            self.answer(503, {"error": "nq: " + e.read().decode(errors="replace")})
        except OSError as e:
            self.answer(503, {"error": f"nq unreachable: {e}"})

    def log_message(self, fmt, *args):
        pass


def watch(nq, drop, period=0.2):
    """Uploads each file dropped into DROP/<user>/, then moves it to
    DROP/<user>/.sent/ with its job id in the name."""
    while True:
        for user in sorted(os.listdir(drop)):
            d = os.path.join(drop, user)
            if not USER.fullmatch(user) or not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                path = os.path.join(d, name)
                if name.startswith(".") or not os.path.isfile(path) or \
                        time.time() - os.stat(path).st_mtime < 0.5:
                    continue  # hidden, or still being written
                try:
                    with open(path, "rb") as f:
                        data = f.read(MAX_UPLOAD + 1)
                    if len(data) > MAX_UPLOAD:
                        raise ValueError(f"over {MAX_UPLOAD >> 20} MiB")
                    job = nq.enqueue_image(user, name, data)
                except (OSError, ValueError) as e:
                    print(f"drop {user}/{name}: not sent: {e}", flush=True)
                    continue
                os.makedirs(os.path.join(d, ".sent"), exist_ok=True)
                os.rename(path, os.path.join(d, ".sent", f"{job['job_id']}.{name}"))
                print(f"drop {user}/{name}: job {job['job_id']}", flush=True)
        time.sleep(period)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:7491", help="ADDR:PORT (port 0: any)")
    p.add_argument("--nq", default="http://127.0.0.1:7480", help="nq-broker's HTTP address")
    p.add_argument("--blob-dir", required=True, help="the claim check's directory (nq-broker's --blob-dir)")
    p.add_argument("--thumbs", required=True, help="where the workers write the thumbnails")
    p.add_argument("--drop", help="a folder to watch: DROP/<user>/<image>")
    p.add_argument("--token-file", help="a producer token of nq")
    p.add_argument("--ready-file", help="written with the bound address once listening")
    a = p.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    Uploads.nq = Nq(a.nq, a.blob_dir, os.path.realpath(a.thumbs), token)
    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), Uploads)
    srv.daemon_threads = True
    if a.drop:
        os.makedirs(a.drop, exist_ok=True)
        threading.Thread(target=watch, args=(Uploads.nq, a.drop), daemon=True).start()
    addr = "http://%s:%d" % srv.server_address[:2]
    print(f"uploads listening on {addr}", flush=True)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(addr + "\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
