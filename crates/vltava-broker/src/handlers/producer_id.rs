//! InitProducerId for idempotent producers (ids from [`crate::producer_ids`]).

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub use crate::producer_ids::ProducerIdAllocator;

use super::code;
use crate::log_limit::LogLimiter;

/// `log_limit` bounds the error lines a failed data directory causes: idempotent producers retry
/// InitProducerId every few hundred milliseconds for as long as it is offline.
pub async fn handle(
    alloc: &ProducerIdAllocator,
    log_limit: &LogLimiter,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |err: E, msg: &str| {
        tracing::info!(message = msg, "InitProducerId refused");
        InitProducerIdResponse::default()
            .with_error_code(code(err))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        return fail(
            E::TransactionalIdAuthorizationFailed,
            "transactional producers are not supported by this broker yet",
        );
    }
    // KIP-360: an idempotent producer may ask to bump its epoch after a fatal sequence error.
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    if pid >= 0 && epoch >= 0 {
        if !alloc.issued(pid) {
            return fail(E::InvalidProducerIdMapping, "unknown producer id");
        }
        if epoch < i16::MAX - 1 {
            return InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch + 1);
        }
    }
    match alloc.allocate().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            if let Some(left_out) = log_limit.allow("producer ids", super::now_ms()) {
                tracing::error!(error = %e, similar_lines_left_out = left_out, "cannot reserve producer ids");
            }
            fail(E::KafkaStorageError, "cannot reserve producer ids")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vltava_storage::durable::StorageHealth;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn epoch_bump_keeps_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path(), StorageHealth::new()).unwrap();
        let init = |pid: i64, epoch: i16| {
            run(handle(
                &a,
                &LogLimiter::default(),
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch),
            ))
        };
        let pid = init(-1, -1).producer_id.0;
        let r2 = init(pid, 0);
        assert_eq!((r2.producer_id.0, r2.producer_epoch), (pid, 1));
        assert_ne!(init(pid + 99, 0).error_code, 0);
    }
}
