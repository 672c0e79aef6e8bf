//! The container engine: one [`Container`] type that every front end (the run CLI, build's
//! RUN steps, the CRI server) creates, starts, stops, execs into and removes, so that there is
//! one copy of container lifecycle code.
//!
//! Where to find each verb: [`Engine::create`] in `create.rs`; [`Container::start`] in
//! `start.rs`, [`Container::stop`] in `stop.rs`, [`Container::kill`] in `kill.rs`,
//! [`Container::wait`] in `wait.rs`, [`Container::prepare_exec`] in `exec.rs`,
//! [`Container::cleanup`] in `cleanup.rs`, [`Container::remove`] in `remove.rs`. What they
//! stand on: the runtime spec (`spec/`, with the default seccomp profile and the other
//! security defaults), the OCI runtime's command line (`runtime.rs`), the container's state
//! files (`state.rs`), its network namespace (`netns.rs`, over `strata-engine-network`), user
//! namespaces (`userns.rs`), cgroups (`cgroups.rs`), rootless mode (`rootless.rs`), and the
//! per-container monitor (`strata-engine-monitor`).
//!
//! The engine reaches the store through the [`Store`] trait (`store.rs`), which the front
//! ends implement over whatever store handle they have.
//!
//! What it deliberately does not do: parse command lines or talk to terminals (front ends
//! do: the engine takes a [`ContainerConfig`] and hands back the monitor's attach connection),
//! pull images, or know about pods (`strata-engine-pods` sits on top and passes the shared
//! namespaces to [`Container::start`]).

pub mod cgroups;
mod cleanup;
pub mod config;
mod container;
mod create;
mod engine;
mod error;
mod etc;
mod exec;
pub mod image;
mod kill;
mod netns;
mod remove;
pub mod rootless;
pub mod runtime;
pub mod settings;
pub mod spec;
mod start;
pub mod state;
mod stop;
mod store;
pub mod user;
pub mod userns;
mod userns_root;
mod wait;

pub use config::{
    ContainerConfig, Device, LinuxExtras, MountSpec, NetworkMode, Resources, Security,
};
pub use container::Container;
pub use engine::{Engine, EngineOptions};
pub use error::{Context, Error, Result, StoreError};
pub use exec::{ExecOptions, PreparedExec};
pub use image::ImageDefaults;
pub use kill::Signaller;
pub use netns::publish;
pub use start::{Follow, SharedNamespaces, StartOptions};
pub use state::{State, Status};
pub use store::{
    ContainerRecord, ImageRecord, LayerOpener, NewContainer, NewImage, NewLayer, Store, StoreInfo,
};

/// The metadata key of the engine's record ([`ContainerConfig`]) in a container's store
/// metadata; other front ends keep theirs under their own keys beside it.
pub const METADATA_KEY: &str = "engine";

/// Where containers made before the engine was its own layer keep their record (the run
/// front end's key then); read, never written.
pub const LEGACY_METADATA_KEY: &str = "run";
