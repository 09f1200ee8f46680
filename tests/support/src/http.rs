//! Just enough HTTP/1.1 for the stand-ins the tests run on 127.0.0.1: one request per
//! connection, read whole ([`read_request`]); and [`Receiver`], which stands in for a webhook
//! (Slack's, PagerDuty's) and records what it is sent.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one request: its request line and headers (as sent, without the blank line) and
/// its body (`content-length` bytes). A connection closed early gives what arrived.
pub async fn read_request(socket: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return (String::from_utf8_lossy(&buf).to_string(), Vec::new());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return (head, buf[end + 4..].to_vec());
        }
    }
}

/// A port on 127.0.0.1 nothing listens on (it was free a moment ago): a store or service
/// there is down.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.local_addr().expect("its address").port()
}

/// Returns once something accepts connections on 127.0.0.1:`port` (a spawned server is up),
/// polling every 200 µs so a start's time is measured closely; an error once `patience`
/// passed with nothing listening (a server that failed to start).
pub async fn wait_until_listening(port: u16, patience: std::time::Duration) -> Result<(), String> {
    let started = std::time::Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if started.elapsed() > patience {
            return Err(format!(
                "nothing listened on 127.0.0.1:{port} within {} s: the server did not start (its output says why)",
                patience.as_secs_f64()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    Ok(())
}

/// The request target (path) of a request line.
pub fn path(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or_default()
}

/// What 202 Accepted with `{}` looks like on the wire, closing the connection.
pub const ACCEPTED: &[u8] =
    b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";

/// A local HTTP receiver standing in for webhook endpoints: records each request's path
/// and JSON body (`null` when it is not JSON), answers 202 as PagerDuty does. Lives as long
/// as the runtime that started it.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`: give the code under test `<base>/<any path>`.
    pub base: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver to a local port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let sink = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let (head, body) = read_request(&mut socket).await;
                    if head.is_empty() {
                        return;
                    }
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    sink.lock()
                        .expect("receiver lock")
                        .push((path(&head).to_string(), body));
                    let _ = socket.write_all(ACCEPTED).await;
                });
            }
        });
        Receiver { base, received }
    }

    /// The bodies received at `path`, in arrival order.
    pub fn at(&self, path: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("receiver lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_receiver_records_each_path_and_body() {
        let receiver = Receiver::start().await;
        let addr = receiver.base.trim_start_matches("http://").to_string();
        let body = r#"{"text":"hello"}"#;
        let mut socket = TcpStream::connect(&addr).await.expect("connect");
        socket
            .write_all(
                format!(
                    "POST /slack HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .expect("send");
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.expect("answer");
        assert!(answer.starts_with(b"HTTP/1.1 202"));
        assert_eq!(
            receiver.at("/slack"),
            [serde_json::json!({"text": "hello"})]
        );
        assert!(receiver.at("/pagerduty").is_empty());
    }
}
