//! The block device under the data directory, sampled from `/proc/diskstats` while a phase
//! runs, so a latency tail can be set beside what the device did in the same minutes: how long
//! its writes, cache flushes and discards took, and its slowest short windows.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// How often the device's counters are read.
pub const WINDOW_MS: u64 = 50;
/// A window whose completed I/Os took more than this on average counts as slow.
pub const SLOW_WINDOW_MS: f64 = 5.0;

/// Cumulative counters of one device (milliseconds are the kernel's summed I/O times).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub writes: u64,
    pub write_ms: u64,
    pub flushes: u64,
    pub flush_ms: u64,
    pub discards: u64,
    pub discard_ms: u64,
}

impl Counters {
    fn ios(&self) -> u64 {
        self.writes + self.flushes + self.discards
    }

    fn io_ms(&self) -> u64 {
        self.write_ms + self.flush_ms + self.discard_ms
    }

    /// `self - earlier`, saturating (a counter never runs backwards unless the device was reset).
    fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            writes: self.writes.saturating_sub(earlier.writes),
            write_ms: self.write_ms.saturating_sub(earlier.write_ms),
            flushes: self.flushes.saturating_sub(earlier.flushes),
            flush_ms: self.flush_ms.saturating_sub(earlier.flush_ms),
            discards: self.discards.saturating_sub(earlier.discards),
            discard_ms: self.discard_ms.saturating_sub(earlier.discard_ms),
        }
    }
}

/// What the device did over a phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Phase {
    pub device: String,
    pub total: Counters,
    pub windows: u64,
    /// Windows whose completed I/Os took over [`SLOW_WINDOW_MS`] on average.
    pub slow_windows: u64,
    /// The highest average I/O time of one window, ms.
    pub worst_window_ms: f64,
}

impl Phase {
    /// Folds in one window: the counters at its start and at its end.
    pub fn add_window(&mut self, start: &Counters, end: &Counters) {
        let d = end.since(start);
        self.total.writes += d.writes;
        self.total.write_ms += d.write_ms;
        self.total.flushes += d.flushes;
        self.total.flush_ms += d.flush_ms;
        self.total.discards += d.discards;
        self.total.discard_ms += d.discard_ms;
        self.windows += 1;
        if d.ios() == 0 {
            return;
        }
        let mean_ms = d.io_ms() as f64 / d.ios() as f64;
        if mean_ms > SLOW_WINDOW_MS {
            self.slow_windows += 1;
        }
        self.worst_window_ms = self.worst_window_ms.max(mean_ms);
    }

    pub fn text(&self) -> String {
        let mean = |n: u64, ms: u64| if n == 0 { 0.0 } else { ms as f64 / n as f64 };
        let t = &self.total;
        format!(
            "the disk ({}): {} writes (mean {:.2} ms), {} cache flushes (mean {:.2} ms), {} discards (mean {:.2} ms); {}-ms windows whose I/O took over {SLOW_WINDOW_MS} ms on average: {} of {}, the worst {:.1} ms",
            self.device,
            t.writes,
            mean(t.writes, t.write_ms),
            t.flushes,
            mean(t.flushes, t.flush_ms),
            t.discards,
            mean(t.discards, t.discard_ms),
            WINDOW_MS,
            self.slow_windows,
            self.windows,
            self.worst_window_ms
        )
    }

    pub fn json(&self) -> Value {
        let t = &self.total;
        json!({
            "device": self.device,
            "writes": t.writes, "write_ms": t.write_ms,
            "flushes": t.flushes, "flush_ms": t.flush_ms,
            "discards": t.discards, "discard_ms": t.discard_ms,
            "window_ms": WINDOW_MS,
            "windows": self.windows,
            "slow_windows": self.slow_windows,
            "slow_window_ms": SLOW_WINDOW_MS,
            "worst_window_ms": self.worst_window_ms,
        })
    }
}

/// The `(major, minor)` of the device holding `path` (its file system's `st_dev`).
fn device_of(path: &Path) -> Option<(i32, i32)> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    // Major 0 is the kernel's anonymous devices: tmpfs, overlay and the like, no disk below.
    (major != 0).then_some((major as i32, minor as i32))
}

fn read(major: i32, minor: i32) -> Option<(String, Counters)> {
    let d = procfs::diskstats()
        .ok()?
        .into_iter()
        .find(|d| d.major == major && d.minor == minor)?;
    Some((
        d.name,
        Counters {
            writes: d.writes,
            write_ms: d.time_writing,
            flushes: d.flushes.unwrap_or(0),
            flush_ms: d.time_flushing.unwrap_or(0),
            discards: d.discards.unwrap_or(0),
            discard_ms: d.time_discarding.unwrap_or(0),
        },
    ))
}

/// Reads the device's counters every [`WINDOW_MS`] on its own thread until [`Sampler::finish`]
/// (or until dropped, when a phase fails); it keeps only the running [`Phase`], so its memory
/// does not grow with the phase.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Phase>>,
}

impl Sampler {
    /// `None` when `path` is on no block device listed in `/proc/diskstats` (tmpfs, say).
    pub fn start(path: &Path) -> Option<Sampler> {
        let (major, minor) = device_of(path)?;
        let (device, first) = read(major, minor)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vltava-bench-disk".into())
            .spawn(move || {
                let mut phase = Phase {
                    device,
                    ..Phase::default()
                };
                let mut prev = first;
                loop {
                    let last = stopping.load(Ordering::Acquire);
                    if !last {
                        std::thread::sleep(Duration::from_millis(WINDOW_MS));
                    }
                    if let Some((_, now)) = read(major, minor) {
                        phase.add_window(&prev, &now);
                        prev = now;
                    }
                    if last {
                        return phase;
                    }
                }
            })
            .ok()?;
        Some(Sampler {
            stop,
            thread: Some(thread),
        })
    }

    pub fn finish(mut self) -> Option<Phase> {
        self.stop.store(true, Ordering::Release);
        self.thread.take()?.join().ok()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(writes: u64, write_ms: u64, flushes: u64, flush_ms: u64) -> Counters {
        Counters {
            writes,
            write_ms,
            flushes,
            flush_ms,
            ..Counters::default()
        }
    }

    #[test]
    fn windows_are_summed_and_a_slow_one_is_counted() {
        let mut p = Phase::default();
        let (a, b, c3, d) = (
            c(100, 20, 50, 20),
            c(240, 48, 96, 38),  // 186 I/Os in 46 ms: 0.25 ms each
            c(248, 90, 98, 43),  // 10 I/Os in 47 ms: 4.7 ms each, not slow
            c(249, 123, 98, 43), // one write of 33 ms: slow
        );
        p.add_window(&a, &b);
        p.add_window(&b, &c3);
        p.add_window(&c3, &d);
        p.add_window(&d, &d); // nothing completed: not slow, still a window
        assert_eq!(p.windows, 4);
        assert_eq!(p.slow_windows, 1);
        assert!((p.worst_window_ms - 33.0).abs() < 1e-9);
        assert_eq!(p.total, c(149, 103, 48, 23));
        assert!(
            p.text().contains("1 of 4, the worst 33.0 ms"),
            "{}",
            p.text()
        );
    }

    #[test]
    fn discards_count_toward_a_window() {
        let mut p = Phase::default();
        let start = Counters::default();
        let end = Counters {
            writes: 8,
            write_ms: 42,
            discards: 3,
            discard_ms: 36,
            ..Counters::default()
        };
        p.add_window(&start, &end);
        assert_eq!(p.slow_windows, 1);
        assert!((p.worst_window_ms - 78.0 / 11.0).abs() < 1e-9);
        assert_eq!(p.json()["discard_ms"], 36);
    }

    #[test]
    fn a_counter_that_ran_backwards_adds_nothing() {
        let mut p = Phase::default();
        p.add_window(&c(10, 10, 0, 0), &c(5, 5, 0, 0));
        assert_eq!(p.total, Counters::default());
        assert_eq!(p.slow_windows, 0);
    }

    #[test]
    fn tmpfs_has_no_device_and_a_disk_directory_is_sampled() {
        if Path::new("/dev/shm").is_dir() {
            assert!(device_of(Path::new("/dev/shm")).is_none());
        }
        // Wherever the build directory is, sampling it must not fail when it has a device.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        if let Some(s) = Sampler::start(here) {
            let p = s.finish().expect("the sampler returns its phase");
            assert!(p.windows >= 1);
            assert!(!p.device.is_empty());
        }
    }

    #[test]
    fn a_dropped_sampler_stops_its_thread() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        if let Some(mut s) = Sampler::start(here) {
            let thread = s.thread.take().expect("a running sampler has its thread");
            drop(s);
            let p = thread.join().expect("the sampler thread ends once dropped");
            assert!(p.windows >= 1);
        }
    }
}
