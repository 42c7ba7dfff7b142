//! Rate limits for log lines that a peer can cause (refused connections, garbage frames): at most
//! one line per cause per interval, the next one saying how many were left out, so an attacker
//! cannot grow the log without bound. A pure state machine with time as an input; the causes
//! are a fixed set of `&'static str`, so its table is bounded.

use std::collections::HashMap;
use std::sync::Mutex;

/// At most one line per cause in this long.
pub const LOG_INTERVAL_MS: i64 = 10_000;

#[derive(Default)]
pub struct LogLimiter {
    /// cause → (when its last line was written, lines left out since).
    causes: Mutex<HashMap<&'static str, (i64, u64)>>,
}

impl LogLimiter {
    /// Whether a line for `cause` may be written at `now_ms`: `Some(n)` with the number of lines
    /// left out since the last one, or `None` (left out, and counted).
    pub fn allow(&self, cause: &'static str, now_ms: i64) -> Option<u64> {
        let mut causes = self.causes.lock().unwrap_or_else(|p| p.into_inner());
        match causes.get_mut(cause) {
            Some((last, left_out)) if now_ms - *last < LOG_INTERVAL_MS => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now_ms;
                Some(std::mem::take(left_out))
            }
            None => {
                causes.insert(cause, (now_ms, 0));
                Some(0)
            }
        }
    }
}

/// `tracing::warn!` for a peer-caused event, at most once per cause per [`LOG_INTERVAL_MS`].
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $cause:literal, $($field:tt)*) => {
        if let Some(left_out) = $limiter.allow($cause, $crate::handlers::now_ms()) {
            tracing::warn!(similar_lines_left_out = left_out, $($field)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_interval_and_the_count_of_the_rest() {
        let l = LogLimiter::default();
        assert_eq!(l.allow("a", 0), Some(0));
        assert_eq!(l.allow("a", 1), None);
        assert_eq!(l.allow("a", 2), None);
        assert_eq!(l.allow("b", 3), Some(0), "causes are limited apart");
        assert_eq!(l.allow("a", LOG_INTERVAL_MS), Some(2));
        assert_eq!(l.allow("a", LOG_INTERVAL_MS + 1), None);
    }
}
