//! SQL errors: every error carries a PostgreSQL SQLSTATE code and a message that points at the
//! problem (and, for syntax errors, a position in the statement).

use std::fmt;

/// An error from parsing, planning or executing a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The five-character SQLSTATE, e.g. `42P01`.
    pub code: &'static str,
    pub message: String,
    /// 1-based character position in the statement text, when known (syntax errors).
    pub position: Option<usize>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Error {}

/// Result with the SQL error.
pub type Result<T> = std::result::Result<T, Error>;

/// SQLSTATE codes used by Strata, named as PostgreSQL names them.
pub mod code {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const CANNOT_COERCE: &str = "42846";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const INVALID_SAVEPOINT: &str = "3B001";
    pub const INVALID_PREPARED_STATEMENT: &str = "26000";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const GROUPING_ERROR: &str = "42803";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const INVALID_RECURSION: &str = "42P19";
    pub const WINDOWING_ERROR: &str = "42P20";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const DATA_CORRUPTED: &str = "XX001";
    pub const IO_ERROR: &str = "58030";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
}

impl Error {
    pub fn new(code: &'static str, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            position: None,
        }
    }
}

/// Builds an [`Error`] with a SQLSTATE constant from [`code`] and a formatted message:
/// `err!(UNDEFINED_TABLE, "relation \"{name}\" does not exist")`.
#[macro_export]
macro_rules! err {
    ($code:ident, $($arg:tt)*) => {
        $crate::error::Error::new($crate::error::code::$code, format!($($arg)*))
    };
}

/// Returns early with an error built by [`err!`].
#[macro_export]
macro_rules! bail {
    ($code:ident, $($arg:tt)*) => {
        return Err($crate::err!($code, $($arg)*))
    };
}

impl From<strata_engine::Error> for Error {
    fn from(e: strata_engine::Error) -> Self {
        use strata_engine::Error as E;
        let code = match &e {
            E::Serialization(_) => code::SERIALIZATION_FAILURE,
            E::Deadlock(_) => code::DEADLOCK_DETECTED,
            E::LockTimeout(_) => code::LOCK_NOT_AVAILABLE,
            E::Canceled(_) => code::QUERY_CANCELED,
            E::CorruptPage { .. } | E::CorruptWal { .. } | E::Corrupt(_) => code::DATA_CORRUPTED,
            E::Storage(_) | E::Wal(_) | E::Failed(_) => code::IO_ERROR,
            E::KeyTooLarge { .. } => code::PROGRAM_LIMIT_EXCEEDED,
            E::NoSuchPrepared(_) => code::UNDEFINED_OBJECT,
            E::PreparedExists(_) => code::DUPLICATE_OBJECT,
            E::TxnClosed(_) => code::INVALID_TRANSACTION_STATE,
            _ => code::INTERNAL_ERROR,
        };
        Error::new(code, e.to_string())
    }
}
