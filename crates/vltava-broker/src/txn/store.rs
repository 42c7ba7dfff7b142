//! The transaction coordinator's durable state: [`TxnRecord`]s in
//! `<data-dir>/__transactions/transactions.log`, kept by the group store's machinery (one sync
//! thread, `vltava-txn-sync`, group commit, CRC-checked records replayed at start-up, snapshot
//! rewrites as the file grows, a failed write or fsync taking the data directory offline and
//! never acknowledged). Kafka keeps the same state in `__transaction_state`.

use std::io;
use std::path::Path;

use vltava_storage::durable::StorageHealth;

use super::coordinator::{TxnCoordinator, TxnRecord};
use crate::group::store::GroupStore;

pub type TxnStore = GroupStore<TxnRecord>;

pub const DIR: &str = "__transactions";
const FILE: &str = "transactions.log";

/// Opens the store under `data_dir` and replays it into `coordinator` (then
/// [`TxnCoordinator::recover`] queues the markers of prepared transactions).
pub fn open(
    data_dir: &Path,
    health: StorageHealth,
    coordinator: &mut TxnCoordinator,
) -> io::Result<TxnStore> {
    let (store, records) =
        GroupStore::open_file(&data_dir.join(DIR), FILE, "vltava-txn-sync", health, None)?;
    for r in records {
        coordinator.replay(r);
    }
    coordinator.recover();
    Ok(store)
}

/// Rewrites the file as a snapshot of `coordinator` when it has grown well past one.
pub fn maybe_compact(store: &mut TxnStore, coordinator: &TxnCoordinator) -> io::Result<()> {
    if store.compaction_due() {
        store.snapshot(coordinator.snapshot())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::store::wait_durable;
    use crate::txn::coordinator::{InitOutcome, TxnConfig, TxnState};

    async fn durable(store: &TxnStore) {
        let mut rx = store.subscribe();
        let wait = wait_durable(&mut rx, store.last_seq());
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .expect("durable within 10 s")
            .expect("durable");
    }

    #[tokio::test]
    async fn state_survives_a_restart_and_prepared_transactions_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = TxnCoordinator::new(TxnConfig::default());
        let mut store = open(dir.path(), StorageHealth::new(), &mut c).expect("open");
        assert_eq!(
            c.init_producer_id("t", 60_000, None, Some(5), 0),
            InitOutcome::Ok {
                producer_id: 5,
                epoch: 0
            }
        );
        c.add_to_txn("t", 5, 0, &[("a".into(), 0)], &[], 1)
            .expect("add");
        c.end_txn("t", 5, 0, false, 2).expect("end");
        store.append(&c.take_records()).expect("append");
        durable(&store).await;
        // A snapshot keeps the state as it is.
        store.snapshot(c.snapshot()).expect("snapshot");
        durable(&store).await;
        drop(store);

        let mut r = TxnCoordinator::new(TxnConfig::default());
        let _store = open(dir.path(), StorageHealth::new(), &mut r).expect("reopen");
        assert_eq!(r.get("t").map(|m| m.state), Some(TxnState::PrepareAbort));
        let actions = r.take_actions();
        assert_eq!(actions.len(), 1, "the abort's markers are written again");
        assert!(!actions[0].commit);
    }
}
