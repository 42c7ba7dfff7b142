//! Transactions (KIP-98): the transaction coordinator state machine and its durable store.

pub mod coordinator;
pub mod store;
