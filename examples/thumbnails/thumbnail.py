#!/usr/bin/env python3
"""The image.thumbnail handler, run by nq-worker once per job:

    nq-worker --queues thumbnails --concurrency 2 \\
      --handler 'image.thumbnail=python3 thumbnail.py --thumbs THUMBS'

nq-worker fetches the claim-checked image, checks its size and SHA-256
and hands its bytes on stdin. This makes THUMBS/<job id>/small.png,
medium.png and large.png (each fitting a square of 128, 320 and 800
pixels, never enlarged) with ImageMagick, in a directory of its own that is
renamed into place, so a job run twice leaves one set. An image
ImageMagick cannot read is a permanent failure (exit 65): the job goes
to nq-dlq at once with ImageMagick's words as its error, instead of
being retried.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

SIZES = {"small": 128, "medium": 320, "large": 800}
MAX_PIXELS = 50_000_000  # a decompression bomb is refused, not rendered


def tool(name):
    """Debian's ImageMagick 6 names its programs convert-im6.q16 and so on;
    `convert` and `identify` are alternatives pointing at them."""
    for cand in (f"{name}-im6.q16", name):
        path = shutil.which(cand)
        if path:
            return path
    sys.exit(f"{name} (ImageMagick) is not installed")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


def permanent(msg):
    print(msg, file=sys.stderr)
    sys.exit(65)


def identify(src):
    r = subprocess.run([tool("identify"), "-format", "%w %h %m\n", src + "[0]"],
                       capture_output=True, text=True)
    lines = r.stdout.split()
    if r.returncode != 0 or len(lines) < 3:
        # Some decoders (PNG's) fail without a word: then say what it was.
        what = os.environ.get("NQ_CONTENT_TYPE") or "data"
        size = os.path.getsize(src)
        why = r.stderr.strip().splitlines() or [f"{size} bytes of {what}, no picture in them"]
        permanent(f"not an image ImageMagick can read: {why[0]}")
    w, h, fmt = int(lines[0]), int(lines[1]), lines[2]
    if w * h > MAX_PIXELS:
        permanent(f"{fmt} image of {w}x{h} pixels: over {MAX_PIXELS} pixels, not rendered")
    return w, h, fmt


def render(src, out):
    """The three sizes in one read of the image (largest first)."""
    argv = [tool("convert"), src + "[0]", "-auto-orient", "-strip"]
    names = sorted(SIZES, key=SIZES.get, reverse=True)
    for name in names[:-1]:
        s = SIZES[name]
        argv += ["(", "+clone", "-thumbnail", f"{s}x{s}>", "-write",
                 os.path.join(out, f"{name}.png"), "+delete", ")"]
    s = SIZES[names[-1]]
    argv += ["-thumbnail", f"{s}x{s}>", os.path.join(out, f"{names[-1]}.png")]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"convert failed: {r.stderr.strip()[-500:]}", file=sys.stderr)
        sys.exit(1)  # retried: the image read fine, so this may pass


def main():
    # One thread per image: the pool's --concurrency is the parallelism.
    os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")
    p = argparse.ArgumentParser(description="the image.thumbnail handler")
    p.add_argument("--thumbs", required=True, help="the directory of the thumbnails")
    a = p.parse_args()
    job_id = os.environ["NQ_JOB_ID"]
    final = os.path.join(a.thumbs, job_id)
    os.makedirs(a.thumbs, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{job_id}.", dir=a.thumbs)
    try:
        src = os.path.join(work, "original")
        with open(src, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        w, h, fmt = identify(src)
        out = os.path.join(work, "out")
        os.mkdir(out)
        render(src, out)
        try:
            os.rename(out, final)
        except OSError:
            if not os.path.isdir(final):  # else: a run before this one finished
                raise
        sizes = {n: "%dx%d" % png_size(os.path.join(final, f"{n}.png")) for n in SIZES}
        print(json.dumps({"source": f"{fmt} {w}x{h}", **sizes}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
