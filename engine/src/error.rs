//! The engine's one error type. Lower layers' errors convert into it with `From`.
//!
//! Sorted by what the caller can do (STYLE.md, after toydb's `is_deterministic`):
//! `Serialization` and `Deadlock` mean "retry the transaction"; `Corrupt*` and `Failed` mean the
//! data or the device needs attention; the rest are mistakes in the request.

/// Everything the engine can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device below failed.
    #[error(transparent)]
    Storage(#[from] strata_storage::Error),
    /// A page failed its checksum or structure checks.
    #[error("corrupt page {page}: {reason}")]
    CorruptPage { page: u64, reason: String },
    /// A WAL record in the middle of the log is damaged.
    #[error("corrupt WAL record at LSN {lsn}: {reason}")]
    CorruptWal { lsn: u64, reason: String },
    /// An encoded value or record does not parse.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The transaction conflicts with a concurrent one (SQLSTATE 40001); retry it.
    #[error("could not serialize access: {0}")]
    Serialization(String),
    /// The transaction was chosen as a deadlock victim (SQLSTATE 40P01); retry it.
    #[error("deadlock detected: {0}")]
    Deadlock(String),
    /// Waiting for a lock took longer than the configured lock timeout (SQLSTATE 55P03).
    #[error("lock timeout: {0}")]
    LockTimeout(String),
    /// A wait for a row lock was given up because the caller's wait check said stop (query
    /// cancel, statement timeout; SQLSTATE 57014). The message is the check's own.
    #[error("{0}")]
    Canceled(String),
    #[error("tree {0:?} does not exist")]
    NoSuchTree(String),
    #[error("tree {0:?} already exists")]
    TreeExists(String),
    #[error("key of {len} bytes is longer than the maximum of {max}")]
    KeyTooLarge { len: usize, max: usize },
    /// No prepared transaction with this global id.
    #[error("prepared transaction {0:?} does not exist")]
    NoSuchPrepared(String),
    /// A prepared transaction with this global id exists already.
    #[error("prepared transaction {0:?} already exists")]
    PreparedExists(String),
    /// The transaction has committed, rolled back or been prepared.
    #[error("transaction is no longer active ({0})")]
    TxnClosed(&'static str),
    /// The database stopped after an I/O failure; reopen it (recovery restores every
    /// acknowledged commit).
    #[error("database stopped after an earlier failure: {0}")]
    Failed(String),
    /// The write-ahead log failed (I/O, a bad header, a locked file).
    #[error(transparent)]
    Wal(crate::wal::WalError),
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            S::Storage(e) => Error::Storage(e),
            S::Corrupt { page, reason } => Error::CorruptPage { page, reason },
            S::NoSuchTree(t) => Error::NoSuchTree(t),
            S::TreeExists(t) => Error::TreeExists(t),
            S::KeyTooLarge { len, max } => Error::KeyTooLarge { len, max },
            S::Invalid(why) => Error::Invalid(why),
            S::Failed(why) => Error::Failed(why),
        }
    }
}

impl From<crate::wal::WalError> for Error {
    fn from(e: crate::wal::WalError) -> Self {
        match e {
            crate::wal::WalError::Corrupt { lsn, reason } => Error::CorruptWal { lsn, reason },
            other => Error::Wal(other),
        }
    }
}

impl Error {
    /// True when retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Serialization(_) | Error::Deadlock(_))
    }
}

/// Result with the engine error.
pub type Result<T> = std::result::Result<T, Error>;
