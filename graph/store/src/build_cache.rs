//! The build cache index: what a build step made, by a key the build front end computes
//! (the parent image, the step as it will run, the content of its sources). A lookup is one
//! indexed read; nothing scans the images.
//!
//! An entry names the image the step produced (its layers and config). It lives and dies with
//! that image: the row references `images(id)` with `ON DELETE CASCADE`, so `rmi`, image
//! prune and anything else that deletes an image deletes its entries in the same
//! transaction, and a lookup never answers with an image that is gone. This module does not
//! compute keys (the build front end does) and keeps nothing but the key and the image.

use rusqlite::{params, OptionalExtension};
use strata_types::ImageId;

use crate::error::{Result, StoreError};
use crate::layers::digest_col;
use crate::meta::{ReadTxn, WriteTxn};
use crate::store::Store;

/// Longest key accepted (the front end's keys are digests; this bounds hostile input).
const MAX_KEY: usize = 256;

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY || key.chars().any(|c| c.is_control()) {
        return Err(StoreError::Invalid(format!(
            "invalid build cache key {key:?}: 1 to {MAX_KEY} printable characters"
        )));
    }
    Ok(())
}

impl ReadTxn<'_> {
    pub(crate) fn cache_lookup(&self, key: &str) -> Result<Option<ImageId>> {
        let mut st = self
            .sql()
            .prepare_cached("SELECT image FROM build_cache WHERE key = ?1")
            .map_err(self.err())?;
        let image: Option<String> = st
            .query_row([key], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        image
            .map(|i| digest_col(i).map(ImageId))
            .transpose()
            .map_err(self.err())
    }
}

impl WriteTxn<'_> {
    pub(crate) fn cache_record(&self, key: &str, image: &ImageId, now: i64) -> Result<()> {
        self.sql()
            .execute(
                "INSERT OR REPLACE INTO build_cache (key, image, created) VALUES (?1, ?2, ?3)",
                params![key, image.0.as_str(), now],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

impl Store {
    /// The image a build step with this key produced, if it is still in the store.
    pub fn cache_lookup(&self, key: &str) -> Result<Option<ImageId>> {
        check_key(key)?;
        self.meta.read(|tx| tx.cache_lookup(key))
    }

    /// Records that the step with this key produced `image` (which must exist); a later
    /// record of the same key replaces it.
    pub fn cache_record(&self, key: &str, image: &str) -> Result<ImageId> {
        check_key(key)?;
        let img = self.image(image)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // Additive: losing the newest entry to a power cut only costs a cache miss.
        self.meta
            .write_additive(|tx| tx.cache_record(key, &img.id, now))?;
        Ok(img.id)
    }
}

#[cfg(test)]
mod tests {
    use crate::meta::Meta;
    use strata_types::{Digest, ImageId};

    #[test]
    fn entries_go_with_their_image() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(&dir.path().join("meta.db"), &dir.path().join("init.lock")).unwrap();
        let id = ImageId(Digest::of(b"config"));
        meta.write(|tx| {
            tx.sql()
                .execute(
                    "INSERT INTO images VALUES (?1, NULL, ?2, 1)",
                    [id.0.as_str(), Digest::of(b"manifest").as_str()],
                )
                .unwrap();
            tx.cache_record("k1", &id, 1)?;
            tx.cache_record("k2", &id, 1)
        })
        .unwrap();
        assert_eq!(
            meta.read(|tx| tx.cache_lookup("k1")).unwrap(),
            Some(id.clone())
        );
        assert_eq!(meta.read(|tx| tx.cache_lookup("nope")).unwrap(), None);
        // A record for an image that does not exist is refused.
        let ghost = ImageId(Digest::of(b"ghost"));
        assert!(meta.write(|tx| tx.cache_record("k3", &ghost, 1)).is_err());
        meta.write(|tx| {
            tx.sql()
                .execute("DELETE FROM images WHERE id = ?1", [id.0.as_str()])
                .unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(meta.read(|tx| tx.cache_lookup("k1")).unwrap(), None);
        assert_eq!(meta.read(|tx| tx.cache_lookup("k2")).unwrap(), None);
    }

    #[test]
    fn hostile_keys_are_refused() {
        assert!(super::check_key("").is_err());
        assert!(super::check_key(&"x".repeat(300)).is_err());
        assert!(super::check_key("a\nb").is_err());
        assert!(super::check_key("sha256:abc").is_ok());
    }
}
