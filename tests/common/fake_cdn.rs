//! A CDN on 127.0.0.1 for the archive tests: each path answers with scripted replies (full
//! bodies with any status and headers, truncated bodies, stalls), after an optional delay,
//! and every request is logged.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server does for one request.
#[derive(Clone)]
pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `announced` bytes, sends `body`, closes.
    Truncated { announced: usize, body: Vec<u8> },
    /// Sends the headers and the first bytes, then nothing for `stall`.
    Stall { body: Vec<u8>, stall: Duration },
    /// Sends the body `chunk` bytes at a time, one chunk every `every`.
    Trickle {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
}

#[derive(Clone, Default)]
pub struct Cdn {
    scripts: Arc<Mutex<HashMap<String, Vec<Reply>>>>,
    hits: Arc<Mutex<Vec<(String, Instant)>>>,
    /// Every answer waits this long first.
    pub delay: Duration,
}

pub fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend((0..size).map(|i| (i * 31 % 251) as u8));
    bytes
}

/// An mp4 of about `size` bytes: a FileTypeBox (ISO/IEC 14496-12, 4.3: 32-bit big-endian
/// size 24, `ftyp`, major brand `isom`, minor version 0x200, compatible brands `isom mp41`),
/// then an `mdat` box (size, `mdat`, payload) standing in for the media data.
pub fn mp4(size: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, 24];
    bytes.extend_from_slice(b"ftypisom");
    bytes.extend_from_slice(&[0, 0, 2, 0]);
    bytes.extend_from_slice(b"isommp41");
    bytes.extend_from_slice(&((size + 8) as u32).to_be_bytes());
    bytes.extend_from_slice(b"mdat");
    bytes.extend((0..size).map(|i| (i * 7 % 253) as u8));
    bytes
}

/// An animated WebP of about `size` bytes (the WebP Container Specification): `RIFF`, the size
/// of what follows (32-bit little-endian), `WEBP`; a `VP8X` chunk (payload 10 bytes: flags
/// 0x12 = alpha | animation, 3 reserved bytes, canvas 624 x 624 as width - 1 and height - 1
/// in 24 bits each); an `ANIM` chunk (background colour, loop count 0); one `ANMF` frame.
pub fn animated_webp(size: usize) -> Vec<u8> {
    let chunk = |fourcc: &[u8; 4], payload: &[u8]| {
        let mut bytes = fourcc.to_vec();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            bytes.push(0);
        }
        bytes
    };
    let frame: Vec<u8> = (0..size).map(|i| (i * 13 % 241) as u8).collect();
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(
        b"VP8X",
        &[0x12, 0, 0, 0, 0x6f, 0x02, 0x00, 0x6f, 0x02, 0x00],
    ));
    body.extend(chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    body.extend(chunk(b"ANMF", &frame));
    let mut bytes = b"RIFF".to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend(body);
    bytes
}

pub fn ok(body: Vec<u8>, content_type: &str) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![("Content-Type".into(), content_type.into())],
        body,
    }
}

pub fn status(status: u16, headers: Vec<(&str, &str)>) -> Reply {
    Reply::Full {
        status,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: b"{}".to_vec(),
    }
}

impl Cdn {
    /// Starts serving on 127.0.0.1; returns the address.
    pub async fn start(self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let cdn = self.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 8192];
                    let mut read = 0;
                    while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    let target = text.split_whitespace().nth(1).unwrap_or("/");
                    let path = target.split('?').next().unwrap_or("/").to_string();
                    tokio::time::sleep(cdn.delay).await;
                    cdn.hits.lock().unwrap().push((path.clone(), Instant::now()));
                    let reply = {
                        let mut scripts = cdn.scripts.lock().unwrap();
                        let script = scripts.entry(path).or_default();
                        match script.len() {
                            0 => status(404, vec![]),
                            1 => script[0].clone(),
                            _ => script.remove(0),
                        }
                    };
                    let head = |status: u16, headers: &[(String, String)], length: usize| {
                        let mut head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {length}\r\nConnection: close\r\n"
                        );
                        for (name, value) in headers {
                            head.push_str(&format!("{name}: {value}\r\n"));
                        }
                        head.push_str("\r\n");
                        head
                    };
                    match reply {
                        Reply::Full {
                            status,
                            headers,
                            body,
                        } => {
                            let _ = stream
                                .write_all(head(status, &headers, body.len()).as_bytes())
                                .await;
                            let _ = stream.write_all(&body).await;
                        }
                        Reply::Truncated { announced, body } => {
                            let headers = vec![("Content-Type".to_string(), "image/png".to_string())];
                            let _ = stream.write_all(head(200, &headers, announced).as_bytes()).await;
                            let _ = stream.write_all(&body).await;
                        }
                        Reply::Stall { body, stall } => {
                            let headers = vec![("Content-Type".to_string(), "image/png".to_string())];
                            let _ = stream
                                .write_all(head(200, &headers, body.len() * 2).as_bytes())
                                .await;
                            let _ = stream.write_all(&body).await;
                            tokio::time::sleep(stall).await;
                        }
                        Reply::Trickle { body, chunk, every } => {
                            let headers = vec![("Content-Type".to_string(), "image/png".to_string())];
                            let _ = stream.write_all(head(200, &headers, body.len()).as_bytes()).await;
                            for piece in body.chunks(chunk.max(1)) {
                                if stream.write_all(piece).await.is_err() {
                                    break;
                                }
                                let _ = stream.flush().await;
                                tokio::time::sleep(every).await;
                            }
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        addr
    }

    /// The replies for `path`, in order; the last one repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.scripts.lock().unwrap().insert(path.to_string(), replies);
    }

    pub fn hits(&self, path: &str) -> Vec<Instant> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, at)| *at)
            .collect()
    }
}

impl Cdn {
    /// A CDN whose every answer waits `delay` first.
    pub fn with_delay(delay: Duration) -> Cdn {
        Cdn {
            delay,
            ..Cdn::default()
        }
    }

    /// Serves `body` as a PNG at `path`, every time.
    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.script(path, vec![ok(body, "image/png")]);
    }
}
