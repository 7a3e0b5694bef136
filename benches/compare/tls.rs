//! The TLS workloads (feature `tls`): `tlsbulk` and `tlspingpong`,
//! evstream's TLS layer (`TcpOptions::tls`, `ServerOptions::tls`) against
//! tokio-rustls (`TlsConnector` / `TlsAcceptor` over tokio's `TcpStream`).
//! Both run the same rustls with the `ring` provider and the very same
//! client and server configurations, so the difference is what each
//! runtime does around the TLS session.
//!
//! The certificate (a self-signed one for `localhost`, which the client
//! trusts as its only root) is made with rcgen in the child, before the
//! measured section. The measured sections are those of the plaintext
//! workloads: `tlsbulk` from starting the client (TCP connect and the
//! handshake included, a millisecond against seconds of transfer) to the
//! end of the transfer, `tlspingpong` the round trips only (after the
//! handshake).

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use crate::common::{
    bad_echo, data, message, BulkCheck, Mark, Res, Section, BACKLOG, BLOCK, ECHO_BUF, MSG,
};
use crate::ev::Ping;

/// The name the server's certificate is for, and the client verifies.
const SERVER_NAME: &str = "localhost";

/// The rustls configurations both implementations use.
pub struct Configs {
    pub client: Arc<rustls::ClientConfig>,
    pub server: Arc<rustls::ServerConfig>,
}

/// Made once per process, on first use (call it before the measured
/// section).
pub fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let certified = rcgen::generate_simple_self_signed(vec![
            SERVER_NAME.to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("a self-signed certificate");
        let cert = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("the certificate as a root");
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("the server's certificate and key");
        // No TLS 1.3 session tickets: a bulk sender that never reads would
        // leave them unread in its socket, and Linux answers a close with
        // unread bytes by a reset, which can cut the receiver off before
        // the end (tokio-rustls's sender never reads; evstream's loop
        // reads them). Resumption plays no part in one connection anyway.
        server.send_tls13_tickets = 0;
        Configs {
            client: Arc::new(client),
            server: Arc::new(server),
        }
    })
}

/// Sizes of the TLS workloads: `tlsbulk` sends half of `bulk`'s bytes
/// (1 GiB in the full run, 32 MiB with `--quick`).
pub fn bulk_blocks(s: &crate::common::Sizes) -> u64 {
    (s.bulk_bytes / 2 / BLOCK as u64).max(1)
}

// ---------------------------------------------------------------------------
// evstream
// ---------------------------------------------------------------------------

pub mod ev {
    use super::*;

    use evstream::{
        tcp_connect, AsyncIoStream, Event, EventLoop, LoopHandle, ServerOptions, Socket,
        TcpOptions, TcpServer, TlsClientOptions, TlsServerOptions,
    };
    use futures::channel::oneshot;
    use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt};

    fn client_options() -> TcpOptions {
        let tls = TlsClientOptions::new(configs().client.clone(), SERVER_NAME)
            .expect("a valid server name");
        TcpOptions::new().tls(tls)
    }

    /// Connects with TLS; completes once the handshake has.
    fn connect(
        handle: &LoopHandle,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = evstream::Result<AsyncIoStream>> + Send + 'static {
        let handle = handle.clone();
        async move { AsyncIoStream::connect_on(&handle, addr, client_options()).await }
    }

    /// A TLS server that closes itself after its first connection, each
    /// with `options`; `on_accept` runs once the handshake is done.
    fn server(
        ev: &EventLoop,
        options: TcpOptions,
        on_accept: impl Fn(&Socket) + Send + Sync + 'static,
    ) -> Res<TcpServer> {
        let slot: Arc<Mutex<Option<TcpServer>>> = Arc::default();
        let to_close = slot.clone();
        let options = options.connect_cb(move |socket| {
            if let Some(server) = to_close.lock().unwrap().take() {
                server.close();
            }
            on_accept(socket);
        });
        let server = TcpServer::bind(
            &ev.handle(),
            "127.0.0.1:0",
            ServerOptions::new()
                .backlog(BACKLOG)
                .connection(options)
                .tls(TlsServerOptions::new(configs().server.clone())),
        )?;
        // Callbacks run only inside `run`/`block_on` on this thread: the
        // slot is filled before the first accept.
        *slot.lock().unwrap() = Some(server.clone());
        Ok(server)
    }

    /// A server whose one connection's stream goes to the receiver.
    fn accept_one(ev: &EventLoop) -> Res<(TcpServer, oneshot::Receiver<AsyncIoStream>)> {
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let server = server(ev, TcpOptions::new().stream(true), move |socket| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(AsyncIoStream::new(socket.clone()));
            }
        })?;
        Ok((server, rx))
    }

    /// `write_all(&[u8])`, or `write_all_bytes(Bytes)` with `zero_copy`;
    /// then close (flush, `close_notify`, FIN).
    pub fn bulk_send(addr: SocketAddr, blocks: u64, zero_copy: bool) -> Res<()> {
        let mut ev = EventLoop::new()?;
        let connecting = connect(&ev.handle(), addr);
        ev.block_on(async move {
            let mut stream = connecting.await?;
            let pattern = data().pattern.clone();
            for _ in 0..blocks {
                if zero_copy {
                    stream.write_all_bytes(pattern.clone()).await?;
                } else {
                    stream.write_all(&pattern).await?;
                }
            }
            AsyncWriteExt::close(&mut stream).await?;
            Ok(())
        })?
    }

    /// `AsyncReadExt::read` into 64 KiB, or the zero-copy `fill_buf` /
    /// `consume` with `zero_copy`, until `close_notify`.
    pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>, zero_copy: bool) -> Res<BulkCheck> {
        let mut ev = EventLoop::new()?;
        let (server, accepted) = accept_one(&ev)?;
        addr_tx.send(server.local_addr())?;
        ev.block_on(async move {
            let mut stream = accepted.await?;
            let mut check = BulkCheck::default();
            if zero_copy {
                loop {
                    let chunk = stream.fill_buf().await?;
                    if chunk.is_empty() {
                        return Ok(check);
                    }
                    let n = chunk.len();
                    check.feed(chunk);
                    stream.consume(n);
                }
            }
            let mut buf = vec![0u8; BLOCK];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(check);
                }
                check.feed(&buf[..n]);
            }
        })?
    }

    /// A drain-mode echo server: `read_cb` writes every chunk back.
    fn echo_server(ev: &EventLoop) -> Res<TcpServer> {
        let options = TcpOptions::new()
            .read_cb(|socket, bytes| {
                let _ = socket.write_bytes(bytes);
            })
            .event_cb(|socket, event| {
                if matches!(event, Event::Eof) {
                    socket.close();
                }
            });
        server(ev, options, |_| {})
    }

    /// A stream echo server: a task spawned on the loop reads into
    /// `ECHO_BUF` bytes and writes back.
    fn stream_echo_server(ev: &EventLoop) -> Res<TcpServer> {
        let handle = ev.handle();
        server(ev, TcpOptions::new().stream(true), move |socket| {
            let mut stream = AsyncIoStream::new(socket.clone());
            handle.spawn(async move {
                let mut buf = [0u8; ECHO_BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        })
    }

    async fn ping_client(
        connecting: impl std::future::Future<Output = evstream::Result<AsyncIoStream>>,
        rounds: usize,
    ) -> Res<Section> {
        let mut stream = connecting.await?;
        let mut reply = [0u8; MSG];
        let start = Mark::now();
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        let elapsed = start.elapsed();
        AsyncWriteExt::close(&mut stream).await?;
        Ok(elapsed)
    }

    /// Callback client: `connect_cb` (after the handshake) sends the
    /// first message, `read_cb` checks each echo and sends the next.
    fn cb_client(
        handle: &LoopHandle,
        addr: SocketAddr,
        rounds: usize,
    ) -> Res<mpsc::Receiver<Res<Section>>> {
        struct State {
            round: usize,
            start: Mark,
            pending: Vec<u8>,
            tx: mpsc::Sender<Res<Section>>,
        }
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(State {
            round: 0,
            start: Mark::now(),
            pending: Vec::with_capacity(MSG),
            tx,
        }));
        let (on_connect, on_read, on_event) = (state.clone(), state.clone(), state);
        tcp_connect(
            handle,
            &addr.ip().to_string(),
            addr.port(),
            client_options()
                .connect_cb(move |socket| {
                    on_connect.lock().unwrap().start = Mark::now();
                    let _ = socket.write(&message(0));
                })
                .read_cb(move |socket, bytes| {
                    let mut st = on_read.lock().unwrap();
                    st.pending.extend_from_slice(&bytes);
                    while st.pending.len() >= MSG {
                        let round = st.round;
                        if st.pending[..MSG] != message(round) {
                            let _ = st.tx.send(Err(bad_echo(round)));
                            socket.abort();
                            return;
                        }
                        st.pending.drain(..MSG);
                        st.round += 1;
                        if st.round == rounds {
                            let _ = st.tx.send(Ok(st.start.elapsed()));
                            socket.close();
                            return;
                        }
                        let _ = socket.write(&message(st.round));
                    }
                })
                .event_cb(move |_, event| {
                    if let Event::Error(err) = event {
                        let _ = on_event.lock().unwrap().tx.send(Err(err.into()));
                    }
                }),
        )?;
        Ok(rx)
    }

    /// Client and server on two threads, each with its own loop.
    pub fn pingpong(rounds: usize, how: Ping) -> Res<Section> {
        let (_, (), elapsed) = crate::common::run_pair(
            move |addr_tx| {
                let mut ev = EventLoop::new()?;
                let server = match how {
                    Ping::Streams => stream_echo_server(&ev)?,
                    Ping::Natural | Ping::Callbacks => echo_server(&ev)?,
                };
                addr_tx.send(server.local_addr())?;
                ev.run()?;
                Ok(())
            },
            move |addr| {
                let mut ev = EventLoop::new()?;
                match how {
                    Ping::Callbacks => {
                        let done = cb_client(&ev.handle(), addr, rounds)?;
                        ev.run()?;
                        done.recv()?
                    }
                    Ping::Natural | Ping::Streams => {
                        let connecting = connect(&ev.handle(), addr);
                        ev.block_on(ping_client(connecting, rounds))?
                    }
                }
            },
        )?;
        Ok(elapsed)
    }
}

// ---------------------------------------------------------------------------
// tokio + tokio-rustls
// ---------------------------------------------------------------------------

pub mod tk {
    use super::*;

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::runtime::Runtime;
    use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

    fn runtime() -> Res<Runtime> {
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?)
    }

    fn listener() -> Res<(std::net::TcpListener, SocketAddr)> {
        let listener = crate::common::std_listener()?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    }

    /// Accepts one connection and completes the handshake.
    async fn accept(listener: std::net::TcpListener) -> Res<server::TlsStream<TcpStream>> {
        let listener = TcpListener::from_std(listener)?;
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let acceptor = TlsAcceptor::from(configs().server.clone());
        Ok(acceptor.accept(stream).await?)
    }

    /// Connects and completes the handshake.
    async fn connect(addr: SocketAddr) -> Res<client::TlsStream<TcpStream>> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let connector = TlsConnector::from(configs().client.clone());
        let name = ServerName::try_from(SERVER_NAME)?;
        Ok(connector.connect(name, stream).await?)
    }

    /// `write_all` of each block, then `shutdown` (`close_notify`, FIN).
    pub fn bulk_send(addr: SocketAddr, blocks: u64) -> Res<()> {
        runtime()?.block_on(async move {
            let mut stream = connect(addr).await?;
            let pattern = &data().pattern[..];
            for _ in 0..blocks {
                stream.write_all(pattern).await?;
            }
            stream.shutdown().await?;
            Ok(())
        })
    }

    /// `read` into 64 KiB until `close_notify`.
    pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let (listener, addr) = listener()?;
        addr_tx.send(addr)?;
        runtime()?.block_on(async move {
            let mut stream = accept(listener).await?;
            let mut buf = vec![0u8; BLOCK];
            let mut check = BulkCheck::default();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(check);
                }
                check.feed(&buf[..n]);
            }
        })
    }

    /// Client and server on two threads, a current-thread runtime each;
    /// the server reads into `ECHO_BUF` bytes and writes back.
    pub fn pingpong(rounds: usize) -> Res<Section> {
        let (_, (), elapsed) = crate::common::run_pair(
            |addr_tx| {
                let (listener, addr) = listener()?;
                addr_tx.send(addr)?;
                runtime()?.block_on(async move {
                    let mut stream = accept(listener).await?;
                    let mut buf = [0u8; ECHO_BUF];
                    loop {
                        let n = stream.read(&mut buf).await?;
                        if n == 0 {
                            return Ok(()); // the client's close_notify
                        }
                        stream.write_all(&buf[..n]).await?;
                    }
                })
            },
            move |addr| {
                runtime()?.block_on(async move {
                    let mut stream = connect(addr).await?;
                    let mut reply = [0u8; MSG];
                    let start = Mark::now();
                    for round in 0..rounds {
                        let msg = message(round);
                        stream.write_all(&msg).await?;
                        stream.read_exact(&mut reply).await?;
                        if reply != msg {
                            return Err(bad_echo(round));
                        }
                    }
                    let elapsed = start.elapsed();
                    stream.shutdown().await?;
                    Ok(elapsed)
                })
            },
        )?;
        Ok(elapsed)
    }
}

// ---------------------------------------------------------------------------
// The cases' runs
// ---------------------------------------------------------------------------

/// One `tlsbulk` run: `server` receives and checks, `client` sends.
pub fn bulk_case(
    s: &crate::common::Sizes,
    server: fn(mpsc::Sender<SocketAddr>) -> Res<BulkCheck>,
    client: fn(SocketAddr, u64) -> Res<()>,
) -> Res<crate::cases::Outcome> {
    configs(); // the certificate, before the measured section
    let blocks = bulk_blocks(s);
    let (section, check, ()) = crate::common::run_pair(server, move |addr| client(addr, blocks))?;
    check.verify(blocks * BLOCK as u64)?;
    Ok(crate::cases::Outcome {
        section,
        values: vec![crate::common::mib_per_s(check.total, section.wall)],
    })
}

/// One `tlspingpong` run.
pub fn ping_case(
    s: &crate::common::Sizes,
    run: impl FnOnce(usize) -> Res<Section>,
) -> Res<crate::cases::Outcome> {
    configs();
    let section = run(s.pingpong)?;
    Ok(crate::cases::Outcome {
        section,
        values: vec![crate::common::rate(s.pingpong as f64, section.wall)],
    })
}
