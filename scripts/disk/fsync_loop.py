"""A disk test without Vltava (BENCHMARKS.md, eighth pass): N files, T threads; each thread takes
the next file, appends 128 KiB (or, with OVERWRITE=1, overwrites a preallocated file in place)
and fdatasyncs it, paced to 120 MB/s in all. Prints the fdatasync latency and in which tenth of
the 100-ms cycle the ones over 6 ms started.

Usage: python3 fsync_loop.py DIR FILES THREADS SECONDS
(e.g. with `sh -c 'while :; do :; done' &` twice beside it, then killed)."""
import os, sys, time, threading, collections
d = sys.argv[1]; N = int(sys.argv[2]); T = int(sys.argv[3]); secs = float(sys.argv[4])
RATE = 120e6; CHUNK = 128 * 1024
os.makedirs(d, exist_ok=True)
OVER = os.environ.get("OVERWRITE") == "1"
if OVER:
    fds = [os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC) for i in range(N)]
    size = int(RATE * secs / N) + 4 * CHUNK
    z = b"\0" * (1 << 20)
    for f in fds:
        for _ in range(size // len(z) + 1): os.write(f, z)
        os.fsync(f)
    pos = [0] * N
else:
    fds = [os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_TRUNC) for i in range(N)]
locks = [threading.Lock() for _ in range(N)]
buf = b"x" * CHUNK
ev = []; evl = threading.Lock()
t0 = time.monotonic(); stop = t0 + secs
counter = [0]; cl = threading.Lock()
def run():
    while True:
        with cl:
            k = counter[0]; counter[0] += 1
        due = t0 + k * CHUNK / RATE
        now = time.monotonic()
        if now >= stop: return
        if due > now: time.sleep(due - now)
        i = k % N
        with locks[i]:
            if OVER:
                os.pwrite(fds[i], buf, pos[i]); pos[i] += CHUNK
            else:
                os.write(fds[i], buf)
            s = time.monotonic(); os.fdatasync(fds[i]); e = time.monotonic()
        with evl: ev.append((s, (e - s) * 1000))
ths = [threading.Thread(target=run) for _ in range(T)]
[t.start() for t in ths]; [t.join() for t in ths]
for f in fds: os.close(f)
for i in range(N): os.unlink(f"{d}/f{i}")
durs = sorted(x for _, x in ev)
q = lambda p: durs[min(len(durs) - 1, int(p * len(durs)))]
print(f"{len(ev)} fsyncs, p50 {q(.5):.2f} p99 {q(.99):.2f} p99.9 {q(.999):.2f} max {durs[-1]:.2f} ms")
long = [s for s, x in ev if x > 6]
wall = [time.time() - time.monotonic() + s for s in long]
print("long:", len(long), "phase(10ms bins, monotonic mod 100ms):", sorted(collections.Counter(int((s*1000) % 100) // 10 for s in long).items()))
print("phase by wall clock:", sorted(collections.Counter(int((s*1000) % 100) // 10 for s in wall).items()))
