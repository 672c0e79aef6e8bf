//! `create`: a new container in the store with its config; nothing runs yet.
//!
//! Rootless, the config is first checked and adapted (`crate::rootless::adapt`). A
//! `--userns auto` block is chosen and recorded (in the store, with the container) under one
//! lock, so two creates never pick the same block.

use crate::config::ContainerConfig;
use crate::container::Container;
use crate::engine::Engine;
use crate::error::Result;
use crate::state::State;
use crate::store::NewContainer;
use crate::userns::{self, Mode};
use crate::METADATA_KEY;

impl Engine {
    /// Creates a container from `config` (its image already in the store), named `name` or
    /// by its short ID. `extra` is the calling front end's own metadata, stored beside the
    /// engine's record (`{"cri": {...}}`); pass `None` when there is none.
    pub fn create(
        &self,
        name: Option<String>,
        mut config: ContainerConfig,
        extra: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Container<'_>> {
        let rootless = self.rootless();
        if rootless {
            crate::rootless::adapt(&mut config)?;
        }
        let mode = userns::parse(&config.userns, rootless)?;
        let _alloc = match mode {
            Mode::Auto { .. } => Some(userns::allocation_lock(self.root())?),
            _ => None,
        };
        let used: Vec<(u32, u32)> = match mode {
            Mode::Auto { .. } => self
                .store()
                .containers(&[])?
                .iter()
                .filter_map(|c| c.id_map.as_ref().and_then(userns::held_block))
                .collect(),
            _ => Vec::new(),
        };
        let id_map = if let (Some(m), false) = (&config.linux.id_map, rootless) {
            Some(m.clone())
        } else if rootless {
            let ns = userns::OwnNs::current()?;
            if mode == Mode::KeepId && config.user.is_empty() {
                // podman's keep-id: the container runs as the user, as the user's ids.
                config.user = format!("{}:{}", ns.host_uid, ns.host_gid);
            }
            userns::rootless_map(mode, ns, &used)?
        } else {
            userns::id_map(mode, &used)?
        };
        let mut metadata = extra.unwrap_or_default();
        metadata.insert(METADATA_KEY.into(), serde_json::to_value(&config)?);
        let record = self.store().create_container(NewContainer {
            image: config.image_id.clone(),
            name,
            metadata: serde_json::Value::Object(metadata),
            id_map,
        })?;
        let c = Container::from_record(self, record)?;
        State::default().save(&c.paths)?;
        Ok(c)
    }
}
