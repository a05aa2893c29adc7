//! The archive in an S3-compatible bucket (`archive.backend = "s3"`), against a real
//! SeaweedFS server started on 127.0.0.1 (tests/common/weed.rs), never a mock: the whole
//! `mjlink` binary archives from a local CDN into the bucket, verifies and repairs there, and
//! survives the store killed mid-batch, an upload cut short, a body changed in transit and an
//! expired key. Every object's SHA-256 is compared with the bytes the CDN served.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fake_cdn::Cdn;
use common::mj::{self, png};
use common::s3_proxy::Proxy;
use common::weed::{Weed, KEY_ID, SECRET};
use futures_util::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::Value;
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// A real 64x64 PNG (for a thumbnail).
fn real_png(seed: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, seed]));
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A Midjourney message with one attachment, as a gateway dispatch.
fn message(id: u64, content: &str, url: &str, filename: &str, reply_to: Option<u64>) -> Value {
    mj::dispatch(&mj::message(id, content, url, filename, reply_to))
}

/// Message ids in May 2024 (the layout's `2024/05`), `n` seconds apart.
fn id(n: u64) -> u64 {
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    ((start + n * 1000) << 22) + n
}

fn uuid(n: u64) -> String {
    format!("5eed0000-0000-4000-8000-{n:012}")
}

/// `mjlink` with the test's database, local folder and bucket (through `endpoint`, the
/// server or the proxy), as a user configures it through the environment.
fn mjlink(dir: &Path, endpoint: &str, key_id: &str, secret: &str) -> Command {
    let mut command = common::mjlink_command();
    command
        .current_dir(dir)
        .env("MJLINK_DATABASE_PATH", dir.join("a.db"))
        .env("MJLINK_ARCHIVE_DIR", dir.join("work"))
        .env("MJLINK_ARCHIVE_HOSTS", "127.0.0.1")
        .env("MJLINK_ARCHIVE_BACKEND", "s3")
        .env("MJLINK_ARCHIVE_S3_BUCKET", common::weed::BUCKET)
        .env("MJLINK_ARCHIVE_S3_ENDPOINT", endpoint)
        .env("MJLINK_ARCHIVE_S3_ACCESS_KEY_ID", key_id)
        .env("MJLINK_ARCHIVE_S3_SECRET_ACCESS_KEY", secret)
        .env("MJLINK_ARCHIVE_S3_PART_MIB", "5");
    command
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `mjlink ARGS` as [`mjlink`] sets it up, with the test's credentials.
async fn mjlink_run(dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    mjlink_run_as(dir, endpoint, KEY_ID, SECRET, args).await
}

async fn mjlink_run_as(dir: &Path, endpoint: &str, key_id: &str, secret: &str, args: &[&str]) -> Output {
    let mut command = mjlink(dir, endpoint, key_id, secret);
    command.args(args);
    run(command).await
}

async fn replay(dir: &Path, endpoint: &str, lines: &[Value], download: bool) -> Output {
    let trace = dir.join(format!("t{}.jsonl", lines.len()));
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&trace, text.join("\n")).unwrap();
    let mut command = mjlink(dir, endpoint, KEY_ID, SECRET);
    command.arg("replay");
    if download {
        command.arg("--download");
    }
    command.arg(&trace);
    run(command).await
}

fn images(dir: &Path) -> Vec<Value> {
    let output = mjlink(dir, "http://127.0.0.1:9", KEY_ID, SECRET)
        .args(["images", "--format", "jsonl"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every object in the bucket: key -> SHA-256 of its bytes.
async fn objects(weed: &Weed) -> BTreeMap<String, String> {
    let client = weed.client();
    let listed: Vec<_> = client.list(None).collect().await;
    let mut objects = BTreeMap::new();
    for meta in listed {
        let meta = meta.unwrap();
        let bytes = client.get(&meta.location).await.unwrap().bytes().await.unwrap();
        objects.insert(meta.location.to_string(), sha(&bytes));
    }
    objects
}

fn uploads_in_progress(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("a.db")).unwrap();
    db.query_row("SELECT count(*) FROM uploads", [], |row| row.get(0))
        .unwrap()
}

/// A grid (a real PNG), U1, U2 and U3 with U2's exact bytes (the N-copies bug), and U4 of
/// 12 MiB (three parts of 5 MiB): what each key must hold. Of U2 and U3, whichever finished
/// first holds the bytes (`u23` stands for it).
fn family(base: &str, cdn: &Cdn) -> (Vec<Value>, BTreeMap<String, Vec<u8>>) {
    let uuid = uuid(1);
    let grid = real_png(1);
    cdn.serve("/g.png", grid.clone());
    let mut lines = vec![message(
        id(1),
        "**a cat** - <@5> (fast)",
        &format!("{base}/g.png"),
        &format!("u_a_cat_{uuid}.png"),
        None,
    )];
    let mut expected = BTreeMap::from([(format!("2024/05/{uuid}/grid.png"), grid)]);
    for (n, tile, body) in [
        (2u64, 1u8, png(2, 20_000)),
        (3, 2, png(3, 20_000)),
        (4, 3, png(3, 20_000)),
        (5, 4, png(4, 12 * MIB)),
    ] {
        let path = format!("/u{tile}.png");
        cdn.serve(&path, body.clone());
        lines.push(message(
            id(n),
            &format!("**a cat** - Image #{tile} <@5>"),
            &format!("{base}{path}"),
            "u.png",
            Some(id(1)),
        ));
        let name = match tile {
            2 | 3 => "u23".to_string(),
            _ => format!("u{tile}"),
        };
        expected.insert(format!("2024/05/{uuid}/{name}.png"), body);
    }
    (lines, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_goes_into_the_bucket_and_verify_repair_and_the_web_read_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"));
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let (lines, expected) = family(&base, &cdn);
    let uuid = uuid(1);

    let output = replay(dir.path(), &weed.endpoint(), &lines, true).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("archived 4, deduplicated 1, failed 0, to retry later 0, identical tiles 1"),
        "{said}"
    );
    assert!(!said.contains(SECRET), "the secret is never shown: {said}");

    // The bucket holds the layout as keys, each object exactly the bytes served; U3 (U2's
    // bytes) is stored once.
    let mut stored = objects(&weed).await;
    let u2 = format!("2024/05/{uuid}/u2.png");
    let u3 = format!("2024/05/{uuid}/u3.png");
    let kept = match (stored.contains_key(&u2), stored.contains_key(&u3)) {
        (true, false) => u2,
        (false, true) => u3,
        other => panic!("U2's bytes are stored once: {other:?} in {stored:#?}"),
    };
    let u23 = format!("2024/05/{uuid}/u23.png");
    let held = stored.remove(&kept).unwrap();
    stored.insert(u23.clone(), held);
    for (key, body) in &expected {
        assert_eq!(stored.get(key), Some(&sha(body)), "{key} in {stored:#?}");
    }
    let family_keys: BTreeSet<&str> = stored.keys().map(String::as_str).collect();
    let want: BTreeSet<String> = expected
        .keys()
        .cloned()
        .chain([
            format!("2024/05/{uuid}/metadata.json"),
            format!("2024/05/{uuid}/prompt.txt"),
            ".mjlink-archive".to_string(),
        ])
        .collect();
    assert_eq!(
        family_keys,
        want.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "no other object, no duplicate"
    );
    let client = weed.client();
    let metadata_key = object_store::path::Path::from(format!("2024/05/{uuid}/metadata.json"));
    let metadata: Value =
        serde_json::from_slice(&client.get(&metadata_key).await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(metadata["grid"]["job_uuid"], uuid);
    assert_eq!(metadata["results"].as_array().unwrap().len(), 4, "{metadata}");
    // Nothing of the archive on the local disk: only the working folder's staging and lock.
    let local: Vec<_> = common::files_under(&dir.path().join("work"))
        .into_iter()
        .filter(|path| !path.starts_with(dir.path().join("work/.staging")))
        .collect();
    assert_eq!(local, [dir.path().join("work/.mjlink-lock")], "{local:?}");
    assert_eq!(uploads_in_progress(dir.path()), 0);
    let listed = images(dir.path());
    assert!(
        listed.iter().all(|image| image["state"] == "archived"),
        "{listed:?}"
    );

    // The web gallery reads the bucket: the 12 MiB upscale whole, and the grid's thumbnail.
    let mut env: BTreeMap<String, String> = mjlink(dir.path(), &weed.endpoint(), KEY_ID, SECRET)
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
        .collect();
    env.insert("MJLINK_WEB_BIND".into(), "127.0.0.1:0".into());
    let config = mjlink::config::Config::load(None, |name| env.get(name).cloned()).unwrap();
    let options = mjlink::web::WebOptions::from_config(&config, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = mjlink::web::Serving::spawn(listener, options).unwrap();
    let attachment = |message: u64| (message + 1).to_string();
    let http = reqwest::Client::new();
    let big = http
        .get(format!(
            "http://{}/api/image/{}",
            serving.address,
            attachment(id(5))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 200);
    let big = big.bytes().await.unwrap();
    assert_eq!(sha(&big), sha(&expected[&format!("2024/05/{uuid}/u4.png")]));
    let thumb = http
        .get(format!(
            "http://{}/api/thumb/{}",
            serving.address,
            attachment(id(1))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    serving.stop().await.unwrap();

    // A reader with a limit (a Discord notification's attachment, 10 MiB at most) gets the
    // grid, and for U4 (12 MiB) only the answer that it is larger.
    let settings = mjlink(dir.path(), &weed.endpoint(), KEY_ID, SECRET);
    let env: BTreeMap<String, String> = settings
        .get_envs()
        .filter_map(|(name, value)| Some((name.to_str()?.to_string(), value?.to_str()?.to_string())))
        .collect();
    let config = mjlink::config::Config::load(None, |name| env.get(name).cloned()).unwrap();
    let backend = mjlink::archive::backend::Backend::from_config(&config.archive).unwrap();
    let limit = 10 << 20;
    let grid = backend
        .read_at_most(&format!("2024/05/{uuid}/grid.png"), limit)
        .await
        .unwrap();
    assert_eq!(
        grid.as_deref(),
        Some(&expected[&format!("2024/05/{uuid}/grid.png")][..])
    );
    let u4 = backend
        .read_at_most(&format!("2024/05/{uuid}/u4.png"), limit)
        .await
        .unwrap();
    assert!(u4.is_none());

    // One object overwritten with garbage, one deleted: verify says so; --repair downloads
    // them again and puts them back under their keys.
    let u1 = object_store::path::Path::from(format!("2024/05/{uuid}/u1.png"));
    let grid = object_store::path::Path::from(format!("2024/05/{uuid}/grid.png"));
    client
        .put(&u1, PutPayload::from(b"garbage".to_vec()))
        .await
        .unwrap();
    client.delete(&grid).await.unwrap();
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["verify"]).await;
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("checked 5, ok 3, missing or corrupt 2"), "{said}");
    assert!(
        said.contains("missing: 2024/05/") && said.contains("corrupt (hash differs)"),
        "{said}"
    );
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["verify", "--repair"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let mut stored = objects(&weed).await;
    let held = stored.remove(&kept).unwrap();
    stored.insert(u23, held);
    for (key, body) in &expected {
        assert_eq!(stored.get(key), Some(&sha(body)), "{key} restored");
    }

    // `doctor` writes and removes its probe, and says the bucket is writable; with a wrong
    // secret it says the credentials are refused, without showing the secret.
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["doctor"]).await;
    let said = text(&output);
    let bucket_line = said
        .lines()
        .find(|line| line.contains("bucket"))
        .unwrap_or_default();
    assert!(
        bucket_line.contains(&format!("s3://mjlink/ at {} is writable", weed.endpoint())),
        "{said}"
    );
    assert!(!objects(&weed).await.contains_key(".mjlink-doctor"));
    let wrong = "not-the-secret-0000000000000000000000000";
    let output = mjlink_run_as(dir.path(), &weed.endpoint(), KEY_ID, wrong, &["doctor"]).await;
    let said = text(&output);
    let bucket_line = said
        .lines()
        .find(|line| line.contains("bucket"))
        .unwrap_or_default();
    assert!(bucket_line.contains("refused mjlink's credentials"), "{said}");
    assert!(!said.contains(wrong) && !said.contains(SECRET), "{said}");
}

/// Issue 14's "the server stopped mid-batch and restarted": SeaweedFS is killed (SIGKILL)
/// while `mjlink archive` uploads 12 small files and 4 of 11 MiB in parts. The pass stops
/// with one sentence and leaves the rest pending as they were; after the restart the next
/// pass stores every file exactly once, with its SHA-256 equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_killed_mid_batch_and_restarted_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut weed = Weed::start(&dir.path().join("weed"));
    let cdn = Cdn::with_delay(Duration::from_millis(120));
    let base = format!("http://{}", cdn.clone().start().await);
    let mut lines = Vec::new();
    let mut expected = BTreeMap::new();
    for n in 0..16u64 {
        let body = if n % 4 == 3 {
            png(n as u8, 11 * MIB)
        } else {
            png(n as u8, 30_000)
        };
        cdn.serve(&format!("/g{n}.png"), body.clone());
        lines.push(message(
            id(n),
            &format!("**prompt {n}** - <@5> (fast)"),
            &format!("{base}/g{n}.png"),
            &format!("u_p_{}.png", uuid(n)),
            None,
        ));
        expected.insert(format!("2024/05/{}/grid.png", uuid(n)), body);
    }
    let output = replay(dir.path(), &weed.endpoint(), &lines, false).await;
    assert!(output.status.success(), "{}", text(&output));

    let child = mjlink(dir.path(), &weed.endpoint(), KEY_ID, SECRET)
        .arg("archive")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the store once the first files are in, while the others are on their way.
    let started = Instant::now();
    loop {
        let archived = images(dir.path())
            .iter()
            .filter(|image| image["state"] == "archived")
            .count();
        if archived >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing archived in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    weed.kill();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let said = text(&output);
    assert!(
        !output.status.success(),
        "the pass says the store is gone: {said}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("mjlink: ") && last.contains("cannot be reached") && last.contains("stay pending"),
        "one sentence with its cause: {said}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{said}"
    );
    let after_kill = images(dir.path());
    let archived = after_kill
        .iter()
        .filter(|image| image["state"] == "archived")
        .count();
    assert!(
        (2..16).contains(&archived),
        "the kill landed mid-batch: {archived} archived"
    );
    assert!(
        after_kill
            .iter()
            .filter(|image| image["state"] != "archived")
            .all(|image| image["state"] == "pending" && image["attempts"] == 0),
        "an outage is not held against the images: {after_kill:#?}"
    );

    weed.restart();
    weed.serving().await;
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["archive"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["verify"]).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("checked 16, ok 16, missing or corrupt 0"),
        "{}",
        text(&output)
    );
    let stored = objects(&weed).await;
    for (key, body) in &expected {
        assert_eq!(stored.get(key), Some(&sha(body)), "{key}: {stored:#?}");
    }
    let images_stored = stored.keys().filter(|key| key.ends_with(".png")).count();
    assert_eq!(images_stored, 16, "each file exactly once: {stored:#?}");
    assert_eq!(uploads_in_progress(dir.path()), 0);
}

/// A SeaweedFS in a new folder, the proxy in front of it, and a CDN with its base URL.
async fn behind_a_proxy() -> (tempfile::TempDir, Weed, Proxy, Cdn, String) {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"));
    let proxy = Proxy::start(format!("127.0.0.1:{}", weed.s3_port()).parse().unwrap()).await;
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    (dir, weed, proxy, cdn, base)
}

/// One image of `size` bytes (a grid) replayed, its file served, the bucket behind a proxy.
async fn one_big_image_behind_a_proxy(seed: u8, size: usize) -> (tempfile::TempDir, Weed, Proxy, Vec<u8>) {
    let (dir, weed, proxy, cdn, base) = behind_a_proxy().await;
    let body = png(seed, size);
    cdn.serve("/big.png", body.clone());
    let lines = [message(
        id(1),
        "**a big one** - <@5> (fast)",
        &format!("{base}/big.png"),
        &format!("u_big_{}.png", uuid(1)),
        None,
    )];
    let output = replay(dir.path(), &proxy.endpoint(), &lines, false).await;
    assert!(output.status.success(), "{}", text(&output));
    (dir, weed, proxy, body)
}

/// How many multipart uploads these requests started (CreateMultipartUpload).
fn uploads_started(requests: &[(String, String)]) -> usize {
    requests
        .iter()
        .filter(|(method, target)| {
            method == "POST" && target.contains("?uploads") && !target.contains("uploadId")
        })
        .count()
}

/// A multipart upload cut short (mjlink killed while part 3 of 4 is on its way) resumes from
/// the parts the store confirmed: the next pass sends only parts 3 and 4, in the same upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_short_resumes_from_its_last_confirmed_part() {
    let (dir, weed, proxy, body) = one_big_image_behind_a_proxy(9, 16 * MIB).await;

    proxy.stall_part(Some(3));
    let mut child = mjlink(dir.path(), &proxy.endpoint(), KEY_ID, SECRET)
        .arg("archive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !proxy
        .requests()
        .iter()
        .any(|(method, target)| method == "PUT" && target.contains("partNumber=3"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            proxy.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Parts 1 and 2 are recorded before part 3 is sent.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(uploads_in_progress(dir.path()), 1);
    let key = object_store::path::Path::from(format!("2024/05/{}/grid.png", uuid(1)));
    assert!(
        matches!(
            weed.client().head(&key).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "nothing is visible before the upload completes"
    );
    assert_eq!(uploads_started(&proxy.requests()), 1);

    proxy.stall_part(None);
    proxy.clear();
    let output = mjlink_run(dir.path(), &proxy.endpoint(), &["archive"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let requests = proxy.requests();
    let parts: Vec<&str> = requests
        .iter()
        .filter(|(method, target)| method == "PUT" && target.contains("partNumber="))
        .filter_map(|(_, target)| target.split("partNumber=").nth(1)?.split('&').next())
        .collect();
    assert_eq!(parts, ["3", "4"], "only the parts not confirmed: {requests:?}");
    assert_eq!(
        uploads_started(&requests),
        0,
        "the same upload, not a new one: {requests:?}"
    );
    let stored = weed.client().get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha(&stored), sha(&body));
    assert_eq!(uploads_in_progress(dir.path()), 0);
}

/// An upload the store refuses to complete (its list of parts arrives damaged: 400) is
/// aborted and forgotten, so the next pass starts a new upload rather than repeating the
/// refused one forever; the image waits, uncharged as archived, and is then stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_store_refuses_to_complete_is_abandoned_and_started_again() {
    let (dir, weed, proxy, body) = one_big_image_behind_a_proxy(7, 12 * MIB).await;

    proxy.corrupt_next("POST", 1, "uploadId=");
    let output = mjlink_run(dir.path(), &proxy.endpoint(), &["archive"]).await;
    let said = text(&output);
    assert_eq!(proxy.corrupted(), 1, "{said}");
    assert!(
        said.contains("archived 0, deduplicated 0, failed 0, to retry later 1"),
        "{said}"
    );
    let requests = proxy.requests();
    assert_eq!(uploads_started(&requests), 1, "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|(method, target)| method == "DELETE" && target.contains("uploadId=")),
        "the refused upload is aborted: {requests:?}"
    );
    assert_eq!(uploads_in_progress(dir.path()), 0, "and forgotten");
    let key = object_store::path::Path::from(format!("2024/05/{}/grid.png", uuid(1)));
    assert!(matches!(
        weed.client().head(&key).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // Its retry is due (as if the wait had passed): a new upload, every part sent again.
    rusqlite::Connection::open(dir.path().join("a.db"))
        .unwrap()
        .execute("UPDATE attachments SET next_try_at = NULL", [])
        .unwrap();
    proxy.clear();
    let output = mjlink_run(dir.path(), &proxy.endpoint(), &["archive"]).await;
    let said = text(&output);
    assert!(said.contains("archived 1, deduplicated 0, failed 0"), "{said}");
    let requests = proxy.requests();
    assert_eq!(uploads_started(&requests), 1, "{requests:?}");
    let stored = weed.client().get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha(&stored), sha(&body));
    assert_eq!(uploads_in_progress(dir.path()), 0);
}

/// A body changed on the way (one byte flipped after mjlink computed its SHA-256) is refused
/// by the store and sent again; a link that corrupts every body never gets the image marked
/// archived. (Without the checksum header this server would keep the corrupted bytes: the
/// first half shows the header is sent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_changed_in_transit_is_refused_and_never_marked_archived() {
    let (dir, weed, proxy, cdn, base) = behind_a_proxy().await;
    let first = png(1, 40_000);
    let second = png(2, 40_000);
    cdn.serve("/a.png", first.clone());
    cdn.serve("/b.png", second.clone());
    let a = message(
        id(1),
        "**a** - <@5> (fast)",
        &format!("{base}/a.png"),
        &format!("u_a_{}.png", uuid(1)),
        None,
    );
    let b = message(
        id(2),
        "**b** - <@5> (fast)",
        &format!("{base}/b.png"),
        &format!("u_b_{}.png", uuid(2)),
        None,
    );
    let output = replay(dir.path(), &proxy.endpoint(), std::slice::from_ref(&a), false).await;
    assert!(output.status.success(), "{}", text(&output));
    proxy.corrupt_next_puts(1, ".png");
    let output = mjlink_run(dir.path(), &proxy.endpoint(), &["archive"]).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert_eq!(proxy.corrupted(), 1);
    assert!(
        said.contains("changed in transit") && said.contains("BadDigest"),
        "{said}"
    );
    assert!(said.contains("archived 1, deduplicated 0, failed 0"), "{said}");
    let key_a = object_store::path::Path::from(format!("2024/05/{}/grid.png", uuid(1)));
    let stored = weed.client().get(&key_a).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha(&stored), sha(&first), "the store kept the whole copy");

    // Every body corrupted: refused each time; the image stays pending, nothing stored.
    let output = replay(dir.path(), &proxy.endpoint(), &[a, b], false).await;
    assert!(output.status.success(), "{}", text(&output));
    proxy.corrupt_next_puts(1000, ".png");
    let output = mjlink_run(dir.path(), &proxy.endpoint(), &["archive"]).await;
    let said = text(&output);
    assert!(
        said.contains("archived 0, deduplicated 0, failed 0, to retry later 1"),
        "{said}"
    );
    let key_b = object_store::path::Path::from(format!("2024/05/{}/grid.png", uuid(2)));
    assert!(matches!(
        weed.client().head(&key_b).await,
        Err(object_store::Error::NotFound { .. })
    ));
    let b_row = images(dir.path())
        .into_iter()
        .find(|image| image["message_id"].as_str() == Some(id(2).to_string().as_str()))
        .unwrap();
    assert_eq!(b_row["state"], "pending", "{b_row}");
    assert!(
        b_row["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("BadDigest"),
        "{b_row}"
    );
}

/// An expired key (a service account made with `-expiry`): the pass stops before it touches
/// anything, with one sentence that names the settings and never the secret; the images stay
/// pending, and the next pass with a valid key stores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_stops_the_pass_with_one_sentence_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"));
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let bodies = [png(1, 30_000), png(2, 30_000)];
    let lines: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| {
            let n = n as u64 + 1;
            cdn.serve(&format!("/g{n}.png"), body.clone());
            message(
                id(n),
                &format!("**p{n}** - <@5> (fast)"),
                &format!("{base}/g{n}.png"),
                &format!("u_p_{}.png", uuid(n)),
                None,
            )
        })
        .collect();

    let made = weed.shell(
        "s3.user.create -name=temp1 -access_key=TEMPKEY0000000000001 -secret_key=temp-secret-0000000000000000000000000001\n\
         s3.configure -user=temp1 -actions=Read,Write,List -buckets=mjlink -apply\n\
         s3.serviceaccount.create -user=temp1 -expiry=60s -actions=Read,Write,List\n",
    );
    let field = |name: &str| {
        made.lines()
            .find_map(|line| line.trim().strip_prefix(name).map(|rest| rest.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in:\n{made}"))
    };
    let (key_id, secret) = (field("Access Key:"), field("Secret Key:"));
    let issued = Instant::now();
    // The new key reaches the S3 gateway within a moment, or, on a loaded machine, more than
    // ten seconds (seen once in CI): wait until it can write. It expires 60 s after it was
    // made, long after the first pass below.
    let probe = object_store::path::Path::from("probe");
    let client = weed.client_as(&key_id, &secret);
    let mut last = None;
    while issued.elapsed() < Duration::from_secs(40) {
        match client.put(&probe, PutPayload::from(b"x".to_vec())).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(error) => last = Some(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last.is_none(),
        "the service account cannot write: {last:?}\n{made}"
    );
    weed.client().delete(&probe).await.unwrap();

    // While the key is valid: the first image goes in.
    let output = replay(dir.path(), &weed.endpoint(), &lines[..1], false).await;
    assert!(output.status.success(), "{}", text(&output));
    let output = mjlink_run_as(dir.path(), &weed.endpoint(), &key_id, &secret, &["archive"]).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("archived 1,"),
        "{}",
        text(&output)
    );

    // Expired: refused, in one sentence, nothing counted against the image.
    let output = replay(dir.path(), &weed.endpoint(), &lines, false).await;
    assert!(output.status.success(), "{}", text(&output));
    let wait = Duration::from_secs(62).saturating_sub(issued.elapsed());
    tokio::time::sleep(wait).await;
    let output = mjlink_run_as(dir.path(), &weed.endpoint(), &key_id, &secret, &["archive"]).await;
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one sentence: {said}");
    assert!(
        stderr.contains("refused mjlink's credentials") && stderr.contains("archive.s3_access_key_id"),
        "{said}"
    );
    assert!(!said.contains(&secret), "the secret is never shown: {said}");
    let pending: Vec<Value> = images(dir.path())
        .into_iter()
        .filter(|image| image["state"] != "archived")
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0]["state"].as_str(), pending[0]["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );

    // A valid key: stored.
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["archive"]).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("archived 1,"),
        "{}",
        text(&output)
    );
    let stored = objects(&weed).await;
    for (n, body) in bodies.iter().enumerate() {
        let key = format!("2024/05/{}/grid.png", uuid(n as u64 + 1));
        assert_eq!(stored.get(&key), Some(&sha(body)), "{key}");
    }
}

/// A folder archive is not silently taken for a bucket: pointed at an empty bucket, the
/// database stops with one line naming its folder; once the folder's files (marker included)
/// are copied under the same keys, the bucket is recognized and verifies whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_archive_copied_into_a_bucket_is_recognized_and_an_empty_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"));
    let cdn = Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    let (lines, _) = family(&base, &cdn);
    // Archived into the folder `work` (the default backend).
    let mut folder = mjlink(dir.path(), &weed.endpoint(), KEY_ID, SECRET);
    folder.env("MJLINK_ARCHIVE_BACKEND", "fs");
    let trace = dir.path().join("t.jsonl");
    let text_lines: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&trace, text_lines.join("\n")).unwrap();
    folder.args(["replay", "--download"]).arg(&trace);
    let output = run(folder).await;
    assert!(output.status.success(), "{}", text(&output));

    let output = mjlink_run(dir.path(), &weed.endpoint(), &["verify"]).await;
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not this database's archive")
            && stderr.contains(&dir.path().join("work").display().to_string()),
        "{said}"
    );

    let client = weed.client();
    let root = dir.path().join("work");
    for file in common::files_under(&root) {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().to_string();
        if relative.starts_with(".staging") || relative == ".mjlink-lock" {
            continue;
        }
        let key = object_store::path::Path::from(relative);
        client
            .put(&key, PutPayload::from(std::fs::read(&file).unwrap()))
            .await
            .unwrap();
    }
    let output = mjlink_run(dir.path(), &weed.endpoint(), &["verify"]).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("checked 5, ok 5, missing or corrupt 0"),
        "{}",
        text(&output)
    );
}
