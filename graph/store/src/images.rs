//! Image records (ID = config digest), their names, and name resolution.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use strata_types::{Digest, ImageId, LayerId};

use crate::error::{Result, StoreError};
use crate::layers::digest_col;
use crate::meta::{ReadTxn, WriteTxn};

/// One image's metadata.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Image {
    pub id: ImageId,
    pub names: Vec<String>,
    pub top_layer: Option<LayerId>,
    pub manifest_digest: Digest,
    pub created: i64,
}

/// Normalises a user-given image name: a name without a tag or digest gets `:latest`, as
/// podman and docker do, so `busybox` and `busybox:latest` are the same name.
pub fn normalize_name(name: &str) -> Result<String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::Invalid(format!("invalid image name {name:?}")));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        Ok(name.to_owned())
    } else {
        Ok(format!("{name}:latest"))
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Image> {
    Ok(Image {
        id: ImageId(digest_col(r.get(0)?)?),
        names: Vec::new(),
        top_layer: r
            .get::<_, Option<String>>(1)?
            .map(digest_col)
            .transpose()?
            .map(LayerId),
        manifest_digest: digest_col(r.get(2)?)?,
        created: r.get(3)?,
    })
}

impl ReadTxn<'_> {
    fn names_of(&self, id: &ImageId) -> Result<Vec<String>> {
        let mut st = self
            .sql()
            .prepare_cached("SELECT name FROM image_names WHERE image = ?1 ORDER BY name")
            .map_err(self.err())?;
        let names = st
            .query_map([id.0.as_str()], |r| r.get(0))
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(self.err())?;
        Ok(names)
    }

    pub fn image(&self, id: &ImageId) -> Result<Option<Image>> {
        let img = self
            .sql()
            .query_row(
                "SELECT id, top_layer, manifest_digest, created FROM images WHERE id = ?1",
                [id.0.as_str()],
                from_row,
            )
            .optional()
            .map_err(self.err())?;
        img.map(|mut i| {
            i.names = self.names_of(&i.id)?;
            Ok(i)
        })
        .transpose()
    }

    pub fn images(&self) -> Result<Vec<Image>> {
        let mut st = self
            .sql()
            .prepare(
                "SELECT id, top_layer, manifest_digest, created FROM images ORDER BY created, id",
            )
            .map_err(self.err())?;
        let imgs = st
            .query_map([], from_row)
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())?;
        // Every name in one query (not one per image), each image's sorted as `names_of`'s.
        let mut names: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        let mut st = self
            .sql()
            .prepare("SELECT image, name FROM image_names ORDER BY name")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err())?;
        for row in rows {
            let (image, name) = row.map_err(self.err())?;
            names.entry(image).or_default().push(name);
        }
        Ok(imgs
            .into_iter()
            .map(|mut i| {
                i.names = names.remove(i.id.0.as_str()).unwrap_or_default();
                i
            })
            .collect())
    }

    /// Resolves a name, a full ID (`sha256:...` or hex) or a unique ID prefix (3+ hex digits).
    pub fn resolve_image(&self, name: &str) -> Result<Image> {
        if let Ok(n) = normalize_name(name) {
            let hit: Option<String> = self
                .sql()
                .query_row("SELECT image FROM image_names WHERE name = ?1", [&n], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(self.err())?;
            if let Some(id) = hit {
                let id =
                    ImageId(Digest::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?);
                return self.image(&id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("name {n} points to missing image {id}"))
                });
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 3 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let pattern = format!("sha256:{}%", hex.to_ascii_lowercase());
            let mut st = self
                .sql()
                .prepare("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")
                .map_err(self.err())?;
            let ids = st
                .query_map([pattern], |r| r.get::<_, String>(0))
                .map_err(self.err())?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.err())?;
            match ids.len() {
                1 => {
                    let id = ImageId(
                        Digest::parse(&ids[0]).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    );
                    return self
                        .image(&id)?
                        .ok_or_else(|| StoreError::not_found("image", name));
                }
                0 => {}
                n => {
                    return Err(StoreError::Ambiguous {
                        what: "image",
                        name: name.into(),
                        count: n,
                    })
                }
            }
        }
        Err(StoreError::not_found("image", name))
    }

    /// Containers using an image (names), to refuse removing it.
    pub fn image_users(&self, id: &ImageId) -> Result<Vec<String>> {
        let mut st = self
            .sql()
            .prepare("SELECT name FROM containers WHERE image = ?1")
            .map_err(self.err())?;
        let names = st
            .query_map([id.0.as_str()], |r| r.get(0))
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(self.err())?;
        Ok(names)
    }
}

impl WriteTxn<'_> {
    /// Inserts an image if it is new; either way, points `names` at it (moving them away from
    /// any other image, as `tag` does).
    pub fn insert_image(&self, img: &Image, names: &[String]) -> Result<()> {
        self.sql()
            .execute(
                "INSERT OR IGNORE INTO images (id, top_layer, manifest_digest, created) VALUES (?1,?2,?3,?4)",
                params![
                    img.id.0.as_str(),
                    img.top_layer.as_ref().map(|l| l.0.as_str()),
                    img.manifest_digest.as_str(),
                    img.created
                ],
            )
            .map_err(self.err())?;
        for n in names {
            let n = normalize_name(n)?;
            self.sql()
                .execute(
                    "INSERT OR REPLACE INTO image_names (name, image) VALUES (?1, ?2)",
                    params![n, img.id.0.as_str()],
                )
                .map_err(self.err())?;
        }
        Ok(())
    }

    pub fn delete_name(&self, name: &str) -> Result<()> {
        self.sql()
            .execute("DELETE FROM image_names WHERE name = ?1", [name])
            .map_err(self.err())?;
        Ok(())
    }

    pub fn delete_image(&self, id: &ImageId) -> Result<()> {
        self.sql()
            .execute("DELETE FROM image_names WHERE image = ?1", [id.0.as_str()])
            .map_err(self.err())?;
        self.sql()
            .execute("DELETE FROM images WHERE id = ?1", [id.0.as_str()])
            .map_err(self.err())?;
        Ok(())
    }
}
