//! A TCP proxy between mjlink and the S3 server that sees every HTTP/1.1 request: it records
//! each request line, can change one byte of the next request bodies (a body corrupted in
//! transit, after mjlink computed its checksum), and can hold a part upload forever (an upload cut
//! short mid-file). Responses pass through untouched.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    /// (method, target) of every request, in order.
    requests: Vec<(String, String)>,
    /// How many more request bodies (of `corrupt_method`, to targets containing
    /// `corrupt_match`) get one byte changed.
    corrupt_puts: usize,
    corrupt_method: String,
    corrupt_match: String,
    /// PUT bodies changed so far.
    corrupted: usize,
    /// A part number whose upload is held forever.
    stall_part: Option<u32>,
}

#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
        };
        let state = Arc::clone(&proxy.state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, mut client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let back = tokio::spawn(async move {
                        let mut server_read = server_read;
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    forward_requests(client_read, server_write, state).await;
                    back.abort();
                });
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes one byte in each of the next `count` PUT bodies to a target containing
    /// `matching` (`.png`: the images, not the metadata).
    pub fn corrupt_next_puts(&self, count: usize, matching: &str) {
        self.corrupt_next("PUT", count, matching);
    }

    /// Changes one byte in each of the next `count` bodies of `method` requests to a target
    /// containing `matching` (`POST` and `uploadId=`: the list of parts that completes an upload).
    pub fn corrupt_next(&self, method: &str, count: usize, matching: &str) {
        let mut state = self.state.lock().unwrap();
        state.corrupt_puts = count;
        state.corrupt_method = method.to_string();
        state.corrupt_match = matching.to_string();
    }

    pub fn corrupted(&self) -> usize {
        self.state.lock().unwrap().corrupted
    }

    pub fn stall_part(&self, part: Option<u32>) {
        self.state.lock().unwrap().stall_part = part;
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

/// Requests one by one: the head, then `Content-Length` bytes of body.
async fn forward_requests(
    mut client: tokio::net::tcp::OwnedReadHalf,
    mut server: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<Mutex<State>>,
) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default().to_string();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())
                    .flatten()
            })
            .unwrap_or(0);
        let (corrupt, stall) = {
            let mut state = state.lock().unwrap();
            state.requests.push((method.clone(), target.clone()));
            let corrupt = method == state.corrupt_method
                && length > 0
                && state.corrupt_puts > 0
                && target.contains(&state.corrupt_match);
            if corrupt {
                state.corrupt_puts -= 1;
                state.corrupted += 1;
            }
            let stall = method == "PUT"
                && state.stall_part.is_some_and(|part| {
                    target.contains(&format!("partNumber={part}&"))
                        || target.ends_with(&format!("partNumber={part}"))
                });
            (corrupt, stall)
        };
        while buffer.len() < end + length {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let mut request: Vec<u8> = buffer.drain(..end + length).collect();
        if stall {
            // Held: the part never reaches the server.
            std::future::pending::<()>().await;
        }
        if corrupt {
            let middle = end + length / 2;
            request[middle] ^= 0x5a;
        }
        if server.write_all(&request).await.is_err() {
            return;
        }
    }
}
