//! Where Strata's own types meet the plugin API's. The API crate is the public contract and
//! depends on nothing of Strata's, so its error kinds and id maps are types of their own;
//! this crate holds the one conversion between them ([`kind`], [`api_kind`], [`id_map`],
//! [`api_id_map`]), which the host (serving store calls) and the plugins (making them) both
//! use, and (with the `engine` feature) the engine's store over the host's calls
//! (`HostStore`), which every front end that runs containers uses.
//!
//! What it deliberately does not do: parse arguments or print (front ends do), or offer any
//! store call the API does not.

#[cfg(feature = "engine")]
mod host_store;

#[cfg(feature = "engine")]
pub use host_store::HostStore;

use strata_plugin_api::store as api;
use strata_plugin_api::{CallError, ErrorKind as ApiKind};
use strata_types::{ErrorKind, IdMap, IdRange};

/// An API error kind as Strata's.
pub fn kind(k: ApiKind) -> ErrorKind {
    match k {
        ApiKind::NotFound => ErrorKind::NotFound,
        ApiKind::AlreadyExists => ErrorKind::AlreadyExists,
        ApiKind::InvalidArgument => ErrorKind::InvalidArgument,
        ApiKind::FailedPrecondition => ErrorKind::FailedPrecondition,
        ApiKind::Busy => ErrorKind::Busy,
        ApiKind::Unsupported => ErrorKind::Unsupported,
        ApiKind::Unavailable => ErrorKind::Unavailable,
        ApiKind::Corrupt => ErrorKind::Corrupt,
        ApiKind::Internal => ErrorKind::Internal,
    }
}

/// Strata's error kind as the API's.
pub fn api_kind(k: ErrorKind) -> ApiKind {
    match k {
        ErrorKind::NotFound => ApiKind::NotFound,
        ErrorKind::AlreadyExists => ApiKind::AlreadyExists,
        ErrorKind::InvalidArgument => ApiKind::InvalidArgument,
        ErrorKind::FailedPrecondition => ApiKind::FailedPrecondition,
        ErrorKind::Busy => ApiKind::Busy,
        ErrorKind::Unsupported => ApiKind::Unsupported,
        ErrorKind::Unavailable => ApiKind::Unavailable,
        ErrorKind::Corrupt => ApiKind::Corrupt,
        ErrorKind::Internal => ApiKind::Internal,
    }
}

/// The kind of an error chain: the first error in it that has one (an engine error, a host
/// call's error, anything with [`strata_types::HasKind`] the caller names), else `Internal`.
pub fn kind_of(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        #[cfg(feature = "engine")]
        if let Some(k) = err.downcast_ref::<strata_engine_containers::Error>() {
            return strata_types::HasKind::kind(k);
        }
        if let Some(k) = err.downcast_ref::<CallError>() {
            return kind(k.kind);
        }
        cur = err.source();
    }
    ErrorKind::Internal
}

/// An API id map as Strata's.
pub fn id_map(m: &api::IdMap) -> IdMap {
    let ranges = |r: &[api::IdRange]| {
        r.iter()
            .map(|r| IdRange {
                inside: r.inside,
                outside: r.outside,
                count: r.count,
            })
            .collect()
    };
    IdMap {
        uids: ranges(&m.uids),
        gids: ranges(&m.gids),
    }
}

/// Strata's id map as the API's.
pub fn api_id_map(m: &IdMap) -> api::IdMap {
    let ranges = |r: &[IdRange]| {
        r.iter()
            .map(|r| api::IdRange {
                inside: r.inside,
                outside: r.outside,
                count: r.count,
            })
            .collect()
    };
    api::IdMap {
        uids: ranges(&m.uids),
        gids: ranges(&m.gids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_keep_their_exit_codes() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::InvalidArgument,
            ErrorKind::FailedPrecondition,
            ErrorKind::Busy,
            ErrorKind::Unsupported,
            ErrorKind::Unavailable,
            ErrorKind::Corrupt,
            ErrorKind::Internal,
        ] {
            assert_eq!(kind(api_kind(k)), k);
            assert_eq!(i32::from(api_kind(k).exit_code()), k.exit_code());
        }
    }

    #[test]
    fn id_maps_round_trip() {
        let m = IdMap {
            uids: vec![IdRange {
                inside: 0,
                outside: 100000,
                count: 65536,
            }],
            gids: vec![],
        };
        assert_eq!(id_map(&api_id_map(&m)), m);
    }

    #[test]
    fn the_kind_of_a_chain_is_its_first_kinded_error() {
        #[cfg(feature = "engine")]
        {
            let e = strata_engine_containers::Error::not_found("no such container x");
            assert_eq!(kind_of(&e), ErrorKind::NotFound);
        }
        let call = CallError {
            kind: ApiKind::Busy,
            message: "busy".into(),
        };
        assert_eq!(kind_of(&call), ErrorKind::Busy);
        let io = std::io::Error::other("x");
        assert_eq!(kind_of(&io), ErrorKind::Internal);
    }
}
