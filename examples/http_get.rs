//! cl-async's own stream example, in evstream: connect with the request as
//! the connection's initial `data`, in stream mode with a read timeout, and
//! read until the server closes; then print the status line and the byte
//! count.
//!
//! ```text
//! cargo run --example http_get -- http://127.0.0.1:8080/some/path
//! ```
//!
//! With no URL it starts a tiny HTTP server on loopback and fetches from it,
//! so it runs anywhere (this machine has no other network).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use evstream::{tcp_connect, AsyncIoStream, Error, Event, EventLoop, TcpOptions};

/// What a GET brought back.
#[derive(Debug)]
pub struct Response {
    /// The first line, e.g. `HTTP/1.0 200 OK`.
    pub status_line: String,
    /// Everything the server sent (head and body).
    pub bytes: Bytes,
}

/// GETs `path` from `host:port`: connect with the request as `data`, read
/// until close, with a 5 s read timeout.
pub fn get(host: &str, port: u16, path: &str) -> Result<Response, Error> {
    let mut ev = EventLoop::new()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let socket = tcp_connect(
        &ev.handle(),
        host,
        port,
        TcpOptions::new()
            .stream(true)
            .data(request)
            .read_timeout(Duration::from_secs(5))
            .event_cb(|socket, event| match event {
                // The server is done. The bytes stay readable after close,
                // so the reader below still gets all of them.
                Event::Eof => socket.close(),
                // A stalled server: give up rather than wait forever.
                Event::Timeout(_) => socket.abort(),
                Event::Error(err) => eprintln!("http_get: {err}"),
                _ => {}
            }),
    )?;
    let (tx, rx) = mpsc::channel();
    AsyncIoStream::new(socket).read_until_close_cb(move |result| {
        let _ = tx.send(result);
    });
    ev.run()?;
    let bytes = rx.recv().map_err(|_| Error::Closed)??;
    let status_line = bytes
        .split(|&b| b == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim_end().to_string())
        .unwrap_or_default();
    Ok(Response { status_line, bytes })
}

/// A one-shot HTTP/1.0 server on loopback that answers one GET with
/// `body`; returns its port.
pub fn serve_once(body: Vec<u8>) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        // Read the request head up to the empty line.
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
            line.clear();
        }
        let mut stream = reader.into_inner();
        let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    });
    Ok(port)
}

#[allow(dead_code)] // `main` is unused when a test includes this file
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1);
    let (host, port, path) = match &url {
        Some(url) => parse_url(url).ok_or("usage: http_get http://host[:port]/path")?,
        None => {
            let port = serve_once(b"hello from the local test server\n".repeat(1000))?;
            println!("no URL given: fetching from a local server on port {port}");
            ("127.0.0.1".to_string(), port, "/".to_string())
        }
    };
    let response = get(&host, port, &path)?;
    println!("{}", response.status_line);
    println!("{} bytes received", response.bytes.len());
    Ok(())
}

/// Splits `http://host[:port][/path]`.
fn parse_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    Some((host.to_string(), port, path.to_string()))
}
