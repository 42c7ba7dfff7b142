//! Descriptors at start-up: the soft `RLIMIT_NOFILE` is raised to the hard limit (as Kafka's
//! launch scripts expect an operator to do), and the segment-file cache gets half of it unless
//! configured, so that client sockets always keep the other half.

use vltava_storage::fd_cache;
pub use vltava_storage::fd_cache::MIN_MAX_OPEN_SEGMENT_FILES;

/// What start-up settled on, for the log and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimits {
    pub soft_before: Option<u64>,
    pub soft_now: Option<u64>,
    pub max_open_segment_files: usize,
}

/// Raises the soft open-files limit to the hard one and sizes the segment-file cache:
/// `configured`, or half the limit (at least [`fd_cache::MIN_MAX_OPEN_SEGMENT_FILES`]).
pub fn configure(configured: Option<usize>) -> FdLimits {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let before = getrlimit(Resource::Nofile);
    let mut now = before;
    if before.current < before.maximum {
        let raised = rustix::process::Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => now = getrlimit(Resource::Nofile),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
        }
    }
    let half = now
        .current
        .map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX));
    let max_open = configured
        .unwrap_or(half.min(1 << 20))
        .max(fd_cache::MIN_MAX_OPEN_SEGMENT_FILES);
    fd_cache::set_max_open(max_open);
    FdLimits {
        soft_before: before.current,
        soft_now: now.current,
        max_open_segment_files: fd_cache::max_open(),
    }
}
