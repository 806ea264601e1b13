"""examples/thumbnails, headless: a burst of real images (several formats
and sizes, one corrupt) uploaded over HTTP and dropped into the folder;
every thumbnail's dimensions checked, the corrupt one in nq-dlq with a
readable reason, the uploads answered quickly while the pool worked, and
the uploaders served in turns."""
import http.client
import json
import os
import shutil
import struct
import sys
import time
import urllib.parse
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from daemons import PYTHON, ROOT, call, check, fail, median, run_test, wait_job  # noqa: E402

EX = os.path.join(ROOT, "examples", "thumbnails")
SIZES = {"small": 128, "medium": 320, "large": 800}
CONVERT = shutil.which("convert-im6.q16") or shutil.which("convert")

# (user, name, width, height): alice's burst over HTTP, bob's by the drop
# folder, carol's over HTTP right after alice's, the last one corrupt.
ALICE = [("alice", f"a{i}.{ext}", w, h) for i, (ext, w, h) in enumerate([
    ("jpg", 1600, 1200), ("png", 900, 1200), ("webp", 1600, 400), ("gif", 640, 480),
    ("tiff", 800, 600), ("bmp", 640, 480), ("jpg", 300, 200), ("png", 100, 100),
    ("webp", 1080, 720)])]
BOB = [("bob", "b0.jpg", 1024, 768), ("bob", "b1.png", 500, 700)]
CAROL = [("carol", "c0.jpg", 1280, 720), ("carol", "c1.webp", 700, 700)]
CORRUPT = ("carol", "broken.png")


def generate(src):
    """Every image in one run of ImageMagick: a picture, cloned, sized and
    written in each format."""
    argv = [CONVERT, "-size", "1600x1600", "gradient:navy-orange",
            "-swirl", "120"]
    for _, name, w, h in ALICE + BOB + CAROL:
        argv += ["(", "+clone", "-resize", f"{w}x{h}!", "-write", os.path.join(src, name),
                 "+delete", ")"]
    argv += ["null:"]
    if os.spawnv(os.P_WAIT, CONVERT, argv):
        fail("ImageMagick could not make the test images")
    with open(os.path.join(src, ALICE[7][1]), "rb") as f:  # a PNG's signature and IHDR
        head = f.read(33)
    with open(os.path.join(src, CORRUPT[1]), "wb") as f:
        f.write(head + os.urandom(20000))  # then noise: a broken upload


def upload(base, user, path):
    """(seconds, answer) of one multipart POST, as curl -F sends it."""
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n{user}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{os.path.basename(path)}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    u = urllib.parse.urlsplit(base)
    t0 = time.monotonic()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("POST", "/uploads", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = c.getresponse()
    text = r.read()
    dt = time.monotonic() - t0
    c.close()
    if r.status != 202:
        fail(f"upload {path}: {r.status} {text!r}")
    return dt, json.loads(text)


def too_large(base):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.putrequest("POST", "/uploads")
    c.putheader("Content-Type", "multipart/form-data; boundary=x")
    c.putheader("Content-Length", str(64 << 20))
    c.endheaders()
    status = c.getresponse().status
    c.close()
    return status


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def fits(w, h, box):
    """What a thumbnail of w x h fitting box x box (never enlarged) measures."""
    if max(w, h) <= box:
        return w, h
    k = box / max(w, h)
    return round(w * k), round(h * k)


def main():
    if not CONVERT:
        print("SKIP: ImageMagick is not installed (scripts/deps.sh installs it)")
        sys.exit(77)
    run_test("thumbnails", run)


def run(ds):
    src, blobs, thumbs, drop = (os.path.join(ds.dir, d) for d in ("src", "blobs", "thumbs", "drop"))
    for d in (src, blobs, thumbs, os.path.join(drop, "bob")):
        os.makedirs(d)
    generate(src)
    ds.start_nq(os.path.join(EX, "queues.yaml"), blob_dir=blobs)
    _, base = ds.start_service("uploads", [PYTHON, f"{EX}/upload.py", "--listen", "127.0.0.1:0",
                                           "--nq", ds.http, "--blob-dir", blobs,
                                           "--thumbs", thumbs, "--drop", drop])
    ds.start_worker("pool", "thumbnails", 2,
                    [f"image.thumbnail={PYTHON} {EX}/thumbnail.py --thumbs {thumbs}"])

    # Bob drops his files (moved in whole, as a drop should be), then the burst.
    for _, name, _, _ in BOB:
        shutil.copy(os.path.join(src, name), os.path.join(drop, ".tmp-" + name))
        past = time.time() - 5
        os.utime(os.path.join(drop, ".tmp-" + name), (past, past))
        os.rename(os.path.join(drop, ".tmp-" + name), os.path.join(drop, "bob", name))
    t_burst = time.monotonic()
    times, jobs = [], {}
    for user, name, _, _ in ALICE + CAROL + [CORRUPT + (0, 0)]:
        dt, ans = upload(base, user, os.path.join(src, name))
        times.append(dt)
        jobs[name] = ans["job_id"]
    burst_s = time.monotonic() - t_burst
    dt, again = upload(base, "alice", os.path.join(src, ALICE[0][1]))
    check(again["duplicate"] and again["job_id"] == jobs[ALICE[0][1]],
          "the same image uploaded again by the same user is the same job")
    check(too_large(base) == 413, "an upload over the limit is refused before its body")

    sent = os.path.join(drop, "bob", ".sent")
    end = time.monotonic() + 20
    while len(os.listdir(sent) if os.path.isdir(sent) else []) < len(BOB):
        if time.monotonic() > end:
            fail(f"the drop folder was not picked up: {ds.log('uploads')}")
        time.sleep(0.05)
    for f in os.listdir(sent):
        job_id, name = f.split(".", 1)
        jobs[name] = job_id

    ended = {name: wait_job(ds.http, j, timeout=90) for name, j in jobs.items()}
    check_thumbs(thumbs, jobs, ended)
    check_dead(ds, ended[CORRUPT[1]])
    check_speed(times, burst_s, ended)
    check_turns(ended)
    left = [b for b in os.listdir(blobs) if b.startswith("nq-")]
    check(len(left) == len(jobs), f"one blob per job ({len(left)}): the duplicate's was removed")


def check_thumbs(thumbs, jobs, ended):
    bad = []
    for _, name, w, h in ALICE + BOB + CAROL:
        if ended[name]["state"] != "succeeded":
            fail(f"{name}: {ended[name]['state']} {ended[name].get('errors')}")
        for size, box in SIZES.items():
            got = png_size(os.path.join(thumbs, jobs[name], f"{size}.png"))
            want = fits(w, h, box)
            if max(abs(got[0] - want[0]), abs(got[1] - want[1])) > 1 or max(got) != max(want):
                bad.append(f"{name} {size}: {got[0]}x{got[1]}, want {want[0]}x{want[1]}")
    n = len(ALICE + BOB + CAROL)
    check(not bad, f"{n} images, 3 thumbnails each, every one of the right size {bad[:3]}")


def check_dead(ds, job):
    check(job["state"] == "dead" and job["attempt"] == 1,
          f"the corrupt image failed for good on its first attempt ({job['state']})")
    end = time.monotonic() + 20
    while True:
        st, entry = call(ds.http, "GET", f"/v1/dlq/jobs/{job['id']}")
        if st == 200 or time.monotonic() > end:
            break
        time.sleep(0.1)
    check(st == 200, f"the corrupt image's job is in nq-dlq ({st})")
    msg = entry["job"]["errors"][-1]["message"]
    print(f"nq-dlq: reason {entry['reason']}, error: {msg}", flush=True)
    check(entry["reason"] == "non_retryable" and "not an image ImageMagick can read" in msg
          and "image/png" in msg, "its reason says what was wrong with the image")


def check_speed(times, burst_s, ended):
    """Relative bounds only: a loaded machine slows both sides."""
    first = min(j["created_us"] for j in ended.values())
    last = max(j["finished_us"] for j in ended.values())
    pool_s = (last - first) / 1e6
    runs = [(j["finished_us"] - j["started_us"]) / 1e6 for j in ended.values()
            if j["state"] == "succeeded"]
    print(f"uploads: p50 {median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms, "
          f"burst of {len(times)} in {burst_s:.2f} s; a thumbnail job p50 "
          f"{median(runs) * 1000:.0f} ms, the pool took {pool_s:.2f} s", flush=True)
    check(median(times) < median(runs) / 2, "an upload is answered without waiting for its job")
    check(burst_s < pool_s / 2, "the burst was answered well before the pool was through it")


def check_turns(ended):
    """Carol uploaded after Alice's burst; with turns between uploaders her
    images do not wait for all of Alice's."""
    carol_in = max(ended[n]["created_us"] for _, n, _, _ in CAROL)
    alice_waiting = [n for _, n, _, _ in ALICE if ended[n]["started_us"] > carol_in]
    if len(alice_waiting) < 4:
        print(f"turns not judged: only {len(alice_waiting)} of Alice's images still "
              "waited when Carol's came", flush=True)
        return
    carol_done = max(ended[n]["started_us"] for _, n, _, _ in CAROL)
    alice_last = max(ended[n]["started_us"] for _, n, _, _ in ALICE)
    check(carol_done < alice_last, f"Carol's images started while {len(alice_waiting)} of "
          "Alice's, uploaded before, still waited: uploaders take turns")


if __name__ == "__main__":
    main()
