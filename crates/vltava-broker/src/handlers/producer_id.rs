//! InitProducerId for idempotent producers, and the allocator that keeps producer ids unique
//! across restarts by reserving them in durable blocks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::code;

/// Ids reserved per write of the block file.
const BLOCK_SIZE: i64 = 1000;
const BLOCK_FILE: &str = "producer-id-block";

struct Range {
    next: i64,
    end: i64,
}

pub struct ProducerIdAllocator {
    path: PathBuf,
    range: Mutex<Range>,
}

impl ProducerIdAllocator {
    pub fn open(data_dir: &Path) -> io::Result<ProducerIdAllocator> {
        let path = data_dir.join(BLOCK_FILE);
        let start = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let a = ProducerIdAllocator {
            path,
            range: Mutex::new(Range {
                next: start,
                end: start,
            }),
        };
        Ok(a)
    }

    /// Persists the end of a new block before handing out any id in it.
    fn reserve(&self, r: &mut Range) -> io::Result<()> {
        let end = r.end + BLOCK_SIZE;
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(end.to_string().as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        r.end = end;
        Ok(())
    }

    pub fn allocate(&self) -> io::Result<i64> {
        let mut r = self.range.lock().unwrap_or_else(|p| p.into_inner());
        if r.next >= r.end {
            self.reserve(&mut r)?;
        }
        let id = r.next;
        r.next += 1;
        Ok(id)
    }

    /// Whether `id` was handed out by this broker (in any run).
    pub fn issued(&self, id: i64) -> bool {
        let r = self.range.lock().unwrap_or_else(|p| p.into_inner());
        id >= 0 && id < r.next
    }
}

pub fn handle(alloc: &ProducerIdAllocator, req: InitProducerIdRequest) -> InitProducerIdResponse {
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
    match alloc.allocate() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            fail(E::KafkaStorageError, "cannot reserve producer ids")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first = a.allocate().unwrap();
        let second = a.allocate().unwrap();
        assert_eq!(second, first + 1);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert!(b.allocate().unwrap() > second);
    }

    #[test]
    fn epoch_bump_keeps_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let r = handle(
            &a,
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        let pid = r.producer_id.0;
        let r2 = handle(
            &a,
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0),
        );
        assert_eq!((r2.producer_id.0, r2.producer_epoch), (pid, 1));
        let bad = handle(
            &a,
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(pid + 99))
                .with_producer_epoch(0),
        );
        assert_ne!(bad.error_code, 0);
    }
}
