//! The store path: the engine hands a whole image to a `StoreDestination`.

mod common;

use std::io::Read;
use std::sync::Mutex;

use common::*;
use strata_graph_image::{
    copy_image, Compression, CopyOptions, Descriptor, ImageDestination, RawManifest, Result,
    StoreDestination, StoreLayer,
};
use strata_types::{Digest, ErrorKind, HasKind};

/// A fake store: reads every layer it lacks, decompresses and checks diff IDs.
#[derive(Default)]
struct FakeStore {
    has: Vec<Digest>,
    got: Mutex<Vec<(Digest, Vec<u8>)>>,
    config: Mutex<Vec<u8>>,
}

impl StoreDestination for FakeStore {
    fn import(
        &self,
        _m: &RawManifest,
        config: &[u8],
        layers: Vec<StoreLayer<'_>>,
    ) -> Result<Digest> {
        *self.config.lock().expect("lock") = config.to_vec();
        for layer in layers {
            if self.has.contains(&layer.diff_id) {
                continue;
            }
            let mut blob = Vec::new();
            (layer.open)()?
                .read_to_end(&mut blob)
                .map_err(strata_graph_image::ImageError::io("read layer", "fake"))?;
            assert_eq!(Digest::of(&uncompress(&blob)), layer.diff_id);
            self.got.lock().expect("lock").push((layer.diff_id, blob));
        }
        Ok(Digest::of(config))
    }
}

impl ImageDestination for FakeStore {
    fn has_blob(&self, _: &Descriptor) -> Result<bool> {
        unreachable!("the engine must use import")
    }
    fn put_blob(&self, _: &Descriptor, _: &mut dyn Read) -> Result<()> {
        unreachable!("the engine must use import")
    }
    fn put_manifest(&self, _: &RawManifest, _: Option<&Digest>) -> Result<()> {
        unreachable!("the engine must use import")
    }
    fn commit(&self) -> Result<()> {
        unreachable!("the engine must use import")
    }
    fn as_store(&self) -> Option<&dyn StoreDestination> {
        Some(self)
    }
    fn describe(&self) -> String {
        "store:fake".into()
    }
}

#[test]
fn store_gets_config_and_verified_layers() {
    let (mem, img) = single(Compression::Gzip);
    let store = FakeStore {
        has: vec![img.diff_ids()[0].clone()],
        ..FakeStore::default()
    };
    let report = copy_image(&mem, &store, &CopyOptions::default()).unwrap();
    assert_eq!(*store.config.lock().unwrap(), img.config);
    assert_eq!(report.image_id, Some(Digest::of(&img.config)));
    assert_eq!((report.blobs_copied, report.blobs_skipped), (2, 1));
    let got = store.got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, img.diff_ids()[1]);
}

#[test]
fn corrupt_layer_aborts_the_store_import() {
    let (mut mem, _) = single(Compression::Gzip);
    let m = strata_graph_image::manifest::parse_manifest(&mem.top).unwrap();
    mem.blobs.get_mut(&m.layers[0].digest).unwrap()[20] ^= 1;
    let store = FakeStore::default();
    let err = copy_image(&mem, &store, &CopyOptions::default()).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(store.got.lock().unwrap().is_empty());
}

#[test]
fn store_refuses_all_and_picks_a_platform() {
    let (mem, host, _) = index();
    let store = FakeStore::default();
    let opts = CopyOptions {
        all: true,
        ..CopyOptions::default()
    };
    let err = copy_image(&mem, &store, &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    copy_image(&mem, &store, &CopyOptions::default()).unwrap();
    assert_eq!(*store.config.lock().unwrap(), host.config);
}
