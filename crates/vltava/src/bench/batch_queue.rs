//! Reading a consumer's records many at a time, as Java consumers' `poll` returns them.
//!
//! The `rdkafka` crate hands out one message per `poll`, each a queue lock, two clock reads and
//! an allocation; at a million records a second that alone takes most of a core. librdkafka's
//! `rd_kafka_consume_batch_queue` takes up to a batch under one call, but served on the
//! consumer's own queue it would also take the group's rebalance events and answer them with a
//! forced unassign (the crate asks for them as events and sets no rebalance callback). So the
//! fetched records of each assigned partition are forwarded to a queue of their own, read here
//! in batches, while the consumer's queue keeps its events for the crate's `poll`.
//!
//! When an assignment changes, librdkafka stops the revoked partitions' fetchers, which drops
//! their forwarding: until [`BatchQueue::route`] is called for the new assignment, their records
//! arrive through `poll` as usual. No record is lost or read twice either way.

use std::ffi::{CStr, CString};

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Most records taken in one call.
const BATCH_RECORDS: usize = 1024;

/// A record read from the queue, borrowed until the next call.
pub struct Record<'m> {
    pub payload: &'m [u8],
    pub key_len_bytes: usize,
}

pub struct BatchQueue<'c> {
    consumer: &'c BaseConsumer,
    queue: *mut rd::rd_kafka_queue_t,
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

impl<'c> BatchQueue<'c> {
    pub fn new(consumer: &'c BaseConsumer) -> anyhow::Result<Self> {
        // SAFETY: the client pointer is valid while `consumer` is, which outlives this queue.
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        if queue.is_null() {
            anyhow::bail!("librdkafka could not create a queue");
        }
        Ok(BatchQueue {
            consumer,
            queue,
            messages: vec![std::ptr::null_mut(); BATCH_RECORDS],
        })
    }

    /// Forwards the fetched records of these partitions to this queue.
    pub fn route(&self, partitions: &[(String, i32)]) {
        let rk = self.consumer.client().native_ptr();
        for (topic, partition) in partitions {
            let Ok(topic) = CString::new(topic.as_str()) else {
                continue;
            };
            // SAFETY: `rk` and `self.queue` are valid; the partition queue handle is released
            // at once (the forwarding stays with the partition's queue).
            unsafe {
                let pq = rd::rd_kafka_queue_get_partition(rk, topic.as_ptr(), *partition);
                if !pq.is_null() {
                    rd::rd_kafka_queue_forward(pq, self.queue);
                    rd::rd_kafka_queue_destroy(pq);
                }
            }
        }
    }

    /// Takes what is queued, up to a batch, waiting up to `timeout_ms` for the first record only
    /// (so records are not held back to fill a batch). Calls `each` per record; returns the
    /// number of records, or the first consumer error.
    pub fn read(
        &mut self,
        timeout_ms: i32,
        mut each: impl FnMut(Record<'_>),
    ) -> anyhow::Result<usize> {
        let mut n = self.take(0, BATCH_RECORDS);
        if n == 0 && timeout_ms > 0 {
            n = self.take(timeout_ms, 1);
        }
        let mut error = None;
        let mut records = 0;
        for &m in &self.messages[..n] {
            // SAFETY: librdkafka filled the first `n` slots with messages that stay valid until
            // destroyed below; payload and key point at `len` and `key_len` bytes (or are null).
            unsafe {
                let msg = &*m;
                if msg.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    let payload = if msg.payload.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(msg.payload as *const u8, msg.len)
                    };
                    let key_len_bytes = if msg.key.is_null() { 0 } else { msg.key_len };
                    each(Record {
                        payload,
                        key_len_bytes,
                    });
                    records += 1;
                } else if msg.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF
                    && error.is_none()
                {
                    let text = CStr::from_ptr(rd::rd_kafka_err2str(msg.err));
                    error = Some(text.to_string_lossy().into_owned());
                }
                rd::rd_kafka_message_destroy(m);
            }
        }
        match error {
            Some(e) => anyhow::bail!("consumer error: {e}"),
            None => Ok(records),
        }
    }

    fn take(&mut self, timeout_ms: i32, max: usize) -> usize {
        let max = max.min(self.messages.len());
        // SAFETY: `messages` has room for `max` pointers; the queue is valid.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue,
                timeout_ms,
                self.messages.as_mut_ptr(),
                max,
            )
        };
        usize::try_from(n).unwrap_or(0)
    }
}

impl Drop for BatchQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once; records still in it are freed with it.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) }
    }
}
