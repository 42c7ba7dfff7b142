"""Busy threads that record gaps in their own execution over 1 ms: a descheduled vCPU shows
as gaps. Usage: gaps.py THREADS SECONDS"""
import sys, time, os, multiprocessing as mp
def run(q, secs):
    t0 = time.monotonic(); last = t0; gaps = []
    while True:
        now = time.monotonic()
        if now - last > 0.001: gaps.append((last - t0, (now - last) * 1000))
        last = now
        if now - t0 > secs: break
    q.put(gaps)
if __name__ == "__main__":
    n, secs = int(sys.argv[1]), float(sys.argv[2])
    q = mp.Queue(); ps = [mp.Process(target=run, args=(q, secs)) for _ in range(n)]
    [p.start() for p in ps]; res = [q.get() for _ in ps]; [p.join() for p in ps]
    for i, g in enumerate(res):
        big = [x for x in g if x[1] > 3]
        tot = sum(d for _, d in g)
        print(f"proc {i}: {len(g)} gaps >1ms, {len(big)} >3ms, total {tot:.0f} ms of {secs*1000:.0f}; largest {sorted(d for _, d in g)[-5:] if g else []}")
        st = [s * 1000 for s, _ in big]
        print("   big-gap intervals ms:", [round(b - a) for a, b in zip(st, st[1:])][:30])
