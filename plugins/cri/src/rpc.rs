//! Running an RPC: the engine and the store calls block, so each request runs on tokio's
//! blocking pool; errors become gRPC status codes by their kind (not found, invalid
//! argument, already exists, failed precondition, unimplemented, unavailable, internal).

use std::time::Instant;

use strata_plugin_api::ErrorKind;
use tonic::Status;

/// The gRPC status of an error chain, with the whole chain as its message.
pub fn status(e: &anyhow::Error) -> Status {
    let message = format!("{e:#}");
    match strata_plugin_transfer::errors::kind_of(e) {
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::AlreadyExists => Status::already_exists(message),
        ErrorKind::InvalidArgument => Status::invalid_argument(message),
        ErrorKind::FailedPrecondition | ErrorKind::Busy => Status::failed_precondition(message),
        ErrorKind::Unsupported => Status::unimplemented(message),
        ErrorKind::Unavailable => Status::unavailable(message),
        ErrorKind::Corrupt | ErrorKind::Internal => Status::internal(message),
    }
}

/// Runs `f` on the blocking pool and logs the call (`info` for calls that change something,
/// `debug` for the rest, every failure at `warn`).
pub async fn blocking<T, F>(method: &'static str, changes: bool, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    let start = Instant::now();
    let joined = tokio::task::spawn_blocking(f).await;
    let took = start.elapsed();
    match joined {
        Ok(Ok(v)) => {
            if changes {
                crate::log::info(format_args!("{method} done in {took:.1?}"));
            } else {
                crate::log::debug(format_args!("{method} done in {took:.1?}"));
            }
            Ok(v)
        }
        Ok(Err(e)) => {
            let s = status(&e);
            crate::log::warn(format_args!(
                "{method} failed after {took:.1?}: {:?}: {}",
                s.code(),
                s.message()
            ));
            Err(s)
        }
        Err(e) => {
            crate::log::error(format_args!("{method} panicked: {e}"));
            Err(Status::internal(format!(
                "{method}: the server's worker failed: {e}"
            )))
        }
    }
}

/// An invalid-argument error for a request that lacks `what`.
pub fn missing(what: &str) -> anyhow::Error {
    strata_plugin_transfer::errors::kinded(
        ErrorKind::InvalidArgument,
        format!("the request has no {what}"),
    )
}

pub fn kinded(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    strata_plugin_transfer::errors::kinded(kind, message)
}
