//! Blocking `std::net`: a thread per side (or per connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;

use crate::common::{
    bad_echo, data, join, line_pieces, message, std_listener, BulkCheck, LineCheck, Mark, Res,
    Section, BLOCK, MSG,
};

fn connect(addr: SocketAddr) -> Res<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn echo(mut stream: TcpStream) -> Res<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn ping(stream: &mut TcpStream, round: usize) -> Res<()> {
    let msg = message(round);
    let mut reply = [0u8; MSG];
    stream.write_all(&msg)?;
    stream.read_exact(&mut reply)?;
    if reply != msg {
        return Err(bad_echo(round));
    }
    Ok(())
}

pub fn bulk_send(addr: SocketAddr, blocks: u64) -> Res<()> {
    let mut stream = connect(addr)?;
    let pattern = &data().pattern[..];
    for _ in 0..blocks {
        stream.write_all(pattern)?;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(())
}

pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
    let listener = std_listener()?;
    addr_tx.send(listener.local_addr()?)?;
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; BLOCK];
    let mut check = BulkCheck::default();
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(check);
        }
        check.feed(&buf[..n]);
    }
}

pub fn pingpong2(rounds: usize) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        |addr_tx| {
            let listener = std_listener()?;
            addr_tx.send(listener.local_addr()?)?;
            let (stream, _) = listener.accept()?;
            stream.set_nodelay(true)?;
            echo(stream)
        },
        move |addr| {
            let mut stream = connect(addr)?;
            let start = Mark::now();
            for round in 0..rounds {
                ping(&mut stream, round)?;
            }
            Ok(start.elapsed())
        },
    )?;
    Ok(elapsed)
}

/// One thread, blocking sockets in lock step: the client writes, the
/// server reads the 64 bytes (already delivered by loopback) and
/// writes them back, the client reads. No readiness API at all: the
/// floor of four system calls per round trip.
pub fn pingpong1(rounds: usize) -> Res<Section> {
    let listener = std_listener()?;
    let mut client = connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    server.set_nodelay(true)?;
    let mut buf = [0u8; MSG];
    let start = Mark::now();
    for round in 0..rounds {
        let msg = message(round);
        client.write_all(&msg)?;
        server.read_exact(&mut buf)?;
        server.write_all(&buf)?;
        client.read_exact(&mut buf)?;
        if buf != msg {
            return Err(bad_echo(round));
        }
    }
    Ok(start.elapsed())
}

pub fn lines_send(addr: SocketAddr, lines: usize) -> Res<()> {
    let mut stream = connect(addr)?;
    for piece in line_pieces(lines) {
        stream.write_all(&piece)?;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(())
}

/// `BufReader` (64 KiB) + `read_until` into a reused `Vec`.
pub fn lines_recv(addr_tx: mpsc::Sender<SocketAddr>) -> Res<LineCheck> {
    let listener = std_listener()?;
    addr_tx.send(listener.local_addr()?)?;
    let (stream, _) = listener.accept()?;
    let mut reader = BufReader::with_capacity(BLOCK, stream);
    let mut check = LineCheck::new();
    let mut line = Vec::with_capacity(256);
    while reader.read_until(b'\n', &mut line)? > 0 {
        check.line_with_newline(&line);
        line.clear();
    }
    Ok(check)
}

/// A thread per connection on both sides (64 KiB stacks).
pub fn conns(n: usize, rounds: usize, start: Mark) -> Res<Section> {
    const STACK: usize = 64 * 1024;
    let (_, (), elapsed) = crate::common::run_pair(
        move |addr_tx| {
            let listener = std_listener()?;
            addr_tx.send(listener.local_addr()?)?;
            let mut threads = Vec::with_capacity(n);
            for _ in 0..n {
                let (stream, _) = listener.accept()?;
                stream.set_nodelay(true)?;
                threads.push(
                    thread::Builder::new()
                        .stack_size(STACK)
                        .spawn(move || echo(stream))?,
                );
            }
            for thread in threads {
                join(thread)?;
            }
            Ok(())
        },
        move |addr| {
            let (done_tx, done_rx) = mpsc::channel::<Res<()>>();
            let release = Arc::new((Mutex::new(false), Condvar::new()));
            let mut threads = Vec::with_capacity(n);
            for _ in 0..n {
                let done = done_tx.clone();
                let release = release.clone();
                threads.push(thread::Builder::new().stack_size(STACK).spawn(move || {
                    let run = || -> Res<TcpStream> {
                        let mut stream = connect(addr)?;
                        for round in 0..rounds {
                            ping(&mut stream, round)?;
                        }
                        Ok(stream)
                    };
                    match run() {
                        Ok(stream) => {
                            let _ = done.send(Ok(()));
                            let (lock, cvar) = &*release;
                            let mut released = lock.lock().unwrap();
                            while !*released {
                                released = cvar.wait(released).unwrap();
                            }
                            drop(stream);
                        }
                        Err(err) => {
                            let _ = done.send(Err(err));
                        }
                    }
                    Ok(())
                })?);
            }
            for _ in 0..n {
                done_rx.recv()??;
            }
            let elapsed = start.elapsed();
            *release.0.lock().unwrap() = true;
            release.1.notify_all();
            for thread in threads {
                join(thread)?;
            }
            Ok(elapsed)
        },
    )?;
    Ok(elapsed)
}
