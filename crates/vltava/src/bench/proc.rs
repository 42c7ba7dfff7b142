//! The broker under test: a `vltava serve` child process on free loopback ports (or an external
//! cluster), its CPU time and memory read from `/proc`, and its Prometheus metrics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use vltava_client::{Client, ClientOptions};

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU time and memory of one process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub cpu_s: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

impl ProcStats {
    pub fn read(pid: u32) -> anyhow::Result<ProcStats> {
        let p = procfs::process::Process::new(pid as i32)
            .with_context(|| format!("no process {pid}"))?;
        let stat = p.stat()?;
        let status = p.status()?;
        let ticks = procfs::ticks_per_second() as f64;
        Ok(ProcStats {
            cpu_s: (stat.utime + stat.stime) as f64 / ticks,
            rss_bytes: status.vmrss.unwrap_or(0) * 1024,
            peak_rss_bytes: status.vmhwm.unwrap_or(0) * 1024,
        })
    }
}

/// This machine's CPU time (`/proc/stat`, all cores) in clock ticks: all of it, and the part
/// the hypervisor gave to something else while a virtual CPU wanted to run (steal).
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    pub total_ticks: u64,
    pub steal_ticks: u64,
}

impl MachineCpu {
    pub fn read() -> Option<MachineCpu> {
        use procfs::CurrentSI;
        let t = procfs::KernelStats::current().ok()?.total;
        let steal_ticks = t.steal.unwrap_or(0);
        let total_ticks = t.user
            + t.nice
            + t.system
            + t.idle
            + t.iowait.unwrap_or(0)
            + t.irq.unwrap_or(0)
            + t.softirq.unwrap_or(0)
            + steal_ticks;
        Some(MachineCpu {
            total_ticks,
            steal_ticks,
        })
    }

    /// The share of the cores' time between two readings that was stolen (0 on bare metal).
    pub fn steal_fraction(before: Option<MachineCpu>, after: Option<MachineCpu>) -> Option<f64> {
        let (b, a) = (before?, after?);
        let total = a
            .total_ticks
            .checked_sub(b.total_ticks)
            .filter(|t| *t > 0)?;
        Some(a.steal_ticks.saturating_sub(b.steal_ticks) as f64 / total as f64)
    }
}

/// CPU seconds of each thread of this process whose name starts with `prefix`, by thread id.
pub fn threads_cpu_s(prefix: &str) -> Vec<(i32, f64)> {
    let Ok(me) = procfs::process::Process::myself() else {
        return Vec::new();
    };
    let Ok(tasks) = me.tasks() else {
        return Vec::new();
    };
    let ticks = procfs::ticks_per_second() as f64;
    tasks
        .flatten()
        .filter_map(|t| t.stat().ok())
        .filter(|s| s.comm.starts_with(prefix))
        .map(|s| (s.pid, (s.utime + s.stime) as f64 / ticks))
        .collect()
}

/// The most CPU one thread used between two [`threads_cpu_s`] readings (threads in both).
pub fn busiest_thread_cpu_s(before: &[(i32, f64)], after: &[(i32, f64)]) -> Option<f64> {
    after
        .iter()
        .filter_map(|(tid, cpu)| {
            let (_, was) = before.iter().find(|(t, _)| t == tid)?;
            Some(cpu - was)
        })
        .max_by(f64::total_cmp)
}

/// The cluster a bench talks to.
pub struct Target {
    pub bootstrap: String,
    /// `host:port` of Vltava's HTTP API (for `/metrics`), when known.
    pub http: Option<String>,
    /// The broker process, when it runs on this machine.
    pub pid: Option<u32>,
    child: Option<Child>,
}

impl Target {
    /// An existing cluster (Vltava or Kafka): no process of ours.
    pub fn external(bootstrap: &str, http: Option<String>, pid: Option<u32>) -> Target {
        Target {
            bootstrap: bootstrap.to_string(),
            http,
            pid,
            child: None,
        }
    }

    /// Starts `vltava serve` (`bin`, or this executable) on `data_dir` with every default, on
    /// free loopback ports. It is killed when the `Target` is dropped.
    pub fn spawn(data_dir: &Path, bin: Option<&Path>) -> anyhow::Result<Target> {
        let exe = match bin {
            Some(b) => b.to_path_buf(),
            None => std::env::current_exe().context("cannot find the vltava executable")?,
        };
        let (kafka, http, registry) = (free_port()?, free_port()?, free_port()?);
        let child = Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{kafka}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--registry", &format!("127.0.0.1:{registry}")])
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start vltava serve")?;
        Ok(Target {
            bootstrap: format!("127.0.0.1:{kafka}"),
            http: Some(format!("127.0.0.1:{http}")),
            pid: Some(child.id()),
            child: Some(child),
        })
    }

    /// Waits until the broker answers a request (ApiVersions); returns how long that took.
    pub async fn wait_answering(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let mut opts = ClientOptions::new(&self.bootstrap);
            opts.timeout_ms = 1_000;
            if Client::connect(opts).await.is_ok() {
                return Ok(started.elapsed());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!("the broker exited during start-up ({status})");
                }
            }
            if started.elapsed() > timeout {
                bail!(
                    "the broker at {} did not answer within {timeout:?}",
                    self.bootstrap
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn stats(&self) -> Option<ProcStats> {
        self.pid.and_then(|p| ProcStats::read(p).ok())
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the broker exited with {status} on SIGTERM");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(anyhow!(
            "the broker did not stop within {timeout:?} of SIGTERM"
        ))
    }

    /// SIGKILL: the crash a recovery measurement starts from.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker's `/metrics` text, when its HTTP API is known.
    pub fn metrics(&self) -> Option<Metrics> {
        let addr = self.http.as_ref()?;
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .ok()?;
        let mut text = String::new();
        s.take(64 * 1024 * 1024).read_to_string(&mut text).ok()?;
        let body = text.split_once("\r\n\r\n")?.1;
        Some(Metrics(body.to_string()))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Prometheus text exposition.
pub struct Metrics(String);

impl Metrics {
    /// Every sample: metric name, labels (without braces, "" for none) and value.
    fn samples(&self) -> impl Iterator<Item = (&str, &str, f64)> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
                Some((metric, labels, value.parse::<f64>().ok()?))
            })
    }

    /// The sum of every sample of metric `name` (all label sets).
    pub fn sum(&self, name: &str) -> f64 {
        self.sum_where(name, "")
    }

    /// The sum of the samples of `name` whose labels include `label`, e.g. `api="Produce"`.
    pub fn sum_where(&self, name: &str, label: &str) -> f64 {
        self.samples()
            .filter(|(metric, labels, _)| *metric == name && labels.contains(label))
            .map(|(_, _, value)| value)
            .sum()
    }

    /// The cumulative buckets `(le, count)` of histogram `name`, summed over the series whose
    /// labels contain `label` ("" for all), in increasing `le` (`+Inf` last).
    pub fn buckets(&self, name: &str, label: &str) -> Vec<(f64, f64)> {
        let bucket_name = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = Vec::new();
        for (metric, labels, count) in self.samples() {
            if metric != bucket_name || !labels.contains(label) {
                continue;
            }
            // `+Inf` parses as infinity.
            let Some(le) = labels
                .split_once("le=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .and_then(|(le, _)| le.parse::<f64>().ok())
            else {
                continue;
            };
            match out.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += count,
                None => out.push((le, count)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// What cumulative buckets grew by between two scrapes of the same histogram.
pub fn bucket_growth(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c);
            (le, n - was)
        })
        .collect()
}

/// The upper bound of the bucket that holds quantile `q` of cumulative buckets: the quantile is
/// at most that (`+Inf`: above every finite bound). None when no sample was counted.
pub fn quantile_bound(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| *le)
}

/// A data directory for spawned brokers: `--data-dir` if given (kept), else a fresh temporary
/// directory (removed at the end).
pub enum DataDir {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl DataDir {
    pub fn new(given: Option<&Path>) -> anyhow::Result<DataDir> {
        match given {
            Some(p) => {
                std::fs::create_dir_all(p)
                    .with_context(|| format!("cannot create {}", p.display()))?;
                Ok(DataDir::Kept(p.to_path_buf()))
            }
            None => Ok(DataDir::Temp(
                tempfile::Builder::new()
                    .prefix("vltava-bench-")
                    .tempdir()
                    .context("cannot create a temporary directory")?,
            )),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            DataDir::Kept(p) => p,
            DataDir::Temp(t) => t.path(),
        }
    }

    /// A fresh subdirectory for one broker or baseline.
    pub fn sub(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.path().join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP vltava_request_duration_seconds Time from a request's arrival to its response, by API
vltava_request_duration_seconds_bucket{api=\"Fetch\",le=\"0.001\"} 50
vltava_request_duration_seconds_bucket{api=\"Fetch\",le=\"0.005\"} 50
vltava_request_duration_seconds_bucket{api=\"Fetch\",le=\"+Inf\"} 50
vltava_request_duration_seconds_bucket{api=\"Produce\",le=\"0.001\"} 90
vltava_request_duration_seconds_bucket{api=\"Produce\",le=\"0.005\"} 99
vltava_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 100
vltava_request_duration_seconds_sum{api=\"Produce\"} 0.2
vltava_request_duration_seconds_count{api=\"Produce\"} 100
";

    #[test]
    fn buckets_of_the_series_with_a_label_in_increasing_bound() {
        let m = Metrics(SCRAPE.to_string());
        let produce = m.buckets("vltava_request_duration_seconds", "api=\"Produce\"");
        assert_eq!(
            produce,
            vec![(0.001, 90.0), (0.005, 99.0), (f64::INFINITY, 100.0)]
        );
        // No label: the series are summed bucket by bucket.
        let all = m.buckets("vltava_request_duration_seconds", "");
        assert_eq!(
            all,
            vec![(0.001, 140.0), (0.005, 149.0), (f64::INFINITY, 150.0)]
        );
        assert!(m.buckets("vltava_fsync_duration_seconds", "").is_empty());
    }

    #[test]
    fn a_quantile_is_at_most_the_bound_of_the_bucket_holding_it() {
        let m = Metrics(SCRAPE.to_string());
        let b = m.buckets("vltava_request_duration_seconds", "api=\"Produce\"");
        assert_eq!(quantile_bound(&b, 0.5), Some(0.001));
        assert_eq!(quantile_bound(&b, 0.9), Some(0.001));
        assert_eq!(quantile_bound(&b, 0.99), Some(0.005));
        // The hundredth sample is above every finite bound.
        assert_eq!(quantile_bound(&b, 0.999), Some(f64::INFINITY));
        // Growth since an earlier scrape: 10 more samples, all under 1 ms.
        let earlier = vec![(0.001, 80.0), (0.005, 89.0), (f64::INFINITY, 90.0)];
        let grown = bucket_growth(&earlier, &b);
        assert_eq!(
            grown,
            vec![(0.001, 10.0), (0.005, 10.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(quantile_bound(&grown, 0.999), Some(0.001));
        assert_eq!(quantile_bound(&bucket_growth(&b, &b), 0.5), None);
        assert_eq!(quantile_bound(&[], 0.5), None);
    }
}
