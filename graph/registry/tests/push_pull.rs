//! Push and pull against a real registry (Debian's docker-registry) over plain HTTP:
//! round trip, skipping existing blobs, chunked uploads, cross-repository mounts, tag
//! listing with pagination, deletion.

mod common;

use std::io::Read;

use common::{image, options, pull_and_compare, push, reference};
use strata_graph_image::{ImageDestination, ImageSource};
use strata_graph_registry::{
    delete_image, list_tags, Client, DockerDestination, DockerSource, Reference, RegistriesConf,
};
use strata_tests::registry::{Registry, RegistryOptions};
use strata_types::{ErrorKind, HasKind};

#[test]
fn anonymous_http_round_trip() {
    let reg = Registry::start(RegistryOptions::default());
    let img = image(1, &[1000, 70_000]);
    let r = reference(&reg, "strata/app:v1");
    let opts = options(&reg);

    let dest = DockerDestination::open(&r, &opts).expect("open destination");
    assert_eq!(
        push(&dest, &img).expect("push"),
        3,
        "config and two layers sent"
    );

    let src = DockerSource::open(&r, &opts).expect("open source");
    assert_eq!(src.manifest_digest(), &img.manifest_digest());
    assert_eq!(
        src.describe(),
        format!("docker://{}/strata/app:v1", reg.host())
    );
    pull_and_compare(&src, &img);

    // By digest too, and the digest is what the registry reports.
    let by_digest = r.with_digest(img.manifest_digest());
    let src = DockerSource::open(&by_digest, &opts).expect("open by digest");
    pull_and_compare(&src, &img);
    let head = src
        .client()
        .manifest_head("strata/app", "v1")
        .expect("manifest HEAD");
    assert_eq!(head.digest, Some(img.manifest_digest()));
    assert_eq!(head.size, Some(img.manifest.bytes.len() as u64));
    assert!(
        reg.log().contains(&format!(
            "http.request.useragent={}",
            strata_graph_registry::USER_AGENT
        )),
        "requests carry the strata User-Agent"
    );
}

#[test]
fn insecure_registry_from_registries_conf_and_missing_images() {
    let reg = Registry::start(RegistryOptions::default());
    let mut conf = RegistriesConf::default();
    conf.merge_str(
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.host()
        ),
        std::path::Path::new("test.conf"),
    )
    .expect("valid conf");
    let mut opts = options(&reg);
    opts.client.tls_verify = None;

    // Without registries.conf, verification is on and plain HTTP is not tried.
    let r = reference(&reg, "x/y:1");
    let e = DockerSource::open(&r, &opts).expect_err("HTTPS to an HTTP registry");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains(&reg.host()), "{e}");

    opts.registries = Some(conf);
    let e = DockerSource::open(&r, &opts).expect_err("nothing pushed yet");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("x/y:1"), "{e}");

    let img = image(2, &[10]);
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);
}

#[test]
fn existing_blobs_are_skipped() {
    let reg = Registry::start(RegistryOptions::default());
    let opts = options(&reg);
    let img = image(3, &[5000]);
    let dest = DockerDestination::open(&reference(&reg, "a/b:1"), &opts).expect("dest");
    for (d, _) in img.blobs() {
        assert!(
            !dest.has_blob(&d).expect("HEAD"),
            "fresh registry has nothing"
        );
    }
    assert_eq!(push(&dest, &img).expect("push"), 2);
    for (d, _) in img.blobs() {
        assert!(dest.has_blob(&d).expect("HEAD"));
    }
    // Pushing again (another tag) sends no blob.
    let again = DockerDestination::open(&reference(&reg, "a/b:2"), &opts).expect("dest");
    assert_eq!(push(&again, &img).expect("push again"), 0);
    let mut tags = list_tags(&reference(&reg, "a/b"), &opts).expect("tags");
    tags.sort();
    assert_eq!(tags, ["1", "2"]);
}

#[test]
fn chunked_upload_round_trip() {
    let reg = Registry::start(RegistryOptions::default());
    let mut opts = options(&reg);
    opts.client.chunk_size = Some(64 * 1024);
    let img = image(4, &[300_000, 10]);
    let r = reference(&reg, "chunked/app:latest");
    push(&DockerDestination::open(&r, &opts).expect("dest"), &img).expect("push");
    pull_and_compare(&DockerSource::open(&r, &opts).expect("src"), &img);
    // 300000 bytes in 64 KiB chunks is 5 PATCH requests; the small blobs go monolithic.
    let patches = reg
        .log()
        .lines()
        .filter(|l| l.contains("http.request.method=PATCH") && l.contains("response completed"))
        .count();
    assert_eq!(patches, 5, "registry log:\n{}", reg.log());
}

/// A reader that fails the test if anything reads it: a mounted blob sends no bytes.
struct MustNotRead;

impl Read for MustNotRead {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("the blob should have been mounted, not uploaded");
    }
}

#[test]
fn blobs_are_mounted_between_repositories() {
    let reg = Registry::start(RegistryOptions::default());
    let mut opts = options(&reg);
    let img = image(5, &[20_000]);
    push(
        &DockerDestination::open(&reference(&reg, "team/source:1"), &opts).expect("dest"),
        &img,
    )
    .expect("push");

    opts.mount_from = vec!["team/source".into()];
    let target = reference(&reg, "team/target:1");
    let dest = DockerDestination::open(&target, &opts).expect("dest");
    for (d, _) in img.blobs() {
        assert!(!dest.has_blob(&d).expect("HEAD"));
        dest.put_blob(&d, &mut MustNotRead).expect("mount");
        assert!(dest.has_blob(&d).expect("HEAD"));
    }
    dest.put_manifest(&img.manifest, None).expect("manifest");
    pull_and_compare(&DockerSource::open(&target, &opts).expect("src"), &img);

    // A blob the source repository lacks is not mounted: the registry opens an upload.
    let client = dest.client();
    let other = common::bytes(99, 100);
    let d = strata_types::Digest::of(&other);
    let sent = client
        .put_blob(
            "team/target",
            &d,
            100,
            &mut other.as_slice(),
            &["team/source".into()],
        )
        .expect("mount falls back to upload");
    assert!(sent, "bytes were uploaded");
    assert_eq!(
        client.blob_exists("team/target", &d).expect("HEAD"),
        Some(100)
    );
}

#[test]
fn tags_are_listed_across_pages() {
    let reg = Registry::start(RegistryOptions::default());
    let mut opts = options(&reg);
    let img = image(6, &[10]);
    let mut want = Vec::new();
    for i in 0..7 {
        let tag = format!("t{i}");
        push(
            &DockerDestination::open(&reference(&reg, &format!("paged:{tag}")), &opts)
                .expect("dest"),
            &img,
        )
        .expect("push");
        want.push(tag);
    }
    opts.page_size = Some(2);
    // distribution 2.8 lists tags in storage order and ignores `n` for tags (3.0 pages
    // them); the client asks for pages of 2 and follows any `Link` it gets.
    let mut tags = list_tags(&reference(&reg, "paged"), &opts).expect("tags");
    tags.sort();
    assert_eq!(tags, want);

    // The catalog pages too (one repository per page).
    push(
        &DockerDestination::open(&reference(&reg, "other/repo:x"), &opts).expect("dest"),
        &img,
    )
    .expect("push");
    let client = Client::new(&reg.host(), &opts.client).expect("client");
    assert_eq!(
        client.catalog(Some(1)).expect("catalog"),
        ["other/repo", "paged"]
    );
    // Two pages were fetched, the second through the first's `Link`.
    let log = reg.log();
    let pages: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"GET /v2/_catalog"))
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("last=other%2Frepo"), "{pages:?}");

    let e = list_tags(&reference(&reg, "nosuch/repo"), &opts).expect_err("unknown repo");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn delete_removes_the_manifest_and_its_tags() {
    let reg = Registry::start(RegistryOptions::default());
    let opts = options(&reg);
    let keep = image(7, &[10]);
    let gone = image(8, &[10]);
    let r = |t: &str| reference(&reg, &format!("del/app:{t}"));
    push(
        &DockerDestination::open(&r("keep"), &opts).expect("dest"),
        &keep,
    )
    .expect("push");
    push(
        &DockerDestination::open(&r("gone"), &opts).expect("dest"),
        &gone,
    )
    .expect("push");
    push(
        &DockerDestination::open(&r("gone2"), &opts).expect("dest"),
        &gone,
    )
    .expect("push");

    let digest = delete_image(&r("gone"), &opts).expect("delete by tag");
    assert_eq!(digest, gone.manifest_digest());
    let e = DockerSource::open(&r("gone"), &opts).expect_err("deleted");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = DockerSource::open(&r("gone").with_digest(digest.clone()), &opts).expect_err("deleted");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        list_tags(&reference(&reg, "del/app"), &opts).expect("tags"),
        ["keep"]
    );
    DockerSource::open(&r("keep"), &opts).expect("the other image is still there");

    // By digest; deleting twice is NotFound.
    let keep_ref = r("keep").with_digest(keep.manifest_digest());
    assert_eq!(
        delete_image(&keep_ref, &opts).expect("delete"),
        keep.manifest_digest()
    );
    let e = delete_image(&keep_ref, &opts).expect_err("already deleted");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn mirrors_from_registries_conf_are_tried_first() {
    let reg = Registry::start(RegistryOptions::default());
    let img = image(9, &[100]);
    push(
        &DockerDestination::open(&reference(&reg, "mirrored/app:1"), &options(&reg)).expect("dest"),
        &img,
    )
    .expect("push to the mirror");

    // The origin (port 1) refuses connections; its mirror is the test registry, under a
    // path prefix.
    let mut conf = RegistriesConf::default();
    conf.merge_str(
        &format!(
            "[[registry]]\nlocation = \"127.0.0.1:1\"\n[[registry.mirror]]\n\
             location = \"{}/mirrored\"\ninsecure = true\n",
            reg.host()
        ),
        std::path::Path::new("test.conf"),
    )
    .expect("valid conf");
    let mut opts = options(&reg);
    opts.client.tls_verify = None;
    opts.registries = Some(conf);

    let r = Reference::parse("127.0.0.1:1/app:1").expect("reference");
    let src = DockerSource::open(&r, &opts).expect("pulled from the mirror");
    assert_eq!(
        src.pulled_from().to_string(),
        format!("{}/mirrored/app:1", reg.host())
    );
    assert_eq!(src.reference(), &r);
    pull_and_compare(&src, &img);

    // A tag the mirror lacks falls through to the origin, whose failure is reported.
    let e = DockerSource::open(&r.with_tag("2").expect("tag"), &opts).expect_err("no origin");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
}
