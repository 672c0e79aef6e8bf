//! Container records: an image plus a read-write layer (driver key `c-<id>`).

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use strata_types::IdMap;
use strata_types::{ContainerId, ImageId, LayerId};

use crate::error::{Result, StoreError};
use crate::layers::digest_col;
use crate::meta::{ReadTxn, WriteTxn};

/// One container's metadata.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub name: String,
    pub image: ImageId,
    /// The image's top layer: the parent of the container's read-write layer.
    pub parent_layer: Option<LayerId>,
    pub created: i64,
    /// Free-form JSON owned by the front end that created the container.
    pub metadata: serde_json::Value,
    /// The container's user-namespace map, when it has its own: mounts idmap the image's
    /// layers with it, and diffs map the host ids its files get back to image ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_map: Option<IdMap>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Container> {
    let id: String = r.get(0)?;
    let meta: String = r.get(5)?;
    Ok(Container {
        id: ContainerId::parse(&id).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("bad container id {id}").into(),
            )
        })?,
        name: r.get(1)?,
        image: ImageId(digest_col(r.get(2)?)?),
        parent_layer: r
            .get::<_, Option<String>>(3)?
            .map(digest_col)
            .transpose()?
            .map(LayerId),
        created: r.get(4)?,
        metadata: serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null),
        id_map: r
            .get::<_, Option<String>>(6)?
            .map(|m| {
                serde_json::from_str(&m).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        6,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })
            })
            .transpose()?,
    })
}

const COLS: &str = "id, name, image, parent_layer, created, metadata, id_map";

/// Container names follow podman's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 253;
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid container name {name:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )))
    }
}

impl ReadTxn<'_> {
    pub fn container(&self, id: &ContainerId) -> Result<Option<Container>> {
        self.sql()
            .query_row(
                &format!("SELECT {COLS} FROM containers WHERE id = ?1"),
                [id.as_str()],
                from_row,
            )
            .optional()
            .map_err(self.err())
    }

    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut st = self
            .sql()
            .prepare(&format!(
                "SELECT {COLS} FROM containers ORDER BY created, id"
            ))
            .map_err(self.err())?;
        let rows = st.query_map([], from_row).map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())
    }

    /// Resolves a container name, full ID or unique ID prefix (3+ hex digits).
    pub fn resolve_container(&self, name: &str) -> Result<Container> {
        if let Some(c) = self
            .sql()
            .query_row(
                &format!("SELECT {COLS} FROM containers WHERE name = ?1"),
                [name],
                from_row,
            )
            .optional()
            .map_err(self.err())?
        {
            return Ok(c);
        }
        if name.len() >= 3 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut st = self
                .sql()
                .prepare(&format!(
                    "SELECT {COLS} FROM containers WHERE id LIKE ?1 LIMIT 2"
                ))
                .map_err(self.err())?;
            let hits = st
                .query_map([format!("{}%", name.to_ascii_lowercase())], from_row)
                .map_err(self.err())?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.err())?;
            match hits.len() {
                1 => return Ok(hits.into_iter().next().expect("one hit")),
                0 => {}
                n => {
                    return Err(StoreError::Ambiguous {
                        what: "container",
                        name: name.into(),
                        count: n,
                    })
                }
            }
        }
        Err(StoreError::not_found("container", name))
    }

    pub fn container_name_taken(&self, name: &str) -> Result<bool> {
        Ok(self
            .sql()
            .query_row("SELECT 1 FROM containers WHERE name = ?1", [name], |_| {
                Ok(())
            })
            .optional()
            .map_err(self.err())?
            .is_some())
    }
}

impl WriteTxn<'_> {
    pub fn insert_container(&self, c: &Container) -> Result<()> {
        if self.container_name_taken(&c.name)? {
            return Err(StoreError::AlreadyExists {
                what: "container",
                name: c.name.clone(),
            });
        }
        self.sql()
            .execute(
                &format!("INSERT INTO containers ({COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"),
                params![
                    c.id.as_str(),
                    c.name,
                    c.image.0.as_str(),
                    c.parent_layer.as_ref().map(|l| l.0.as_str()),
                    c.created,
                    c.metadata.to_string(),
                    c.id_map
                        .as_ref()
                        .map(|m| serde_json::to_string(m).expect("an id map serialises")),
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Replaces a container's metadata.
    pub fn update_container_metadata(
        &self,
        id: &ContainerId,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        self.sql()
            .execute(
                "UPDATE containers SET metadata = ?2 WHERE id = ?1",
                params![id.as_str(), metadata.to_string()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn delete_container(&self, id: &ContainerId) -> Result<()> {
        self.sql()
            .execute("DELETE FROM containers WHERE id = ?1", [id.as_str()])
            .map_err(self.err())?;
        Ok(())
    }
}
