//! The TLS session against another implementation: the `openssl` command
//! line tool, as server (`s_server -rev`) and as client (`s_client`), over
//! loopback TCP.
//!
//! These tests need the `openssl` binary (Debian: `apt-get install openssl`)
//! and fail, saying so, when it is missing: they are never skipped.
//!
//! Every wait is for an event (a line from openssl, a readable or writable
//! socket) and is bounded by [`WAIT`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::test_certs::{self as certs, pki};
use super::tests::{client_options, pattern, Side};
use super::{TlsEnd, TlsServerOptions, TlsSession};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `openssl` with `args`, or fails the test with what to install.
fn spawn_openssl(args: &[&str]) -> KillOnDrop {
    let child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "the TLS interop tests need the openssl command line tool ({err}); \
                 install it (Debian/Ubuntu: apt-get install openssl) and run them again"
            )
        });
    KillOnDrop(child)
}

/// A child process that is killed if the test ends before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of a child's output, read on a thread.
fn lines(output: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            match line {
                Ok(line) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

/// A directory for PEM files, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "evstream-tls-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path_str(&path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Waits until `sock` is readable (or writable, when `write`), or the
/// deadline passes; returns false at the deadline. `slice` caps one wait so
/// the caller can look at other things (openssl's output) in between.
fn wait_socket(sock: &impl std::os::fd::AsFd, write: bool, slice: Duration) -> bool {
    let mut flags = PollFlags::IN;
    if write {
        flags |= PollFlags::OUT;
    }
    let mut fds = [PollFd::new(sock, flags)];
    let timeout = Timespec {
        tv_sec: slice.as_secs() as _,
        tv_nsec: slice.subsec_nanos() as _,
    };
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => n > 0,
        Err(rustix::io::Errno::INTR) => false,
        Err(err) => panic!("poll: {err}"),
    }
}

/// Pumps `side` until `done`, waiting for its socket between steps that
/// moved nothing; fails at the deadline with what was seen.
fn pump(
    side: &mut Side<TcpStream>,
    deadline: Instant,
    mut done: impl FnMut(&Side<TcpStream>) -> bool,
) {
    while !done(side) {
        if side.step() {
            continue;
        }
        if done(side) {
            return;
        }
        let now = Instant::now();
        assert!(now < deadline, "timed out: {}", side.describe());
        let slice = (deadline - now).min(Duration::from_millis(500));
        wait_socket(&side.sock, side.tls.wants_write(), slice);
    }
}

/// openssl `s_server -rev` (reverses each line it gets) on a free port.
fn rev_server(dir: &TempDir, extra: &[&str]) -> (KillOnDrop, u16, Receiver<String>) {
    let cert = dir.file("server.pem", &pki().server.cert_pem);
    let key = dir.file("server.key", &pki().server.key_pem);
    let mut args = vec![
        "s_server",
        "-naccept",
        "1",
        "-rev",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        &cert,
        "-key",
        &key,
    ];
    args.extend_from_slice(extra);
    let mut child = spawn_openssl(&args);
    let stdout = lines(child.0.stdout.take().unwrap());
    let stderr = lines(child.0.stderr.take().unwrap());
    // It prints "ACCEPT 127.0.0.1:<port>" once it listens.
    let deadline = Instant::now() + WAIT;
    let port = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stdout.recv_timeout(left) {
            Ok(line) => {
                if let Some(port) = line.strip_prefix("ACCEPT 127.0.0.1:") {
                    break port.trim().parse::<u16>().expect("a port");
                }
            }
            Err(_) => {
                let errors: Vec<String> = stderr.try_iter().collect();
                panic!("openssl s_server did not start listening: {errors:?}");
            }
        }
    };
    (child, port, stderr)
}

fn lines_of(count: usize) -> (Vec<u8>, Vec<u8>) {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let noise = pattern(count * 1000, 17);
    let mut sent = Vec::new();
    let mut reversed = Vec::new();
    for line in noise.chunks(1000) {
        let text: Vec<u8> = line
            .iter()
            .map(|b| alphabet[*b as usize % alphabet.len()])
            .collect();
        sent.extend_from_slice(&text);
        sent.push(b'\n');
        reversed.extend(text.iter().rev());
        reversed.push(b'\n');
    }
    (sent, reversed)
}

fn client_against_s_server(extra: &[&str], version: rustls::ProtocolVersion) {
    let dir = TempDir::new();
    let mut server_args = vec!["-alpn", "evstream/1,http/1.1"];
    server_args.extend_from_slice(extra);
    let (_server, port, stderr) = rev_server(&dir, &server_args);
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_nonblocking(true).unwrap();
    sock.set_nodelay(true).unwrap();
    let options = client_options("localhost").alpn_protocols(["evstream/1"]);
    let mut c = Side::new("client", TlsSession::client(&options).unwrap(), sock);

    let (sent, reversed) = lines_of(1000);
    c.send(sent);
    let deadline = Instant::now() + WAIT;
    pump(&mut c, deadline, |c| {
        c.received.len() >= reversed.len() || c.finished()
    });
    assert!(c.error.is_none(), "{}", c.describe());
    assert!(c.received == reversed, "1000 lines came back reversed");
    let info = c.tls.info();
    assert_eq!(info.alpn_protocol(), Some(&b"evstream/1"[..]));
    assert_eq!(info.protocol_version(), Some(version));
    assert_eq!(info.peer_certificates()[0], pki().server.chain[0]);

    // "CLOSE" makes s_server end the connection with close_notify.
    c.send(&b"CLOSE\n"[..]);
    pump(&mut c, deadline, |c| c.finished());
    let errors: Vec<String> = stderr.try_iter().collect();
    assert_eq!(
        c.end,
        Some(TlsEnd::CloseNotify),
        "{} {errors:?}",
        c.describe()
    );
}

#[test]
fn client_against_openssl_s_server_tls13() {
    client_against_s_server(&["-tls1_3"], rustls::ProtocolVersion::TLSv1_3);
}

#[test]
fn client_against_openssl_s_server_tls12() {
    client_against_s_server(&["-tls1_2"], rustls::ProtocolVersion::TLSv1_2);
}

fn server_against_s_client(extra: &[&str], version: rustls::ProtocolVersion) {
    let dir = TempDir::new();
    let ca = dir.file("ca.pem", &pki().ca.cert_pem);
    let cert = dir.file("client.pem", &pki().client.cert_pem);
    let key = dir.file("client.key", &pki().client.key_pem);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let connect = format!("127.0.0.1:{port}");
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        &ca,
        "-verify_return_error",
        "-alpn",
        "evstream/1",
        "-cert",
        &cert,
        "-key",
        &key,
        "-quiet",
    ];
    args.extend_from_slice(extra);
    let mut child = spawn_openssl(&args);
    let stdout = lines(child.0.stdout.take().unwrap());
    let stderr = lines(child.0.stderr.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();

    let deadline = Instant::now() + WAIT;
    let sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let now = Instant::now();
                assert!(
                    now < deadline,
                    "openssl s_client did not connect: {:?}",
                    stderr.try_iter().collect::<Vec<_>>()
                );
                wait_socket(
                    &listener,
                    false,
                    (deadline - now).min(Duration::from_millis(500)),
                );
            }
            Err(err) => panic!("accept: {err}"),
        }
    };
    sock.set_nonblocking(true).unwrap();
    let server = TlsServerOptions::new(Arc::new(certs::server_config_client_auth(false)))
        .alpn_protocols(["evstream/1"]);
    let mut s = Side::new("server", TlsSession::server(&server).unwrap(), sock);

    stdin.write_all(b"hello from openssl\n").unwrap();
    stdin.flush().unwrap();
    pump(&mut s, deadline, |s| {
        s.received.ends_with(b"\n") || s.finished()
    });
    assert_eq!(s.received, b"hello from openssl\n", "{}", s.describe());
    let info = s.tls.info();
    assert_eq!(info.server_name(), Some("localhost"));
    assert_eq!(info.alpn_protocol(), Some(&b"evstream/1"[..]));
    assert_eq!(info.protocol_version(), Some(version));
    assert_eq!(info.peer_certificates()[0], pki().client.chain[0]);

    // The reply, then close_notify and FIN: s_client prints it and exits.
    s.send(&b"hello from evstream\n"[..]);
    s.close_when_sent = true;
    pump(&mut s, deadline, |s| s.fin_sent);
    let left = deadline.saturating_duration_since(Instant::now());
    let line = stdout.recv_timeout(left).unwrap_or_else(|_| {
        panic!(
            "s_client printed nothing: {:?}",
            stderr.try_iter().collect::<Vec<_>>()
        )
    });
    assert_eq!(line, "hello from evstream");
    // s_client answers our close_notify with its own before it exits.
    drop(stdin);
    pump(&mut s, deadline, |s| s.finished());
    assert_eq!(s.end, Some(TlsEnd::CloseNotify), "{}", s.describe());
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "s_client failed: {status} {:?}",
        stderr.try_iter().collect::<Vec<_>>()
    );
}

#[test]
fn server_against_openssl_s_client_tls13() {
    server_against_s_client(&["-tls1_3"], rustls::ProtocolVersion::TLSv1_3);
}

#[test]
fn server_against_openssl_s_client_tls12() {
    server_against_s_client(&["-tls1_2"], rustls::ProtocolVersion::TLSv1_2);
}
