//! HTTP/1.1 with hyper 1.x over evstream streams (the `tokio` feature):
//! an accept loop spawning one hyper connection per client on evstream's
//! default loop, and hyper's client fetching from it over another stream.
//! No tokio runtime runs: hyper takes the streams through hyper-util's
//! `TokioIo` (evstream implements tokio's I/O traits natively), the tasks
//! are evstream tasks, and hyper's timer (the header read timeout) is
//! evstream's timer heap.
//!
//! ```sh
//! cargo run --example hyper_server --features tokio
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HOST};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use evstream::{AsyncIoStream, TcpServer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// hyper's timer on evstream's loop: `time::sleep` is a future any
/// executor can await.
#[derive(Clone, Debug)]
pub struct EvTimer;

struct EvSleep(evstream::time::Sleep);

impl std::future::Future for EvSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for EvSleep {}

impl hyper::rt::Timer for EvTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(EvSleep(evstream::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(EvSleep(evstream::time::sleep_until(deadline)))
    }
}

/// The service: `GET /hello` greets, `POST /echo` returns the body, the
/// rest is 404.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let response = match (parts.method, parts.uri.path()) {
        (Method::GET, "/hello") => Response::new(Full::new(Bytes::from("hello from evstream"))),
        (Method::POST, "/echo") => match body.collect().await {
            Ok(collected) => Response::new(Full::new(collected.to_bytes())),
            Err(_) => status(StatusCode::BAD_REQUEST),
        },
        _ => status(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// Binds a server on the default loop and serves HTTP/1.1 on it in a
/// task; returns its address. The accept loop ends when `server` closes.
pub async fn start() -> Result<(TcpServer, SocketAddr), BoxError> {
    let server = TcpServer::listen("127.0.0.1:0").await?;
    let addr = server.local_addr();
    let acceptor = server.clone();
    evstream::spawn(async move {
        while let Ok((stream, _peer)) = acceptor.accept().await {
            evstream::spawn(async move {
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(EvTimer)
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
                if let Err(err) = served {
                    eprintln!("connection failed: {err}");
                }
            });
        }
    });
    Ok((server, addr))
}

/// Fetches `path` with hyper's client over an evstream stream, with
/// `body` (a POST) or none (a GET); returns the status and the body.
pub async fn fetch(
    addr: SocketAddr,
    path: &str,
    body: Option<&'static [u8]>,
) -> Result<(StatusCode, Bytes), BoxError> {
    let stream = AsyncIoStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven by its own evstream task.
    let driver = evstream::spawn(connection);
    let request = Request::builder()
        .method(if body.is_some() {
            Method::POST
        } else {
            Method::GET
        })
        .uri(path)
        .header(HOST, addr.to_string())
        .header(CONTENT_LENGTH, body.map_or(0, <[u8]>::len))
        .body(Full::new(Bytes::from_static(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    drop(sender);
    // With the sender gone the client connection ends.
    driver.await??;
    Ok((status, bytes))
}

#[allow(dead_code)]
fn main() -> Result<(), BoxError> {
    futures_lite::future::block_on(async {
        let (server, addr) = start().await?;
        println!("serving HTTP/1.1 on http://{addr}");
        let (status, body) = fetch(addr, "/hello", None).await?;
        println!("GET /hello -> {status}: {}", String::from_utf8_lossy(&body));
        let (status, body) = fetch(addr, "/echo", Some(b"evstream + hyper")).await?;
        println!("POST /echo -> {status}: {}", String::from_utf8_lossy(&body));
        let (status, _) = fetch(addr, "/nowhere", None).await?;
        println!("GET /nowhere -> {status}");
        server.close();
        Ok(())
    })
}
