//! The web gallery (`mjlink serve`) as a user meets it: a real server on 127.0.0.1:0 over a
//! database replayed from fixtures and an archive of real PNG files; HTTP requests with
//! reqwest, and the pages in a real headless Chromium driven over WebDriver (chromedriver),
//! with a screenshot of each page under `target/screenshots/`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mjlink::config::{Config, Secret};
use mjlink::store::Store;
use mjlink::web::{self, WebOptions};
use mjlink_core::snowflake::Snowflake;
use sha2::Digest;

/// A real upscale (U4) whose grid is known from its reply copy: a family of two.
const UPSCALE: &str = "1128641343909007401";
const ITS_GRID: &str = "1128599623762714675";
/// A result that fits ten grids equally (fixtures/scenarios/heuristics.jsonl).
const AMBIGUOUS: &str = "1235020614205440026";
const XSS: &str = "<script>alert(1)</script>";
/// A start completed by its grid (fixtures/scenarios/formats_2026.jsonl).
const START: &str = "1514932273152000002";
const START_FINAL: &str = "1514932440924160006";

struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
    archive: PathBuf,
    /// The grid whose prompt is `XSS` (the newest message).
    xss_grid: Snowflake,
}

/// A grid line from a real fixture, re-dated to `ms` with the prompt `prompt` (new message
/// and attachment ids, a new job UUID).
fn grid_line(ms: i64, prompt: &str) -> String {
    let line = std::fs::read_to_string(common::root().join("fixtures/real/mjwrapper_10_grids.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let id = ((ms - 1_420_070_400_000) << 22) as u64;
    let time = chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    line.replace("1118493419493404713", &id.to_string())
        .replace("1118493419023638568", &(id + 1).to_string())
        .replace(
            "cc1b4f91-56c7-45c9-a202-dba08dd45524",
            "0e0e0e0e-1111-4222-8333-444444444444",
        )
        .replace("2023-06-14T10:53:31.810000+00:00", &time)
        .replace(
            "**Delicious barbecue. --s 750 --niji 5**",
            &format!("**{} --s 750 --niji 5**", prompt.replace('"', "\\\"")),
        )
}

/// Real fixtures and a grid whose prompt is markup, replayed; every image attachment
/// "archived" as a real PNG under `archive/`, as the archiver lays them out.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web.db");
    let archive = dir.path().join("archive");
    let files: Vec<PathBuf> = [
        "fixtures/real/mjwrapper_10_grids.jsonl",
        "fixtures/real/wxapi_upscale_image4.jsonl",
        "fixtures/scenarios/heuristics.jsonl",
        "fixtures/scenarios/formats_2026.jsonl",
    ]
    .iter()
    .map(|f| common::root().join(f))
    .collect();
    let (_, store) = common::replay_files(&files, &db);
    let xss_ms = 1_788_220_800_000; // 2026-09-01, newer than every fixture
    let (_, store) = common::replay_lines(&[grid_line(xss_ms, &format!("{XSS} a red fox"))], store);
    let xss_grid = Snowflake(((xss_ms - 1_420_070_400_000) << 22) as u64);
    for (n, image) in store.images().unwrap().iter().enumerate() {
        let relative = format!("2026/01/{}/{}.png", image.message_id, image.attachment_id);
        let path = archive.join(&relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = mjlink_sim::png::png(96, 96, n as u64 + 1);
        std::fs::write(&path, &bytes).unwrap();
        let sha = format!("{:x}", sha2::Sha256::digest(&bytes));
        store
            .mark_archived(
                image.attachment_id,
                &relative,
                &sha,
                bytes.len() as u64,
                "png",
                None,
            )
            .unwrap();
    }
    drop(store);
    Fixture {
        dir,
        db,
        archive,
        xss_grid,
    }
}

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(fixture: &Fixture, token: Option<&str>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let options = WebOptions {
            database: fixture.db.clone(),
            archive: mjlink::archive::backend::Backend::Fs {
                root: fixture.archive.clone(),
            },
            bind: address,
            token: token.map(Secret::new),
            pipeline: Default::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            web::serve(listener, &options, async {
                let _ = stopped.await;
            })
            .await
        });
        Server {
            base: format!("http://{address}"),
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).send().await.unwrap()
}

async fn text(url: &str) -> (reqwest::StatusCode, String) {
    let response = get(url).await;
    (response.status(), response.text().await.unwrap())
}

async fn json(url: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let response = get(url).await;
    (response.status(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_the_gallery_families_search_and_stats_with_every_value_escaped() {
    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let base = &server.base;

    // The gallery: newest family first, its image by attachment id, the policy on every page.
    let response = get(&format!("{base}/")).await;
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let page = response.text().await.unwrap();
    let first_tile = page.find("class=\"tile\"").expect("a tile");
    assert!(
        page[first_tile..].starts_with(&format!(
            "class=\"tile\"><a href=\"/family/{}\">",
            fixture.xss_grid
        )),
        "the newest family comes first: {}",
        &page[first_tile..first_tile + 200]
    );
    assert!(
        page.contains("Delicious barbecue."),
        "the real grids are there too"
    );
    // Tiles are thumbnails, never the full images.
    assert!(
        page.matches("<img class=\"thumb\" src=\"/api/thumb/").count() >= 10,
        "{page}"
    );
    assert!(!page.contains("<img class=\"thumb\" src=\"/api/image/"), "{page}");
    // The prompt that is markup is text: escaped, never a script element.
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; a red fox"),
        "{page}"
    );
    assert!(!page.contains(XSS), "the raw markup must not reach the page");

    // Filtered to the upscales: the real one is there, no grid.
    let (status, upscales) = text(&format!("{base}/?action=upscale")).await;
    assert_eq!(status, 200);
    assert!(upscales.contains(&format!("/family/{UPSCALE}")), "{upscales}");
    assert!(!upscales.contains("Delicious barbecue."));
    let (status, refused) = text(&format!("{base}/?action=%3Cb%3E")).await;
    assert_eq!(status, 400);
    assert!(refused.contains("`&lt;b&gt;` is not an action."), "{refused}");

    // A family: the grid and its U4, how it was linked, Discord links, the asked one marked.
    let (status, family) = text(&format!("{base}/family/{UPSCALE}")).await;
    assert_eq!(status, 200, "{family}");
    assert!(family.contains(&format!("id=\"m{ITS_GRID}\"")), "{family}");
    assert!(
        family.contains(&format!("class=\"node depth-1 asked\" id=\"m{UPSCALE}\"")),
        "{family}"
    );
    assert!(family.contains("linked exact (by reference)"), "{family}");
    assert!(family.contains("https://discord.com/channels/"), "{family}");
    assert!(family.contains(">U4</a>"), "{family}");
    // A Discord message link typed in the box leads to its family.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = format!("https://discord.com/channels/1/2/{UPSCALE}");
    let response = no_redirect
        .get(format!("{base}/family"))
        .query(&[("m", link.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/family/{UPSCALE}#m{UPSCALE}").as_str()
    );

    // An ambiguous result shows every candidate as a link, and guesses none.
    let (status, ambiguous) = text(&format!("{base}/family/{AMBIGUOUS}")).await;
    assert_eq!(status, 200);
    assert!(
        ambiguous.contains("ambiguous: fits 10 parents equally"),
        "{ambiguous}"
    );
    assert!(
        ambiguous.contains("<a href=\"/family/1235017845964800002\">"),
        "{ambiguous}"
    );

    // The XSS family page: the prompt is text there too.
    let (_, xss_family) = text(&format!("{base}/family/{}", fixture.xss_grid)).await;
    assert!(xss_family.contains("&lt;script&gt;alert(1)&lt;/script&gt; a red fox"));
    assert!(!xss_family.contains(XSS));

    // Unknown and malformed ids: one sentence, 404.
    let (status, unknown) = text(&format!("{base}/family/42")).await;
    assert_eq!(status, 404);
    assert!(unknown.contains("I have no record of message 42"), "{unknown}");
    let (status, _) = text(&format!("{base}/family/%3Cx%3E")).await;
    assert_eq!(status, 404);

    // Search over the FTS5 index.
    let (status, found) = text(&format!("{base}/search?q=barbecue")).await;
    assert_eq!(status, 200);
    assert!(found.contains("1 prompt match"), "{found}");
    assert!(found.contains("Delicious barbecue."), "{found}");
    let (_, searched_markup) = text(&format!("{base}/search?q=%3Cscript%3E+fox")).await;
    assert!(
        searched_markup.contains("value=\"&lt;script&gt; fox\""),
        "{searched_markup}"
    );
    assert!(!searched_markup.contains("<script>"));

    // Stats: the figures of /stats.
    let store = Store::open(&fixture.db).unwrap();
    let stats = mjlink::commands::answers::stats_figures(&store).unwrap();
    let (status, page) = text(&format!("{base}/stats")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("<th>Grids</th><td>{}</td>", stats.grids)),
        "{page}"
    );
    assert!(
        page.contains(&format!("<th>Ambiguous</th><td>{}</td>", stats.ambiguous)),
        "{page}"
    );
    assert!(stats.ambiguous > 0 && stats.grids >= 11, "{stats:?}");
    // Jobs per day, over the history's last 30 days: its newest day holds the one grid
    // added above (2026-09-01), a bar with its date and count, and nothing from the older
    // fixtures (2023 to 2026-06) falls in that window.
    assert_eq!(stats.jobs_per_day, vec![("2026-09-01".to_string(), 1)]);
    assert!(page.contains("<title>2026-09-01: 1</title>"), "{page}");
    assert_eq!(page.matches("<rect class=\"bar\"").count(), 1, "{page}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_the_slash_commands_do_and_serves_files_by_id_only() {
    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let base = &server.base;
    let store = Store::open(&fixture.db).unwrap();

    // Family and message.
    let (status, family) = json(&format!("{base}/api/family/{UPSCALE}")).await;
    assert_eq!(status, 200, "{family}");
    let nodes = family["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{family}");
    assert_eq!(nodes[0]["message_id"], ITS_GRID);
    assert_eq!(nodes[1]["message_id"], UPSCALE);
    assert_eq!(nodes[1]["link"]["signal"], "reference");
    assert_eq!(nodes[1]["link"]["status"], "linked");
    let (status, message) = json(&format!("{base}/api/message/{UPSCALE}")).await;
    assert_eq!(status, 200);
    assert_eq!(message["family"], ITS_GRID);
    assert_eq!(message["node"]["tile"], 4);
    // A start message leads to the family of the grid that completed it (2026 shapes).
    let (status, start) = json(&format!("{base}/api/message/{START}")).await;
    assert_eq!(status, 200, "{start}");
    let (_, final_grid) = json(&format!("{base}/api/message/{START_FINAL}")).await;
    assert_eq!(start["family"], final_grid["family"], "{start}");
    let (status, missing) = json(&format!("{base}/api/message/42")).await;
    assert_eq!(status, 404);
    assert!(missing["error"]
        .as_str()
        .unwrap()
        .starts_with("I have no record of message 42"));

    // Search and stats: the shared answers, as JSON.
    let (status, found) = json(&format!("{base}/api/search?q=barbecue")).await;
    assert_eq!(status, 200);
    assert_eq!(found["total"], 1);
    assert_eq!(found["hits"][0]["prompt"], "Delicious barbecue. --s 750 --niji 5");
    let (status, _) = json(&format!("{base}/api/search?q=%20")).await;
    assert_eq!(status, 400);
    let (status, stats) = json(&format!("{base}/api/stats")).await;
    assert_eq!(status, 200);
    let expected = serde_json::to_value(mjlink::commands::answers::stats_figures(&store).unwrap()).unwrap();
    assert_eq!(stats, expected);

    // The gallery as JSON, paged by the last id.
    let (status, gallery) = json(&format!("{base}/api/gallery")).await;
    assert_eq!(status, 200);
    let items = gallery["items"].as_array().unwrap();
    assert_eq!(items[0]["message_id"], fixture.xss_grid.to_string());
    let ids: Vec<u64> = items
        .iter()
        .map(|i| i["message_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // An image by attachment id: its bytes, its type, its ETag; 304 when unchanged.
    let attachment = nodes[1]["attachments"][0]["attachment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let response = get(&format!("{base}/api/image/{attachment}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let bytes = response.bytes().await.unwrap();
    let on_disk = std::fs::read(
        fixture
            .archive
            .join(format!("2026/01/{UPSCALE}/{attachment}.png")),
    )
    .unwrap();
    assert_eq!(bytes.as_ref(), on_disk.as_slice());
    assert_eq!(etag, format!("\"{:x}\"", sha2::Sha256::digest(&on_disk)));
    let again = reqwest::Client::new()
        .get(format!("{base}/api/image/{attachment}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // Nothing from the request is a path: names, traversals and unknown ids are 404s.
    for asked in ["..%2F..%2Fweb.db", "web.db", "%2Fetc%2Fpasswd", "1"] {
        let response = get(&format!("{base}/api/image/{asked}")).await;
        assert_eq!(response.status(), 404, "{asked}");
    }
    // A stored path that leads out of the archive is refused, though the file exists.
    std::fs::write(
        fixture.dir.path().join("outside.png"),
        mjlink_sim::png::png(8, 8, 9),
    )
    .unwrap();
    let outside = Snowflake(
        nodes[0]["attachments"][0]["attachment_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    store
        .mark_archived(outside, "../outside.png", "00", 10, "png", None)
        .unwrap();
    let response = get(&format!("{base}/api/image/{outside}")).await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("is not in the archive"));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token() {
    let fixture = fixture();
    let client = reqwest::Client::new();
    let without = Server::start(&fixture, None).await;
    let response = client
        .post(format!("{}/api/links/{UPSCALE}/clear", without.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "no token set: no writes at all");
    assert!(response.headers().contains_key("content-security-policy"));
    without.stop().await;

    let with = Server::start(&fixture, Some("a-long-token")).await;
    let url = format!("{}/api/links/{UPSCALE}/clear", with.base);
    for given in [
        None,
        Some("Bearer a-long-tokeN"),
        Some("Bearer a-long-token2"),
        Some("Bearer  a-long-token"),
        Some("a-long-token"),
    ] {
        let mut request = client.post(&url);
        if let Some(given) = given {
            request = request.header("authorization", given);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{given:?}");
    }
    // With the token the request passes the guard and reaches the core, which refuses to
    // clear a link that is not manual (the U4 is linked by its reply reference).
    let response = client
        .post(&url)
        .header("authorization", "Bearer a-long-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let refused: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        refused["error"],
        format!("message {UPSCALE} has no manual link to clear")
    );
    with.stop().await;
}

/// A real PNG of `width` x `height` put in the archive for `attachment`, as the archiver
/// records one (path, SHA-256, bytes, what it is).
fn archive_file(
    fixture: &Fixture,
    store: &Store,
    attachment: Snowflake,
    bytes: &[u8],
    media: &str,
) -> PathBuf {
    let relative = format!("2026/02/{attachment}.{media}");
    let path = fixture.archive.join(&relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let sha = format!("{:x}", sha2::Sha256::digest(bytes));
    store
        .mark_archived(attachment, &relative, &sha, bytes.len() as u64, media, None)
        .unwrap();
    path
}

fn attachment_of(family: &serde_json::Value, node: usize) -> Snowflake {
    Snowflake(
        family["nodes"][node]["attachments"][0]["attachment_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_are_made_on_first_request_cached_on_disk_and_served_with_etags() {
    use std::os::unix::fs::PermissionsExt;

    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let base = &server.base;
    let store = Store::open(&fixture.db).unwrap();
    let (_, family) = json(&format!("{base}/api/family/{UPSCALE}")).await;
    let grid = attachment_of(&family, 0);
    let upscale = attachment_of(&family, 1);
    let original = archive_file(&fixture, &store, grid, &mjlink_sim::png::png(1000, 600, 7), "png");

    // First request: made from the original, 320 px on its longest side, a JPEG.
    let response = get(&format!("{base}/api/thumb/{grid}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age="),
        "{:?}",
        response.headers()
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let first = response.bytes().await.unwrap();
    let thumb = image::load_from_memory(&first).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 192));
    assert!(first.len() < std::fs::metadata(&original).unwrap().len() as usize / 4);
    // Cached on disk by attachment id and size, readable by others, no temporary file left.
    let cache = fixture.archive.join(".thumbnails");
    let cached = cache.join(format!("{grid}-320.jpg"));
    assert_eq!(std::fs::read(&cached).unwrap(), first.as_ref());
    assert_eq!(
        std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Unchanged: 304 with the same ETag, also inside a list.
    for asked in [etag.clone(), format!("\"x\", {etag}")] {
        let again = reqwest::Client::new()
            .get(format!("{base}/api/thumb/{grid}"))
            .header("if-none-match", asked)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    // The second request is the cached file: replace it with another JPEG, that is served.
    let marker = image::load_from_memory(&mjlink_sim::png::png(10, 10, 1))
        .unwrap()
        .to_rgb8();
    let mut marker_jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut marker_jpeg)
        .encode_image(&marker)
        .unwrap();
    std::fs::write(&cached, &marker_jpeg).unwrap();
    let served = get(&format!("{base}/api/thumb/{grid}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), marker_jpeg.as_slice(), "served from the cache");
    // An original newer than its thumbnail: made again.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&original, mjlink_sim::png::png(1000, 600, 7)).unwrap();
    let remade = get(&format!("{base}/api/thumb/{grid}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(remade.as_ref(), first.as_ref());
    // The family page's size; other sizes refused.
    let large = get(&format!("{base}/api/thumb/{grid}?size=640"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(image::load_from_memory(&large).unwrap().width(), 640);
    assert!(cache.join(format!("{grid}-640.jpg")).is_file());
    for size in ["999", "..%2F..%2Fweb.db", "-1"] {
        let response = get(&format!("{base}/api/thumb/{grid}?size={size}")).await;
        assert_eq!(response.status(), 400, "{size}");
    }
    // A corrupt image and a video: a placeholder that says so, with 404; never a panic.
    archive_file(&fixture, &store, upscale, b"\x89PNG\r\n\x1a\n garbage", "png");
    let response = get(&format!("{base}/api/thumb/{upscale}")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    assert!(response.text().await.unwrap().contains("no preview"));
    archive_file(&fixture, &store, upscale, b"\0\0\0\x18ftypmp42 a video", "mp4");
    let response = get(&format!("{base}/api/thumb/{upscale}")).await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("videos get no thumbnail"));
    // By id only: nothing else is a path.
    for asked in ["..%2F..%2Fweb.db", "web.db", "1"] {
        let response = get(&format!("{base}/api/thumb/{asked}")).await;
        assert_eq!(response.status(), 404, "{asked}");
    }
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|name| name.ends_with(".jpg")), "{names:?}");
    server.stop().await;
}

fn gallery_ids(gallery: &serde_json::Value) -> Vec<Snowflake> {
    gallery["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| Snowflake(item["message_id"].as_str().unwrap().parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_filters_by_date_and_favourites() {
    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let base = &server.base;

    // Dates: the markup grid is the only one posted on 2026-09-01; until a date takes in the day.
    let (status, since) = json(&format!("{base}/api/gallery?since=2026-09-01")).await;
    assert_eq!(status, 200);
    assert_eq!(gallery_ids(&since), vec![fixture.xss_grid]);
    let (_, that_day) = json(&format!("{base}/api/gallery?since=2026-09-01&until=2026-09-01")).await;
    assert_eq!(gallery_ids(&that_day), vec![fixture.xss_grid]);
    let (_, before) = json(&format!("{base}/api/gallery?until=2026-08-31")).await;
    let before = gallery_ids(&before);
    assert!(
        !before.is_empty() && !before.contains(&fixture.xss_grid),
        "{before:?}"
    );
    let (status, refused) = json(&format!("{base}/api/gallery?since=yesterday")).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"], "`since` must be a date like 2024-05-01.");

    // Favourites: the messages the favourite confirmation marked, and the grids of marked results.
    let db = rusqlite::Connection::open(&fixture.db).unwrap();
    let rated: Vec<(i64, String, Option<i64>)> = db
        .prepare(
            "SELECT m.id, m.kind, l.parent_id FROM messages m LEFT JOIN links l ON l.child_id = m.id
             WHERE m.rated_by IS NOT NULL",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!rated.is_empty(), "the fixtures hold a favourite confirmation");
    let (status, favourites) = json(&format!("{base}/api/gallery?fav=1")).await;
    assert_eq!(status, 200);
    let favourites = gallery_ids(&favourites);
    let (_, all) = json(&format!("{base}/api/gallery")).await;
    let all = gallery_ids(&all);
    let expected: Vec<Snowflake> = all
        .iter()
        .copied()
        .filter(|grid| {
            rated
                .iter()
                .any(|(id, _, parent)| *id as u64 == grid.0 || parent.is_some_and(|p| p as u64 == grid.0))
        })
        .collect();
    assert!(!expected.is_empty(), "{rated:?}");
    assert_eq!(favourites, expected);
    assert!(favourites.len() < all.len());
    // Of one action: the marked results themselves.
    let (id, kind, _) = &rated[0];
    if kind != "imagine" {
        let (_, of_kind) = json(&format!("{base}/api/gallery?fav=1&action={kind}")).await;
        assert_eq!(gallery_ids(&of_kind), vec![Snowflake(*id as u64)]);
    }

    // The page: the form keeps the filter, the pager carries it.
    let (status, page) = text(&format!("{base}/?since=2026-01-01&until=2026-12-31&fav=1")).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"since\" value=\"2026-01-01\""), "{page}");
    assert!(page.contains("name=\"until\" value=\"2026-12-31\""), "{page}");
    assert!(page.contains("name=\"fav\" value=\"1\" checked"), "{page}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_page_links_each_original_and_the_metadata_json() {
    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let base = &server.base;
    let (_, family) = json(&format!("{base}/api/family/{UPSCALE}")).await;
    let grid = attachment_of(&family, 0);
    let upscale = attachment_of(&family, 1);

    let (status, page) = text(&format!("{base}/family/{UPSCALE}")).await;
    assert_eq!(status, 200);
    for attachment in [grid, upscale] {
        assert!(
            page.contains(&format!(
                "<a class=\"original\" href=\"/api/image/{attachment}\" title=\"the original file\">\
                 <img class=\"node-image\" src=\"/api/thumb/{attachment}?size=640\""
            )),
            "{page}"
        );
    }
    assert_eq!(
        page.matches(&format!("href=\"/api/family/{ITS_GRID}/metadata.json\""))
            .count(),
        2,
        "{page}"
    );

    // The family's metadata.json, where the archiver writes it: the folder of its files.
    let folder = fixture.archive.join(format!("2026/01/{ITS_GRID}"));
    let metadata = br#"{"grid": {"prompt": "a real one"}}"#;
    std::fs::write(folder.join("metadata.json"), metadata).unwrap();
    for asked in [ITS_GRID, UPSCALE] {
        let response = get(&format!("{base}/api/family/{asked}/metadata.json")).await;
        assert_eq!(response.status(), 200, "{asked}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.bytes().await.unwrap().as_ref(), metadata);
    }
    std::fs::remove_file(folder.join("metadata.json")).unwrap();
    let (status, missing) = json(&format!("{base}/api/family/{UPSCALE}/metadata.json")).await;
    assert_eq!(status, 404);
    assert_eq!(
        missing["error"],
        format!("The family of {UPSCALE} has no metadata.json in the archive.")
    );
    let (status, _) = json(&format!("{base}/api/family/42/metadata.json")).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_link_is_set_and_cleared_from_the_family_page_with_the_token_only() {
    let fixture = fixture();
    let server = Server::start(&fixture, Some("a-long-token")).await;
    let base = &server.base;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (_, before) = json(&format!("{base}/api/message/{AMBIGUOUS}")).await;
    let candidates = before["node"]["link"]["candidates"].as_array().unwrap().clone();
    assert_eq!(before["node"]["link"]["status"], "ambiguous");
    let parent = candidates[3].as_str().unwrap().to_string();

    // The page offers the form, with a token field.
    let (_, page) = text(&format!("{base}/family/{AMBIGUOUS}")).await;
    assert!(
        page.contains(&format!("action=\"/family/{AMBIGUOUS}/link\" method=\"post\"")),
        "{page}"
    );
    assert!(page.contains("type=\"password\" name=\"token\""), "{page}");

    // Without the token, or a wrong one: refused, nothing written.
    for token in [None, Some("wrong")] {
        let mut form = vec![("parent", parent.as_str()), ("by", "ann")];
        if let Some(token) = token {
            form.push(("token", token));
        }
        let response = client
            .post(format!("{base}/family/{AMBIGUOUS}/link"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
    }
    let (_, unchanged) = json(&format!("{base}/api/message/{AMBIGUOUS}")).await;
    assert_eq!(unchanged["node"]["link"]["status"], "ambiguous");

    // With it: the manual link, with who; back to the family.
    let response = client
        .post(format!("{base}/family/{AMBIGUOUS}/link"))
        .form(&[
            ("parent", parent.as_str()),
            ("by", "ann"),
            ("token", "a-long-token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/family/{AMBIGUOUS}#m{AMBIGUOUS}").as_str()
    );
    let (_, linked) = json(&format!("{base}/api/message/{AMBIGUOUS}")).await;
    assert_eq!(linked["node"]["link"]["signal"], "manual", "{linked}");
    assert_eq!(linked["node"]["link"]["parent"], parent.as_str());
    assert_eq!(linked["node"]["link"]["manual"]["set_by"], "ann");
    assert_eq!(linked["family"], parent.as_str());
    let (_, page) = text(&format!("{base}/family/{AMBIGUOUS}")).await;
    assert!(page.contains("linked manual (by manual, set by ann"), "{page}");
    assert!(
        page.contains(&format!("action=\"/family/{AMBIGUOUS}/unlink\"")),
        "{page}"
    );

    // What the core refuses is said, and nothing changes: a grid as its own parent.
    let response = client
        .post(format!("{base}/family/{AMBIGUOUS}/link"))
        .form(&[("parent", AMBIGUOUS), ("token", "a-long-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains(&format!("message {AMBIGUOUS} cannot be its own parent")));

    // Cleared: the fallback decides again (ambiguous).
    let response = client
        .post(format!("{base}/family/{AMBIGUOUS}/unlink"))
        .form(&[("token", "a-long-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let (_, cleared) = json(&format!("{base}/api/message/{AMBIGUOUS}")).await;
    assert_eq!(cleared["node"]["link"]["status"], "ambiguous", "{cleared}");

    // The API: the same, with the bearer token.
    let response = client
        .post(format!("{base}/api/links/{AMBIGUOUS}"))
        .json(&serde_json::json!({ "parent": parent }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .post(format!("{base}/api/links/{AMBIGUOUS}"))
        .header("authorization", "Bearer a-long-token")
        .json(&serde_json::json!({ "parent": parent, "by": "bob" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["signal"], "manual");
    assert_eq!(answer["parent"], parent.as_str());
    let response = client
        .post(format!("{base}/api/links/{AMBIGUOUS}/clear"))
        .header("authorization", "Bearer a-long-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "ambiguous");
    server.stop().await;
}

/// Searches arriving together right after a replay (every prompt still to index): each is
/// answered (the index is caught up in a write transaction taken at once, so a second search
/// waits for the first instead of failing with "database is locked").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_searches_are_all_answered() {
    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let client = reqwest::Client::new();
    let searches = (0..24).map(|n| {
        let client = client.clone();
        let word = ["barbecue", "fox", "cat", "red"][n % 4];
        let url = format!("{}/api/search?q={word}", server.base);
        async move { client.get(url).send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(searches).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    server.stop().await;
}

#[test]
fn serving_beyond_loopback_without_a_token_is_refused_in_one_line() {
    let fixture = fixture();
    let output = common::mjlink_command()
        .args([
            "--db",
            fixture.db.to_str().unwrap(),
            "serve",
            "--bind",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "mjlink: refusing to serve on 0.0.0.0:0: other machines can reach it and web.token is not set"
        ),
        "{stderr}"
    );
    let config = Config::default();
    assert!(WebOptions::from_config(&config, Some("localhost")).is_err());
}

/// The binary as a user runs it: prints where it serves, serves, stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjlink_serve_prints_its_address_serves_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;

    let fixture = fixture();
    let mut child = tokio::process::Command::from(common::mjlink_command())
        .args([
            "--db",
            fixture.db.to_str().unwrap(),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .env("MJLINK_ARCHIVE_DIR", &fixture.archive)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("Serving the gallery of "), "{first}");
    let base = first
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split('/').nth(2))
        .map(|host| format!("http://{host}"))
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let (status, gallery) = json(&format!("{base}/api/gallery")).await;
    assert_eq!(status, 200);
    let attachment = gallery["items"][0]["attachment_id"].as_str().unwrap().to_string();
    let image = get(&format!("{base}/api/image/{attachment}")).await;
    assert_eq!(image.status(), 200, "archive.dir from the environment is served");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}

// ---- The browser: headless Chromium through chromedriver ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(profile: &Path) -> (Driver, fantoccini::Client) {
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("chromedriver is not installed: apt-get install -y chromium chromium-driver (.ci/run does)");
    let port = free_port();
    let driver = Driver(
        std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/status")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut capabilities = serde_json::Map::new();
    let mut options = serde_json::json!({
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.display()),
        ]
    });
    if Path::new("/usr/bin/chromium").exists() {
        options["binary"] = "/usr/bin/chromium".into();
    }
    capabilities.insert("goog:chromeOptions".to_string(), options);
    let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a Chromium session through chromedriver");
    (driver, client)
}

async fn screenshot(client: &fantoccini::Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `script` returns true (up to 10 s).
async fn until(client: &fantoccini::Client, script: &str) -> bool {
    for _ in 0..100 {
        if client.execute(script, vec![]).await.unwrap() == serde_json::Value::Bool(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_gallery_shows_images_a_family_its_tree_search_finds_and_markup_stays_text() {
    use fantoccini::Locator;

    let fixture = fixture();
    let server = Server::start(&fixture, None).await;
    let base = server.base.clone();
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(profile.path()).await;

    // The gallery: the tiles in view are images that loaded.
    client.goto(&format!("{base}/")).await.unwrap();
    let loaded = "const imgs = Array.from(document.querySelectorAll('img.thumb')).slice(0, 4);
                  return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth > 0);";
    assert!(until(&client, loaded).await, "the first thumbnails did not load");
    let widths = client
        .execute(
            "return Array.from(document.querySelectorAll('img.thumb')).slice(0, 4).map(i => i.naturalWidth);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(widths, serde_json::json!([96, 96, 96, 96]));
    // Each tile is the thumbnail endpoint's, not the full image.
    let sources = client
        .execute(
            "return Array.from(document.querySelectorAll('img.thumb')).map(i => new URL(i.src).pathname);",
            vec![],
        )
        .await
        .unwrap();
    let sources = sources.as_array().unwrap();
    assert!(sources.len() >= 10, "{sources:?}");
    assert!(
        sources
            .iter()
            .all(|src| src.as_str().unwrap().starts_with("/api/thumb/")),
        "{sources:?}"
    );
    // The markup prompt is visible as text, ran nothing and made no element.
    let body = client
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(&format!("{XSS} a red fox")), "{body}");
    assert!(client.get_alert_text().await.is_err(), "an alert is open");
    let scripts = client
        .execute("return document.querySelectorAll('script').length;", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, 0);
    screenshot(&client, "gallery").await;

    // A family: the tree, with the grid's and the upscale's images.
    client.goto(&format!("{base}/family/{UPSCALE}")).await.unwrap();
    let nodes = client.find_all(Locator::Css("li.node")).await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(
        until(
            &client,
            "const imgs = Array.from(document.querySelectorAll('li.node img'));
             return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0);"
        )
        .await,
        "the family's images did not load"
    );
    let upscale = client
        .find(Locator::Css(&format!("#m{UPSCALE}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        upscale.contains("U4") && upscale.contains("linked exact (by reference)"),
        "{upscale}"
    );
    screenshot(&client, "family").await;

    // The XSS family page.
    client
        .goto(&format!("{base}/family/{}", fixture.xss_grid))
        .await
        .unwrap();
    let title = client
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(title, format!("{XSS} a red fox --s 750 --niji 5"));
    assert!(client.get_alert_text().await.is_err());
    screenshot(&client, "xss").await;

    // Search from the box in the header, then follow the hit to its family.
    client.goto(&format!("{base}/")).await.unwrap();
    let search = client.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("barbecue\n").await.unwrap();
    assert!(
        until(&client, "return location.pathname === '/search';").await,
        "the search box did not lead to /search"
    );
    let hit = client.find(Locator::Css("a.hit")).await.unwrap();
    assert_eq!(hit.text().await.unwrap(), "Delicious barbecue. --s 750 --niji 5");
    screenshot(&client, "search").await;
    hit.click().await.unwrap();
    assert!(until(&client, "return location.pathname.startsWith('/family/');").await);
    let heading = client
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Delicious barbecue. --s 750 --niji 5");

    // Stats.
    client.goto(&format!("{base}/stats")).await.unwrap();
    let table = client
        .find(Locator::Css("table.stats"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains("Grids"), "{table}");
    screenshot(&client, "stats").await;

    client.close().await.unwrap();
    server.stop().await;
}

// ---- The queue page: its API, its controls, its live updates ----

/// Queues `prompts` (all upscales) in the database at `db`; their ids.
fn queue_add(db: &Path, prompts: &[&str]) -> Vec<String> {
    let mut store = Store::open(db).unwrap();
    let prompts: Vec<String> = prompts.iter().map(|p| p.to_string()).collect();
    mjlink::queue::runner::add(
        &mut store,
        &prompts,
        &mjlink::queue::Upscales::all(),
        0,
        chrono::Utc::now().timestamp_millis(),
    )
    .unwrap()
    .into_iter()
    .map(|item| item.id)
    .collect()
}

async fn post(
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_page_and_its_api_show_every_item_with_its_state_attempts_and_history() {
    let fixture = fixture();
    let ids = queue_add(
        &fixture.db,
        &[&format!("{XSS} a queued fox --ar 16:9"), "a glass whale --v 7"],
    );
    {
        let mut store = Store::open(&fixture.db).unwrap();
        mjlink::queue::runner::cancel(&mut store, &ids[1], chrono::Utc::now().timestamp_millis()).unwrap();
    }
    let server = Server::start(&fixture, None).await;
    let base = &server.base;

    let (status, gallery) = text(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(
        gallery.contains("<a href=\"/queue\">Queue</a>"),
        "the navigation leads to the queue"
    );

    let response = get(&format!("{base}/queue")).await;
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    let page = response.text().await.unwrap();
    for id in &ids {
        assert!(
            page.contains(&format!("id=\"q-{id}\"")),
            "{id} is on the page: {page}"
        );
    }
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; a queued fox --ar 16:9"),
        "{page}"
    );
    assert!(!page.contains(XSS), "the raw markup must not reach the page");
    assert!(page.contains("<span class=\"status\">queued</span>"), "{page}");
    assert!(page.contains("<span class=\"status\">cancelled</span>"), "{page}");
    assert!(
        page.contains("queued → cancelled cancelled by the user"),
        "the history: {page}"
    );
    assert!(
        page.contains("<script src=\"/assets/queue.js\" defer></script>"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script: {page}");
    let script = get(&format!("{base}/assets/queue.js")).await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script
        .text()
        .await
        .unwrap()
        .contains("EventSource('/api/queue/events')"));

    // The API: the same items, in queue order, with their history and attempts.
    let (status, queue) = json(&format!("{base}/api/queue")).await;
    assert_eq!(status, 200);
    assert_eq!(queue["paused"], false);
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["item"]["id"], ids[0].as_str());
    assert_eq!(items[0]["item"]["status"], "queued");
    assert_eq!(items[0]["item"]["attempts"], 0);
    assert_eq!(items[0]["upscales"], "0/4");
    assert_eq!(items[0]["history"].as_array().unwrap().len(), 1);
    assert_eq!(items[1]["item"]["status"], "cancelled");
    assert_eq!(items[1]["history"][1]["note"], "cancelled by the user");
    let (status, one) = json(&format!("{base}/api/queue/{}", &ids[1][..8])).await;
    assert_eq!(status, 200, "an id prefix names its item");
    assert_eq!(one["item"]["id"], ids[1].as_str());
    let (status, none) = json(&format!("{base}/api/queue/nothing-like-it")).await;
    assert_eq!(status, 404);
    assert!(
        none["error"].as_str().unwrap().contains("No queue item"),
        "{none}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_controls_need_the_token_and_then_add_cancel_pause_and_resume() {
    let fixture = fixture();
    let ids = queue_add(&fixture.db, &["a lighthouse of glass"]);
    let queue_of = |db: &Path| {
        let store = Store::open(db).unwrap();
        (store.queue_items(&[]).unwrap(), store.queue_paused().unwrap())
    };

    // No token configured: every write is refused (403), and nothing changes.
    let without = Server::start(&fixture, None).await;
    let base = &without.base;
    let add = serde_json::json!({"prompt": "a fox in the snow", "upscale": "1,3"});
    for (url, body) in [
        (format!("{base}/api/queue"), Some(add.clone())),
        (format!("{base}/api/queue/{}/cancel", ids[0]), None),
        (format!("{base}/api/queue/pause"), None),
        (format!("{base}/api/queue/resume"), None),
    ] {
        let (status, answer) = post(&url, Some("anything"), body).await;
        assert_eq!(status, 403, "{url}: {answer}");
    }
    without.stop().await;
    let (items, paused) = queue_of(&fixture.db);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].status, mjlink::queue::Status::Queued);
    assert!(!paused);

    // A token configured: a write without it, or with another, is refused (401).
    let with = Server::start(&fixture, Some("queue-token-0123")).await;
    let base = &with.base;
    for given in [None, Some("queue-token-0124"), Some("")] {
        let (status, _) = post(&format!("{base}/api/queue/{}/cancel", ids[0]), given, None).await;
        assert_eq!(status, 401, "{given:?}");
        let (status, _) = post(&format!("{base}/api/queue"), given, Some(add.clone())).await;
        assert_eq!(status, 401, "{given:?}");
    }
    assert_eq!(queue_of(&fixture.db).0.len(), 1, "nothing was added");

    // With the token: add, pause, resume, cancel; each shows in the API.
    let token = Some("queue-token-0123");
    let (status, added) = post(&format!("{base}/api/queue"), token, Some(add.clone())).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["added"][0]["prompt"], "a fox in the snow");
    assert_eq!(added["added"][0]["upscales"], serde_json::json!([1, 3]));
    let (status, refused) = post(
        &format!("{base}/api/queue"),
        token,
        Some(serde_json::json!({"prompt": "  "})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = post(
        &format!("{base}/api/queue"),
        token,
        Some(serde_json::json!({"prompt": "x", "upscale": "7"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"].as_str().unwrap().contains("not a tile"),
        "{refused}"
    );

    let (status, _) = post(&format!("{base}/api/queue/pause"), token, None).await;
    assert_eq!(status, 200);
    assert_eq!(json(&format!("{base}/api/queue")).await.1["paused"], true);
    assert!(queue_of(&fixture.db).1, "the runner reads the same setting");
    let (status, _) = post(&format!("{base}/api/queue/resume"), token, None).await;
    assert_eq!(status, 200);
    assert!(!queue_of(&fixture.db).1);

    let (status, cancelled) = post(&format!("{base}/api/queue/{}/cancel", ids[0]), token, None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancelled"]["status"], "cancelled");
    let (status, again) = post(&format!("{base}/api/queue/{}/cancel", ids[0]), token, None).await;
    assert_eq!(status, 409, "a finished item is not cancelled again: {again}");
    let (items, _) = queue_of(&fixture.db);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].status, mjlink::queue::Status::Cancelled);
    assert_eq!(items[1].status, mjlink::queue::Status::Queued);
    with.stop().await;
}

/// Midjourney's start message for a submission and its progress edit, as the wire notes
/// describe them (section 2): the start (type 20, the request's nonce, `(Waiting to start)`),
/// then a MESSAGE_UPDATE of the same id with `(31%) (relaxed)` and the preview
/// `{uuid}_grid_0.webp`.
fn start_and_progress(nonce: &str, prompt: &str, ms: i64) -> [String; 2] {
    let id = (((ms - 1_420_070_400_000) << 22) as u64).to_string();
    let attachment = ((((ms + 5_000) - 1_420_070_400_000) << 22) as u64).to_string();
    let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    let user = serde_json::json!({"id": "439110225975443468", "username": "someone", "discriminator": "0"});
    let message = |content: String, edited: Option<String>, attachments: serde_json::Value| {
        serde_json::json!({
            "id": id, "channel_id": "1008571020480876554", "guild_id": "662267976984297473",
            "author": {"id": "936929561302675456", "username": "Midjourney Bot", "discriminator": "9282", "bot": true},
            "content": content, "timestamp": time(ms), "edited_timestamp": edited,
            "mentions": [user], "attachments": attachments, "embeds": [], "type": 20, "flags": 0,
            "components": [], "nonce": nonce, "webhook_id": "936929561302675456",
            "interaction": {"id": "1", "type": 2, "name": "imagine", "user": user},
        })
    };
    let preview = "9a9a9a9a-1111-4222-8333-444444444444_grid_0.webp";
    let start = message(
        format!("**{prompt}** - <@439110225975443468> (Waiting to start)"),
        None,
        serde_json::json!([]),
    );
    let progress = message(
        format!("**{prompt}** - <@439110225975443468> (31%) (relaxed)"),
        Some(time(ms + 5_000)),
        serde_json::json!([{
            "id": attachment, "filename": preview, "size": 1000,
            "url": format!("https://cdn.discordapp.com/attachments/1008571020480876554/{attachment}/{preview}"),
            "proxy_url": format!("https://media.discordapp.net/attachments/1008571020480876554/{attachment}/{preview}"),
            "width": 512, "height": 512, "content_type": "image/webp",
        }]),
    );
    [
        serde_json::json!({"op": 0, "t": "MESSAGE_CREATE", "s": 1, "d": start}).to_string(),
        serde_json::json!({"op": 0, "t": "MESSAGE_UPDATE", "s": 2, "d": progress}).to_string(),
    ]
}

/// Reads server-sent events from `body` until `wanted` accepts one (event name, its JSON), up
/// to 15 s; every event read before it.
async fn events_until(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    buffer: &mut String,
    wanted: impl Fn(&str, &serde_json::Value) -> bool,
) -> Option<(String, serde_json::Value)> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("message")
                .to_string();
            let data: String = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&data) {
                if wanted(&name, &value) {
                    return Some((name, value));
                }
            }
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_an_items_progress_when_midjourney_edits_it() {
    let fixture = fixture();
    let prompt = "a copper owl at dusk --v 7";
    let nonce = "1455555555555555555";
    let ids = queue_add(&fixture.db, &[prompt]);
    {
        // Submitted, as the runner stores it before it sends the interaction.
        let mut store = Store::open(&fixture.db).unwrap();
        let mut item = store.queue_item(&ids[0]).unwrap().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        item.status = mjlink::queue::Status::Submitted;
        item.attempts = 1;
        item.nonce = Some(nonce.to_string());
        item.submitted_ms = Some(now);
        item.updated_ms = now;
        store.queue_save(&item, None, None).unwrap();
    }
    let server = Server::start(&fixture, None).await;
    let response = get(&format!("{}/api/queue/events", server.base)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = Box::pin(response.bytes_stream());
    let mut buffer = String::new();
    let id = ids[0].clone();
    let (_, first) = events_until(&mut body, &mut buffer, |name, value| {
        name == "item" && value["item"]["id"] == id.as_str()
    })
    .await
    .expect("the stream starts with every item");
    assert_eq!(first["item"]["status"], "submitted");
    assert_eq!(
        first["rendering"],
        serde_json::Value::Null,
        "nothing from Midjourney yet"
    );

    // Midjourney starts the job and edits its progress: the stream says so.
    let store = Store::open(&fixture.db).unwrap();
    let (_, store) = common::replay_lines(&start_and_progress(nonce, prompt, 1_788_307_200_000), store);
    drop(store);
    let (_, update) = events_until(&mut body, &mut buffer, |name, value| {
        name == "item" && value["item"]["id"] == id.as_str() && !value["rendering"].is_null()
    })
    .await
    .expect("an event when the progress arrives");
    assert_eq!(update["rendering"]["stage"], "31%", "{update}");
    assert_eq!(update["rendering"]["percent"], 31, "{update}");
    assert_eq!(
        update["rendering"]["preview"]["filename"],
        "9a9a9a9a-1111-4222-8333-444444444444_grid_0.webp"
    );
    drop(body);
    server.stop().await;
}

/// Waits until `script` returns true, up to `seconds`.
async fn until_for(client: &fantoccini::Client, script: &str, seconds: u64) -> bool {
    for _ in 0..seconds * 10 {
        if client.execute(script, vec![]).await.unwrap() == serde_json::Value::Bool(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_queue_items_progress_updates_live_while_midjourney_renders() {
    use fantoccini::Locator;
    use mjlink_sim::midjourney::{SimMidjourney, SimOptions};

    let dir = tempfile::tempdir().unwrap();
    let fake = mjlink_sim::discord::FakeDiscord::start("web-queue-bot-token")
        .await
        .unwrap();
    let sim = SimOptions {
        // Slow enough that each stage of the render is on screen for a while.
        step: Duration::from_millis(1200),
        shapes_2026: true,
        ..SimOptions::default()
    };
    let _midjourney = SimMidjourney::attach(&fake, sim.clone());
    let mut config = mjlink::demo::demo_config(dir.path(), &fake.api_base(), &sim);
    config.discord.token = Some(Secret::new("web-queue-bot-token"));
    config.queue.spacing_ms = 0;
    let ids = queue_add(&config.database_path, &["a paper crane in the rain --ar 3:2"]);
    let item = format!("#q-{}", ids[0]);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = WebOptions {
        database: config.database_path.clone(),
        archive: mjlink::archive::backend::Backend::Fs {
            root: config.archive.dir.clone(),
        },
        bind: address,
        token: None,
        pipeline: Default::default(),
    };
    let web = web::Serving::spawn(listener, options).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(profile.path()).await;
    client.goto(&format!("http://{address}/queue")).await.unwrap();
    let status = |client: &fantoccini::Client| {
        let client = client.clone();
        let item = item.clone();
        async move {
            client
                .find(Locator::Css(&format!("{item} .status")))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(status(&client).await, "queued");
    // A mark that a reload would wipe (the page must change in place), and every state the
    // item shows, recorded as it changes (a stage seen however briefly, whatever the load).
    let record = format!(
        "window.mjlinkMark = 7; window.mjlinkSeen = [];
         const item = document.querySelector('{item}');
         new MutationObserver(() => window.mjlinkSeen.push([item.dataset.status,
             item.querySelector('.rendering').hidden ? 'hidden' : 'shown',
             item.querySelector('.stage').textContent, String(item.querySelector('progress').value),
             item.querySelector('.preview').hidden ? '' : item.querySelector('.preview').href].join(' ')))
           .observe(item, {{ subtree: true, childList: true, attributes: true, characterData: true }});
         return true;"
    );
    client.execute(&record, vec![]).await.unwrap();

    let bot_config = config.clone();
    let bot = tokio::spawn(async move {
        let options = mjlink::ingest::gateway::RunOptions {
            drive_queue: true,
            stop_when_queue_done: true,
            ..Default::default()
        };
        mjlink::ingest::gateway::run_with(&bot_config, &options, tokio::time::sleep(Duration::from_secs(90)))
            .await
    });

    // The simulated Midjourney edits its start message to (62%) with a preview: the page shows it.
    let rendering = "return window.mjlinkMark === 7 && window.mjlinkSeen.some(seen =>
         seen.startsWith('rendering shown 62% 62 ') && seen.endsWith('_grid_0.webp'));";
    let shown = until_for(&client, rendering, 30).await;
    let seen = client.execute("return window.mjlinkSeen;", vec![]).await.unwrap();
    assert!(shown, "the item did not show 62% and its preview live: {seen}");
    screenshot(&client, "queue-rendering").await;

    // Then the grid, the upscales, done: the progress goes away, the history grows, no reload.
    let done = format!(
        "const item = document.querySelector('{item}');
         return item.dataset.status === 'done' && item.querySelector('.rendering').hidden
             && item.querySelector('.upscales').textContent === '4/4'
             && item.querySelectorAll('.history li').length >= 4
             && document.querySelector('#queue-counts').textContent === '1 items: 1 done'
             && window.mjlinkMark === 7;"
    );
    assert!(
        until_for(&client, &done, 60).await,
        "the item did not end done on the page"
    );
    client
        .execute(
            "document.querySelector('details').open = true; return true;",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&client, "queue").await;

    bot.await.unwrap().unwrap();
    client.close().await.unwrap();
    web.stop().await.unwrap();
}

/// `mjlink demo --serve` as a newcomer runs it: it prints the web UI's address before the
/// queue moves, the queue page shows the demo's items, and after the demo the gallery shows
/// its families; it keeps serving until stopped (SIGTERM here, as Ctrl-C).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjlink_demo_serve_prints_the_web_ui_and_serves_the_queue_then_the_families() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let mut child = tokio::process::Command::from(common::mjlink_command())
        .args([
            "demo",
            "--serve",
            "--bind",
            "127.0.0.1:0",
            "--dir",
            demo_dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    async fn next_line(
        lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    ) -> String {
        tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("a line within 120 s")
            .unwrap()
            .expect("the demo ended early")
    }
    let base = loop {
        let line = next_line(&mut lines).await;
        assert!(
            !line.starts_with("  "),
            "the address comes before the queue moves: {line}"
        );
        if let Some(rest) = line.strip_prefix("the web UI: http://") {
            break format!("http://{}", rest.split('/').next().unwrap());
        }
    };
    let (status, queue) = json(&format!("{base}/api/queue")).await;
    assert_eq!(status, 200);
    assert_eq!(queue["items"].as_array().unwrap().len(), 4, "{queue}");
    let (status, page) = text(&format!("{base}/queue")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("a fox reading a newspaper, watercolor --chaos 10"),
        "{page}"
    );

    loop {
        let line = next_line(&mut lines).await;
        if line.starts_with("still serving on http://") {
            assert!(line.contains(&base[7..]), "{line}");
            break;
        }
    }
    let (_, queue) = json(&format!("{base}/api/queue")).await;
    let statuses: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|state| state["item"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "done").count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "failed").count(),
        1,
        "{statuses:?}"
    );
    let (status, gallery) = json(&format!("{base}/api/gallery")).await;
    assert_eq!(status, 200);
    let families = gallery["items"].as_array().unwrap();
    assert_eq!(families.len(), 3, "{gallery}");
    let attachment = families[0]["attachment_id"].as_str().expect("an archived image");
    let image = get(&format!("{base}/api/image/{attachment}")).await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");

    // An open live stream does not hold the stop up.
    let events = get(&format!("{base}/api/queue/events")).await;
    assert_eq!(events.status(), 200);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped within 30 s with a page still listening")
        .unwrap();
    assert!(status.success(), "a clean stop: {status:?}");
    drop(events);
}

/// `mjlink bench --web` at a tiny size runs end to end and prints a row per endpoint, the
/// plain handler beside the image endpoint (figures, not a timing assertion).
#[test]
fn bench_web_at_a_tiny_size_prints_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::mjlink_command()
        .args([
            "bench",
            "--web",
            "--events",
            "3000",
            "--requests",
            "40",
            "--clients",
            "4",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("3000 events ("), "{stdout}");
    for row in [
        "| family page | 40 |",
        "| gallery page | 40 |",
        "| search | 40 |",
        "| thumbnail (cached) | 40 |",
        "| image by id (mjlink) | 160 |",
        "| image (plain static handler) | 160 |",
        "image by id / plain static handler: p50 ",
    ] {
        assert!(stdout.contains(row), "no `{row}` in\n{stdout}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the scratch folder is removed"
    );
}
