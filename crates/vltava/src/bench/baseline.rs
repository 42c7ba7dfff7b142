//! This machine's ceilings for the workload just measured, run in the same bench run:
//!
//! - `sink`: the ideal single-node broker. Producers' bytes arrive over loopback TCP in requests
//!   of the size the broker saw, up to `in_flight` per connection, into reused buffers; one
//!   writer appends everything that has arrived to one file while one syncer fdatasyncs it in a
//!   loop (group commit, overlapping the appends) and acknowledges every request the sync
//!   covered. No protocol, no parsing, no index.
//! - `loopback`: raw TCP from a memory buffer to a reader, the most a consumer could receive.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;

use super::proc::MachineCpu;

/// Frames buffered between the sink's readers and its writer (bounded).
const SINK_QUEUE_FRAMES: usize = 256;
/// Largest request the sink accepts.
const SINK_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Buffer size of the loopback baseline's writes and reads.
const LOOPBACK_BUFFER_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub struct SinkResult {
    pub bytes: u64,
    pub elapsed: Duration,
    pub fsyncs: u64,
}

#[derive(Default)]
struct SinkQueue {
    frames: VecDeque<(usize, Vec<u8>)>,
    /// Buffers the writer is done with, for the readers to fill again.
    free: Vec<Vec<u8>>,
    readers_left: usize,
}

/// What the sink's writer hands its syncer.
#[derive(Default)]
struct Written {
    /// Bytes appended so far.
    end: u64,
    /// (connection, end of its request in the file), in file order, not yet acknowledged.
    unacked: VecDeque<(usize, u64)>,
    writer_done: bool,
}

/// Sends `total_bytes` over `connections` connections in `request_bytes` requests, at most
/// `in_flight` unacknowledged per connection, into a group-committing sink writing `dir/sink.log`.
pub fn sink(
    dir: &Path,
    connections: usize,
    total_bytes: u64,
    request_bytes: usize,
    in_flight: usize,
) -> anyhow::Result<SinkResult> {
    let connections = connections.max(1);
    let request_bytes = request_bytes.clamp(1, SINK_MAX_FRAME_BYTES);
    let started = Instant::now();
    let (fsyncs, bytes, _, _) = run_sink(dir, connections, None, |i, addr| {
        let share = total_bytes / connections as u64
            + u64::from((i as u64) < total_bytes % connections as u64);
        sink_client(addr, share, request_bytes, in_flight.max(1))
    })?;
    Ok(SinkResult {
        bytes,
        elapsed: started.elapsed(),
        fsyncs,
    })
}

/// Most records per request the per-record floor counts one by one (the rest are alike).
const FLOOR_MAX_RECORDS_PER_REQUEST: u64 = 1000;

/// The floor under end-to-end latency, µs, for the requests sent after `warmup`.
pub struct SinkLatency {
    /// Each request's acknowledgement: send → durable → ack.
    pub ack: Histogram<u64>,
    /// The block device under the sink's file while it ran (None on tmpfs).
    pub disk: Option<super::disk::Phase>,
    /// Each record's: the acknowledgement plus the record's wait for its request, its records
    /// taken as produced evenly over the `linger_ms` before the send (as a producer's latency,
    /// measured from the produce call, includes its linger).
    pub record: Histogram<u64>,
    /// The share of the cores' time the hypervisor took meanwhile (steal; None off Linux).
    pub steal_fraction: Option<f64>,
}

/// Threads that spin at the lowest priority (nice 19) until dropped: the cores are never idle,
/// yet any other thread that wants one gets it at once. On a virtual machine this shows what
/// the disk does while the guest keeps every core busy, as a loaded run's clients and broker
/// can, apart from any wait for a core inside the guest.
pub struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spinners {
    pub fn start(count: usize) -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .filter_map(|i| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("vltava-bench-spin-{i}"))
                    .spawn(move || {
                        // SAFETY: plain system calls on this thread's own id; no memory is shared.
                        unsafe {
                            let tid = libc::gettid();
                            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
                        }
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                    .ok()
            })
            .collect();
        Spinners { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Requests of `rate_per_s × linger_ms` records of `record_bytes`, one every `linger_ms` (as a
/// producer lingering that long sends them), into the same sink: see [`SinkLatency`]. With
/// `spinners` > 0, that many [`Spinners`] keep the cores busy meanwhile.
pub fn sink_latency(
    dir: &Path,
    rate_per_s: f64,
    record_bytes: usize,
    linger_ms: u64,
    (warmup, measured): (Duration, Duration),
    spinners: usize,
) -> anyhow::Result<SinkLatency> {
    let interval = Duration::from_millis(linger_ms.max(1));
    let records = (rate_per_s * interval.as_secs_f64()).max(1.0);
    let request_bytes = ((records * record_bytes as f64) as usize).clamp(1, SINK_MAX_FRAME_BYTES);
    let per_request = (records as u64).clamp(1, FLOOR_MAX_RECORDS_PER_REQUEST);
    let _spinning = (spinners > 0).then(|| Spinners::start(spinners));
    let sampler = super::disk::Sampler::start(dir);
    let cpu_before = MachineCpu::read();
    let (_, _, mut latencies, disk) = run_sink(dir, 1, sampler, |_, addr| {
        paced_sink_client(addr, request_bytes, per_request, interval, warmup, measured)
    })?;
    let mut floor = latencies
        .pop()
        .ok_or_else(|| anyhow!("the paced sink client returned nothing"))?;
    floor.disk = disk;
    floor.steal_fraction = MachineCpu::steal_fraction(cpu_before, MachineCpu::read());
    Ok(floor)
}

/// What [`run_sink`] returns: fsyncs, bytes written, the clients' results, the disk's phase.
type SinkRun<R> = (u64, u64, Vec<R>, Option<super::disk::Phase>);

/// Runs a sink on `dir/sink.log` for `connections` clients, each `client(index, address)` on its
/// own thread. Returns the fsyncs, the bytes written, the clients' results and what `disk`
/// sampled until the clients were done (before the file's removal, whose discards are not the
/// sink's I/O).
fn run_sink<R: Send>(
    dir: &Path,
    connections: usize,
    disk: Option<super::disk::Sampler>,
    client: impl Fn(usize, std::net::SocketAddr) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<SinkRun<R>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let path = dir.join("sink.log");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let client = &client;
    let result = std::thread::scope(|s| -> anyhow::Result<(u64, u64, Vec<R>)> {
        let clients: Vec<_> = (0..connections)
            .map(|i| s.spawn(move || client(i, addr)))
            .collect();
        let mut streams = Vec::new();
        for _ in 0..connections {
            let (stream, _) = listener.accept()?;
            let _ = stream.set_nodelay(true);
            streams.push(stream);
        }
        let queue = Arc::new((
            Mutex::new(SinkQueue {
                frames: VecDeque::new(),
                free: Vec::new(),
                readers_left: connections,
            }),
            Condvar::new(),
        ));
        let mut acks = Vec::new();
        for (i, stream) in streams.into_iter().enumerate() {
            acks.push(stream.try_clone()?);
            let queue = queue.clone();
            s.spawn(move || sink_reader(i, stream, &queue));
        }
        let written = Arc::new((Mutex::new(Written::default()), Condvar::new()));
        let sync_file = file.try_clone()?;
        let to_syncer = written.clone();
        let syncer = s.spawn(move || sink_syncer(sync_file, &to_syncer, acks));
        let appended = sink_writer(file, &queue, &written);
        {
            let mut w = written.0.lock().unwrap_or_else(|p| p.into_inner());
            w.writer_done = true;
        }
        written.1.notify_all();
        let fsyncs = syncer
            .join()
            .map_err(|_| anyhow!("the sink's syncer panicked"))??;
        let bytes = appended?;
        let mut results = Vec::new();
        for c in clients {
            results.push(c.join().map_err(|_| anyhow!("a sink client panicked"))??);
        }
        Ok((fsyncs, bytes, results))
    });
    let disk = disk.and_then(super::disk::Sampler::finish);
    let _ = std::fs::remove_file(&path);
    result.map(|(fsyncs, bytes, results)| (fsyncs, bytes, results, disk))
}

/// Sends a request of `request_bytes` every `interval` (sleeping in between; late requests go
/// out back to back) for `warmup + measured`, and records each acknowledgement's latency.
fn paced_sink_client(
    addr: std::net::SocketAddr,
    request_bytes: usize,
    records_per_request: u64,
    interval: Duration,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<SinkLatency> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut acks = s.try_clone()?;
    let sent_at: Mutex<VecDeque<Instant>> = Mutex::new(VecDeque::new());
    let started = Instant::now();
    let measure_from = started + warmup;
    let requests = ((warmup + measured).as_secs_f64() / interval.as_secs_f64()) as u64;
    // Record k of a request waited (k + 0.5) / n of the interval for it, µs.
    let waits_us: Vec<u64> = (0..records_per_request)
        .map(|k| {
            (interval.as_secs_f64() * 1e6 * (k as f64 + 0.5) / records_per_request as f64) as u64
        })
        .collect();
    std::thread::scope(|sc| -> anyhow::Result<SinkLatency> {
        let reader = sc.spawn(|| -> anyhow::Result<SinkLatency> {
            let mut h = super::workload::latency_histogram();
            let mut per_record = super::workload::latency_histogram();
            let mut ack = [0u8; 1];
            for _ in 0..requests {
                acks.read_exact(&mut ack)?;
                let now = Instant::now();
                let sent = sent_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_front();
                if let Some(t) = sent.filter(|t| *t >= measure_from) {
                    let ack_us = (now - t).as_micros().max(1) as u64;
                    let _ = h.record(ack_us);
                    for w in &waits_us {
                        let _ = per_record.record(ack_us + w);
                    }
                }
            }
            Ok(SinkLatency {
                ack: h,
                record: per_record,
                disk: None,
                steal_fraction: None,
            })
        });
        let payload = vec![b'x'; request_bytes];
        for i in 0..requests {
            let due = started + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            sent_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back(Instant::now());
            s.write_all(&(request_bytes as u32).to_be_bytes())?;
            s.write_all(&payload)?;
        }
        let h = reader
            .join()
            .map_err(|_| anyhow!("the paced client's reader panicked"))??;
        s.shutdown(std::net::Shutdown::Write)?;
        Ok(h)
    })
}

fn sink_client(
    addr: std::net::SocketAddr,
    total: u64,
    request_bytes: usize,
    in_flight: usize,
) -> anyhow::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut acks = s.try_clone()?;
    let payload = vec![b'x'; request_bytes];
    let (mut sent, mut waiting) = (0u64, 0usize);
    let mut ack = [0u8; 1];
    while sent < total {
        if waiting == in_flight {
            acks.read_exact(&mut ack)?;
            waiting -= 1;
        }
        let n = (total - sent).min(request_bytes as u64) as usize;
        s.write_all(&(n as u32).to_be_bytes())?;
        s.write_all(&payload[..n])?;
        sent += n as u64;
        waiting += 1;
    }
    for _ in 0..waiting {
        acks.read_exact(&mut ack)?;
    }
    // Closing tells the sink's reader this connection is done.
    s.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}

fn sink_reader(conn: usize, mut stream: TcpStream, queue: &(Mutex<SinkQueue>, Condvar)) {
    let (lock, cv) = queue;
    let mut len = [0u8; 4];
    while stream.read_exact(&mut len).is_ok() {
        let n = u32::from_be_bytes(len) as usize;
        if n > SINK_MAX_FRAME_BYTES {
            break;
        }
        let mut frame = {
            let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
            q.free.pop().unwrap_or_default()
        };
        frame.resize(n, 0);
        if stream.read_exact(&mut frame).is_err() {
            break;
        }
        let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
        while q.frames.len() >= SINK_QUEUE_FRAMES {
            q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.frames.push_back((conn, frame));
        drop(q);
        cv.notify_all();
    }
    let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
    q.readers_left -= 1;
    drop(q);
    cv.notify_all();
}

/// Appends whatever has arrived and tells the syncer how far each request reaches. Returns the
/// bytes written.
fn sink_writer(
    mut file: File,
    queue: &(Mutex<SinkQueue>, Condvar),
    written: &(Mutex<Written>, Condvar),
) -> anyhow::Result<u64> {
    let (lock, cv) = queue;
    let mut end = 0u64;
    loop {
        let batch: Vec<(usize, Vec<u8>)> = {
            let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
            while q.frames.is_empty() && q.readers_left > 0 {
                q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.frames.is_empty() {
                return Ok(end);
            }
            q.frames.drain(..).collect()
        };
        cv.notify_all();
        let mut reached = Vec::with_capacity(batch.len());
        for (conn, frame) in &batch {
            file.write_all(frame)?;
            end += frame.len() as u64;
            reached.push((*conn, end));
        }
        {
            let mut w = written.0.lock().unwrap_or_else(|p| p.into_inner());
            w.end = end;
            w.unacked.extend(reached);
        }
        written.1.notify_all();
        let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
        q.free.extend(batch.into_iter().map(|(_, f)| f));
    }
}

/// fdatasyncs in a loop while there is something new, then acknowledges (one byte) every
/// request the sync covered. Returns the fsyncs.
fn sink_syncer(
    file: File,
    written: &(Mutex<Written>, Condvar),
    mut acks: Vec<TcpStream>,
) -> anyhow::Result<u64> {
    let (lock, cv) = written;
    let (mut synced, mut fsyncs) = (0u64, 0u64);
    loop {
        let target = {
            let mut w = lock.lock().unwrap_or_else(|p| p.into_inner());
            while w.end == synced && !w.writer_done {
                w = cv.wait(w).unwrap_or_else(|p| p.into_inner());
            }
            if w.end == synced {
                return Ok(fsyncs);
            }
            w.end
        };
        file.sync_data()?;
        fsyncs += 1;
        synced = target;
        let covered: Vec<usize> = {
            let mut w = lock.lock().unwrap_or_else(|p| p.into_inner());
            let n = w.unacked.iter().take_while(|(_, e)| *e <= synced).count();
            w.unacked.drain(..n).map(|(c, _)| c).collect()
        };
        for conn in covered {
            if let Some(a) = acks.get_mut(conn) {
                a.write_all(&[1])?;
            }
        }
    }
}

/// Touches and frees `bytes` of memory (at most half of what is available), so that the
/// produce phase about to run finds recently freed pages for its page cache.
///
/// On this VM the host takes back guest memory that stays free for about two seconds (virtio
/// free page reporting), and the first touch of such a page costs ~13 µs against ~1 µs for a
/// page freed a moment ago: 1 GB written into the page cache takes ~3.5 s in the one case and
/// ~1 s in the other. Whichever of two compared phases came right after a large free would win
/// by that much, so the bench runs this before each of them.
pub fn recycle_memory(bytes: u64) {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let n = bytes.min(available / 2);
    let Ok(n) = usize::try_from(n) else {
        return;
    };
    let touched = vec![1u8; n];
    std::hint::black_box(&touched);
}

/// What [`loopback`] measured.
pub struct Loopback {
    pub elapsed: Duration,
    /// CPU the sending threads used: the least any server pays to put these bytes on loopback.
    pub sender_cpu_s: f64,
}

/// CPU time of the calling thread.
fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0.0;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Moves `total_bytes` over `connections` loopback connections from memory to memory.
pub fn loopback(connections: usize, total_bytes: u64) -> anyhow::Result<Loopback> {
    let connections = connections.max(1);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let started = Instant::now();
    let sender_cpu_s = std::thread::scope(|s| -> anyhow::Result<f64> {
        let readers: Vec<_> = (0..connections)
            .map(|_| {
                s.spawn(move || -> std::io::Result<u64> {
                    let mut c = TcpStream::connect(addr)?;
                    let mut buf = vec![0u8; LOOPBACK_BUFFER_BYTES];
                    let mut got = 0u64;
                    loop {
                        match c.read(&mut buf)? {
                            0 => return Ok(got),
                            n => got += n as u64,
                        }
                    }
                })
            })
            .collect();
        let mut senders = Vec::new();
        for i in 0..connections {
            let (mut stream, _) = listener.accept()?;
            let share = total_bytes / connections as u64
                + u64::from((i as u64) < total_bytes % connections as u64);
            senders.push(s.spawn(move || -> std::io::Result<f64> {
                let buf = vec![7u8; LOOPBACK_BUFFER_BYTES];
                let mut left = share;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    stream.write_all(&buf[..n])?;
                    left -= n as u64;
                }
                Ok(thread_cpu_s())
            }));
        }
        let mut got = 0;
        for r in readers {
            got += r
                .join()
                .map_err(|_| anyhow!("a loopback reader panicked"))??;
        }
        let mut sender_cpu_s = 0.0;
        for t in senders {
            sender_cpu_s += t
                .join()
                .map_err(|_| anyhow!("a loopback sender panicked"))??;
        }
        if got != total_bytes {
            return Err(anyhow!("loopback moved {got} of {total_bytes} bytes"));
        }
        Ok(sender_cpu_s)
    })?;
    Ok(Loopback {
        elapsed: started.elapsed(),
        sender_cpu_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_acknowledges_every_request_and_writes_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let r = sink(dir.path(), 2, 3 * 1024 * 1024 + 17, 100_000, 5).unwrap();
        assert_eq!(r.bytes, 3 * 1024 * 1024 + 17);
        assert!(r.fsyncs >= 1);
    }

    #[test]
    fn the_per_record_floor_adds_each_records_wait_for_its_request() {
        let dir = tempfile::tempdir().unwrap();
        // 10 records per 2 ms request for 0.2 s after none of warm-up: ~100 requests.
        let f = sink_latency(
            dir.path(),
            5000.0,
            100,
            2,
            (Duration::ZERO, Duration::from_millis(200)),
            0,
        )
        .unwrap();
        assert!(f.ack.len() >= 50, "{} requests", f.ack.len());
        assert_eq!(f.record.len(), 10 * f.ack.len());
        // Waits of 0.1 to 1.9 ms: the record at the median waited ~1 ms more than its request.
        // (The histograms keep 3 significant digits: 1% of slack on either side.)
        assert!(f.record.min() + f.record.min() / 100 >= f.ack.min() + 100);
        assert!(f.record.max() <= f.ack.max() + 1900 + f.record.max() / 100);
        assert!(f.record.value_at_quantile(0.5) > f.ack.value_at_quantile(0.5));
    }

    /// The nice values of this process's threads named `vltava-bench-sp…` (comm is cut at 15).
    fn spinner_nices() -> Vec<i64> {
        let mut out = Vec::new();
        for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("vltava-bench-sp") {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis; nice is the 19th field overall.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if let Some(n) = rest.split_whitespace().nth(16) {
                out.push(n.parse().unwrap());
            }
        }
        out
    }

    #[test]
    fn spinners_run_at_nice_19_until_dropped() {
        let s = Spinners::start(2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while spinner_nices() != vec![19, 19] {
            assert!(Instant::now() < deadline, "spinners: {:?}", spinner_nices());
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(s);
        assert!(spinner_nices().is_empty(), "{:?}", spinner_nices());
    }

    #[test]
    fn loopback_moves_every_byte() {
        let l = loopback(2, 5 * 1024 * 1024 + 3).unwrap();
        assert!(l.sender_cpu_s > 0.0 && l.elapsed > Duration::ZERO);
    }
}
