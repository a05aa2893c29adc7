//! The image downloader against a local HTTP server with faults.

mod common;

use std::time::{Duration, Instant};

use common::fake_cdn::{ok, png, status, Cdn, Reply};
use mjlink::archive::download::{hash_file, put_in_place, FetchError, FetchPolicy, Fetcher};
use mjlink_core::layout::MediaKind;

fn policy() -> FetchPolicy {
    FetchPolicy {
        allowed_hosts: vec!["127.0.0.1".to_string()],
        max_bytes: 1024 * 1024,
        attempts: 4,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        read_timeout: Duration::from_millis(300),
        ..FetchPolicy::default()
    }
}

#[tokio::test]
async fn downloads_with_faults() {
    let cdn = Cdn::default();
    let image = png(200_000);
    cdn.script("/ok.png", vec![ok(image.clone(), "image/png")]);
    cdn.script(
        "/flaky.png",
        vec![
            status(500, vec![]),
            status(503, vec![]),
            ok(image.clone(), "image/png"),
        ],
    );
    cdn.script(
        "/stall.png",
        vec![
            Reply::Stall {
                body: image[..1000].to_vec(),
                stall: Duration::from_secs(3),
            },
            ok(image.clone(), "image/png"),
        ],
    );
    cdn.script(
        "/truncated.png",
        vec![
            Reply::Truncated {
                announced: image.len(),
                body: image[..image.len() / 2].to_vec(),
            },
            ok(image.clone(), "image/png"),
        ],
    );
    cdn.script(
        "/page.html",
        vec![ok(b"<html><body>login</body></html>".to_vec(), "text/html")],
    );
    cdn.script("/wrongtype.png", vec![ok(b"GIF89a......".to_vec(), "text/plain")]);
    cdn.script("/huge.png", vec![ok(png(2 * 1024 * 1024), "image/png")]);
    cdn.script("/expired.png", vec![status(403, vec![])]);
    cdn.script(
        "/limited.png",
        vec![
            status(429, vec![("Retry-After", "1")]),
            ok(image.clone(), "image/png"),
        ],
    );
    cdn.script("/always500.png", vec![status(500, vec![])]);
    cdn.script(
        "/out",
        vec![status(
            302,
            vec![("Location", "http://images.example.invalid/x.png")],
        )],
    );
    let addr = cdn.clone().start().await;
    cdn.script(
        "/in",
        vec![status(302, vec![("Location", &format!("http://{addr}/ok.png"))])],
    );
    let base = format!("http://{addr}");
    let fetcher = Fetcher::new(policy()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let good = fetcher
        .fetch(&format!("{base}/ok.png"), dir.path())
        .await
        .unwrap();
    assert_eq!(good.bytes, image.len() as u64);
    assert_eq!(good.kind, MediaKind::Png);
    assert_eq!(
        hash_file(&good.temp_path).unwrap(),
        (good.sha256.clone(), good.bytes)
    );

    for path in ["/flaky.png", "/stall.png", "/truncated.png", "/in"] {
        let downloaded = fetcher
            .fetch(&format!("{base}{path}"), dir.path())
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        assert_eq!(downloaded.sha256, good.sha256, "{path}");
    }
    assert_eq!(cdn.hits("/flaky.png").len(), 3);

    let limited_start = Instant::now();
    fetcher
        .fetch(&format!("{base}/limited.png"), dir.path())
        .await
        .unwrap();
    assert!(
        limited_start.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );

    let error = fetcher
        .fetch(&format!("{base}/page.html"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::NotAnImage { .. }), "{error}");
    let error = fetcher.fetch(&format!("{base}/wrongtype.png"), dir.path()).await;
    assert!(
        error.is_ok(),
        "the signature decides, not the content type: {error:?}"
    );
    let error = fetcher
        .fetch(&format!("{base}/huge.png"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::TooLarge { .. }), "{error}");
    let error = fetcher
        .fetch(&format!("{base}/expired.png"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Expired { status: 403 }), "{error}");
    let error = fetcher
        .fetch(&format!("{base}/always500.png"), dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::Status {
                status: 500,
                attempts: 4
            }
        ),
        "{error}"
    );
    let error = fetcher
        .fetch(&format!("{base}/out"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::HostNotAllowed { .. }), "{error}");
    let error = fetcher
        .fetch(&format!("http://localhost:{}/ok.png", addr.port()), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::HostNotAllowed { .. }), "{error}");

    // Refused and failed downloads leave nothing behind; good ones are put in place durably.
    let final_path = dir.path().join("2023/07/family/grid.png");
    put_in_place(&good, &final_path).unwrap();
    assert_eq!(hash_file(&final_path).unwrap().0, good.sha256);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(mjlink::archive::download::TEMP_PREFIX)
        })
        .collect();
    // The successful downloads other than `good` are still temp files owned by the caller.
    assert_eq!(
        leftovers.len(),
        6,
        "only successful downloads remain as temporary files"
    );
}

/// Videos are recognized by their bytes: an mp4 served as an octet stream under a `.png`
/// name is an mp4; an animated WebP is told from a still one; an HTML page served as
/// `video/mp4` is refused.
#[tokio::test]
async fn videos_are_known_by_their_bytes() {
    use common::fake_cdn::{animated_webp, mp4};
    let cdn = Cdn::default();
    cdn.script("/clip.png", vec![ok(mp4(50_000), "application/octet-stream")]);
    cdn.script("/grid.webp", vec![ok(animated_webp(40_000), "image/webp")]);
    cdn.script(
        "/fake.mp4",
        vec![ok(b"<!DOCTYPE html><html>ftyp isom</html>".to_vec(), "video/mp4")],
    );
    let base = format!("http://{}", cdn.clone().start().await);
    let fetcher = Fetcher::new(policy()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let clip = fetcher
        .fetch(&format!("{base}/clip.png"), dir.path())
        .await
        .unwrap();
    assert_eq!(clip.kind, MediaKind::Mp4);
    assert_eq!(clip.bytes, mp4(50_000).len() as u64);
    assert_eq!(
        hash_file(&clip.temp_path).unwrap(),
        (clip.sha256.clone(), clip.bytes)
    );
    let grid = fetcher
        .fetch(&format!("{base}/grid.webp"), dir.path())
        .await
        .unwrap();
    assert_eq!(grid.kind, MediaKind::AnimatedWebp);
    let error = fetcher
        .fetch(&format!("{base}/fake.mp4"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::NotAnImage { .. }), "{error}");
}
