//! openraft's storage conformance suite, run against our sled-backed log store and state machine.
// openraft's trait methods return its large StorageError; our helpers share that type on purpose.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use super::disk::{RaftDisk, SledDisk};
use super::log_store::LogStore;
use super::state_machine::StateMachineStore;
use super::types::TypeConfig;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let disk: Arc<dyn RaftDisk> =
            Arc::new(SledDisk::open(dir.path()).map_err(|e| openraft::StorageIOError::write(&e))?);
        let sm = StateMachineStore::open(disk.clone())?;
        Ok((dir, LogStore::new(disk), sm))
    }
}

#[test]
fn sled_store_passes_openraft_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(SledBuilder)
}
