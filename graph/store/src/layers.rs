//! Layer records: a layer is immutable and identified by its chain ID.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use strata_types::{Digest, LayerId};

use crate::error::{Result, StoreError};
use crate::meta::{ReadTxn, WriteTxn};

/// One layer's metadata.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Layer {
    pub id: LayerId,
    pub parent: Option<LayerId>,
    pub diff_id: Digest,
    /// Digest of the blob the layer was imported from (compressed bytes), if any.
    pub blob_digest: Option<Digest>,
    pub blob_size: Option<u64>,
    /// `gzip`, `zstd` or `none`.
    pub compression: Option<String>,
    /// Size of the uncompressed tar.
    pub size: u64,
    pub created: i64,
}

fn digest(s: String) -> rusqlite::Result<Digest> {
    Digest::parse(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Layer> {
    Ok(Layer {
        id: LayerId(digest(r.get(0)?)?),
        parent: r
            .get::<_, Option<String>>(1)?
            .map(digest)
            .transpose()?
            .map(LayerId),
        diff_id: digest(r.get(2)?)?,
        blob_digest: r.get::<_, Option<String>>(3)?.map(digest).transpose()?,
        blob_size: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        compression: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        created: r.get(7)?,
    })
}

const COLS: &str = "id, parent, diff_id, blob_digest, blob_size, compression, size, created";

pub(crate) fn digest_col(s: String) -> rusqlite::Result<Digest> {
    digest(s)
}

impl ReadTxn<'_> {
    pub fn layer(&self, id: &LayerId) -> Result<Option<Layer>> {
        self.sql()
            .query_row(
                &format!("SELECT {COLS} FROM layers WHERE id = ?1"),
                [id.0.as_str()],
                from_row,
            )
            .optional()
            .map_err(self.err())
    }

    pub fn layers(&self) -> Result<Vec<Layer>> {
        let mut st = self
            .sql()
            .prepare(&format!("SELECT {COLS} FROM layers ORDER BY created, id"))
            .map_err(self.err())?;
        let rows = st.query_map([], from_row).map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())
    }

    /// `id` and its ancestors, nearest first (`[id, parent, grandparent, ...]`).
    pub fn chain(&self, id: &LayerId) -> Result<Vec<Layer>> {
        let mut out = Vec::new();
        let mut next = Some(id.clone());
        while let Some(cur) = next {
            let l = self.layer(&cur)?.ok_or_else(|| {
                StoreError::Corrupt(format!("layer {cur} is referenced but has no record"))
            })?;
            next = l.parent.clone();
            out.push(l);
            if out.len() > 4096 {
                return Err(StoreError::Corrupt(format!(
                    "layer {id} has a parent cycle"
                )));
            }
        }
        Ok(out)
    }

    /// Layers that no image, container or child layer references, bottom-most last so they
    /// can be removed in order (children first).
    pub fn unreferenced_layers(&self) -> Result<Vec<LayerId>> {
        let mut st = self
            .sql()
            .prepare(
                "WITH RECURSIVE live(id) AS (
                    SELECT top_layer FROM images WHERE top_layer IS NOT NULL
                    UNION SELECT parent_layer FROM containers WHERE parent_layer IS NOT NULL
                    UNION SELECT l.parent FROM layers l JOIN live ON l.id = live.id
                          WHERE l.parent IS NOT NULL)
                 SELECT id FROM layers WHERE id NOT IN (SELECT id FROM live)",
            )
            .map_err(self.err())?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0).and_then(digest).map(LayerId))
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())?;
        // Order children before parents: repeatedly take layers none of the rest has as parent.
        let mut rest: Vec<Layer> = ids
            .iter()
            .filter_map(|i| self.layer(i).transpose())
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rest.len());
        while !rest.is_empty() {
            let before = rest.len();
            let parents: std::collections::HashSet<LayerId> =
                rest.iter().filter_map(|l| l.parent.clone()).collect();
            rest.retain(|l| {
                if parents.contains(&l.id) {
                    true
                } else {
                    out.push(l.id.clone());
                    false
                }
            });
            if rest.len() == before {
                return Err(StoreError::Corrupt("layer parent cycle".into()));
            }
        }
        Ok(out)
    }
}

impl WriteTxn<'_> {
    pub fn insert_layer(&self, l: &Layer) -> Result<()> {
        self.sql()
            .execute(
                &format!("INSERT OR IGNORE INTO layers ({COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"),
                params![
                    l.id.0.as_str(),
                    l.parent.as_ref().map(|p| p.0.as_str()),
                    l.diff_id.as_str(),
                    l.blob_digest.as_ref().map(|d| d.as_str()),
                    l.blob_size.map(|v| v as i64),
                    l.compression,
                    l.size as i64,
                    l.created
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn delete_layer(&self, id: &LayerId) -> Result<()> {
        self.sql()
            .execute("DELETE FROM layers WHERE id = ?1", [id.0.as_str()])
            .map_err(self.err())?;
        Ok(())
    }
}
