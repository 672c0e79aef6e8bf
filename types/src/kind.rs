//! The stable error kinds. Every error in the workspace maps to one of these; they cross the
//! plugin ABI and map to CLI exit codes and gRPC status codes.

use std::fmt;

/// A small, stable classification of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    Busy,
    Unsupported,
    Unavailable,
    Corrupt,
    /// An I/O or system failure that fits no other kind.
    Internal,
}

impl ErrorKind {
    /// The process exit code the CLI uses for this kind (1 is reserved for usage errors
    /// reported by the argument parser, 125 for "strata itself failed" as podman does).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::NotFound => 3,
            ErrorKind::AlreadyExists => 4,
            ErrorKind::InvalidArgument => 5,
            ErrorKind::FailedPrecondition => 6,
            ErrorKind::Busy => 7,
            ErrorKind::Unsupported => 8,
            ErrorKind::Unavailable => 9,
            ErrorKind::Corrupt => 10,
            ErrorKind::Internal => 125,
        }
    }

    /// The kind an exit code stands for (the inverse of [`ErrorKind::exit_code`]; unknown
    /// codes are `Internal`). Used where kinds cross the plugin ABI as numbers.
    pub fn from_exit_code(code: i32) -> ErrorKind {
        match code {
            3 => ErrorKind::NotFound,
            4 => ErrorKind::AlreadyExists,
            5 => ErrorKind::InvalidArgument,
            6 => ErrorKind::FailedPrecondition,
            7 => ErrorKind::Busy,
            8 => ErrorKind::Unsupported,
            9 => ErrorKind::Unavailable,
            10 => ErrorKind::Corrupt,
            _ => ErrorKind::Internal,
        }
    }

    /// Classifies an OS error.
    pub fn from_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::InvalidInput | K::InvalidData => ErrorKind::InvalidArgument,
            K::Unsupported => ErrorKind::Unsupported,
            K::ResourceBusy | K::WouldBlock => ErrorKind::Busy,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::Busy => "busy",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Internal => "internal",
        };
        f.write_str(s)
    }
}

/// Implemented by every library error type.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}
