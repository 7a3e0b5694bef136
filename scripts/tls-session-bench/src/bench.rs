use std::io::IoSlice;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};

use crate::certs::pki;
use crate::tls::{TlsClientOptions, TlsServerOptions, TlsSession};

pub struct Figures {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
}

fn rusage() -> (Duration, Duration) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime))
}

pub fn measure(f: impl FnOnce()) -> Figures {
    let (u0, s0) = rusage();
    let t0 = Instant::now();
    f();
    let wall = t0.elapsed();
    let (u1, s1) = rusage();
    Figures {
        wall,
        user: u1 - u0,
        sys: s1 - s0,
    }
}

pub fn configs(provider: CryptoProvider) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let provider = Arc::new(provider);
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki().ca.roots())
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki().server.chain.clone(), pki().server.key())
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

pub fn pattern() -> Bytes {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut v = Vec::with_capacity(1 << 20);
    while v.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

struct End {
    tls: TlsSession,
    sock: UnixStream,
    to_send: usize,
    sent: usize,
    received: usize,
}

/// Client and server sessions over a socket pair in one thread: `c2s`
/// bytes client to server and `s2c` server to client.
pub fn session_pump(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    c2s: usize,
    s2c: usize,
    limit: usize,
) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let copts = TlsClientOptions::new(client, "localhost")
        .unwrap()
        .buffer_limit(limit);
    let sopts = TlsServerOptions::new(server).buffer_limit(limit);
    let mut ends = [
        End {
            tls: TlsSession::client(&copts).unwrap(),
            sock: a,
            to_send: c2s,
            sent: 0,
            received: 0,
        },
        End {
            tls: TlsSession::server(&sopts).unwrap(),
            sock: b,
            to_send: s2c,
            sent: 0,
            received: 0,
        },
    ];
    let data = pattern();
    let mut chunks = Vec::new();
    let mut rounds = 0u64;
    while ends[0].received < s2c || ends[1].received < c2s {
        rounds += 1;
        let mut progress = false;
        for e in ends.iter_mut() {
            loop {
                let mut moved = false;
                while e.sent < e.to_send {
                    let off = e.sent % data.len();
                    let end = data.len().min(off + (e.to_send - e.sent));
                    let n = e
                        .tls
                        .write_plaintext(&[IoSlice::new(&data[off..end])])
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                    e.sent += n;
                    moved = true;
                }
                let w = e.tls.write_to(&e.sock).unwrap();
                moved |= w.written > 0;
                progress |= moved;
                if !moved || w.flushed && e.sent == e.to_send {
                    break;
                }
            }
            let o = e.tls.read_from(&e.sock, &mut chunks, 1 << 20);
            assert!(o.error.is_none(), "{:?}", o.error);
            e.received += o.plaintext;
            progress |= o.socket_bytes > 0 || o.plaintext > 0;
            chunks.clear();
        }
        assert!(progress, "stalled");
    }
    let _ = rounds;
    println!(
        "suite {:?} version {:?}",
        ends[0].tls.info().cipher_suite(),
        ends[0].tls.info().protocol_version()
    );
}

/// The same transfer with tokio-rustls on a current-thread runtime.
pub fn tokio_pump(client: Arc<ClientConfig>, server: Arc<ServerConfig>, c2s: usize, s2c: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let connector = tokio_rustls::TlsConnector::from(client);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (c, s) = tokio::join!(connector.connect(name, a), acceptor.accept(b));
        let (c, s) = (c.unwrap(), s.unwrap());
        let data = pattern();
        async fn drive<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
            s: S,
            data: Bytes,
            send: usize,
            recv: usize,
        ) {
            let (mut r, mut w) = tokio::io::split(s);
            let writer = async {
                let mut sent = 0;
                while sent < send {
                    let off = sent % data.len();
                    let end = data.len().min(off + (send - sent));
                    w.write_all(&data[off..end]).await.unwrap();
                    sent += end - off;
                }
                w.flush().await.unwrap();
            };
            let reader = async {
                let mut buf = vec![0u8; 128 * 1024];
                let mut got = 0;
                while got < recv {
                    let n = r.read(&mut buf).await.unwrap();
                    assert!(n > 0);
                    got += n;
                }
            };
            tokio::join!(writer, reader);
        }
        tokio::join!(drive(c, data.clone(), c2s, s2c), drive(s, data, s2c, c2s));
    });
}
