//! evstream's demo: a loopback server and a client on one event loop,
//! exchanging data both ways, first in drain mode (the loop hands new bytes
//! to `read_cb`) and then in dont-drain mode (the loop leaves them in the
//! input buffer; `notify_cb` only says they are there and the application
//! reads when it likes), then through the stream types: a server task
//! reading lines with `AsyncBufRead`, and a client whose write half runs on
//! a blocking std thread while its read half is a future on the loop. It
//! prints what happened and exits on its own.
//!
//! Run it with `cargo run --release --example demo`.

use evstream::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::io::Write;

use bytes::Bytes;
use evstream::{
    tcp_connect, AsyncIoStream, Event, EventLoop, ServerOptions, Socket, TcpOptions, TcpServer,
};
use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt};
use futures_lite::StreamExt;

/// How much the client streams to the server in the dont-drain part.
const STREAM_BYTES: usize = 64 * 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut ev = EventLoop::new()?;
    let handle = ev.handle();

    // ---- Part 1: drain mode, an echo server and a client ------------------
    let echo = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .read_cb(|socket, data| {
                    println!(
                        "[echo server] got {:?}, echoing it",
                        String::from_utf8_lossy(&data)
                    );
                    socket.write_bytes(data).expect("echo");
                })
                .event_cb(|socket, event| {
                    println!("[echo server] event {event:?}");
                    if matches!(event, Event::Eof) {
                        socket.close();
                    }
                }),
        ),
    )?;
    println!("[echo server] listening on {}", echo.local_addr());

    let messages = ["hello", " from", " evstream"];
    let expected: usize = messages.iter().map(|m| m.len()).sum();
    let echoed = Arc::new(Mutex::new(Vec::new()));
    let sink = echoed.clone();
    let echo_server = echo.clone();
    let client = tcp_connect(
        &handle,
        "localhost",
        echo.local_addr().port(),
        TcpOptions::new()
            // cl-async's `:data`: sent as soon as the connection is up.
            .data(messages[0])
            .connect_cb(|socket| println!("[client] connected to {:?}", socket.peer_addr()))
            .read_cb(move |socket, data| {
                let mut all = sink.lock().unwrap();
                all.extend_from_slice(&data);
                println!("[client] echo so far: {:?}", String::from_utf8_lossy(&all));
                if all.len() == expected {
                    // Half-close: the server sees EOF and closes its side.
                    socket.shutdown_write().expect("shutdown");
                }
            })
            .event_cb(move |socket, event| {
                println!("[client] event {event:?}");
                match event {
                    Event::Eof => socket.close(),
                    Event::Closed => echo_server.close(),
                    _ => {}
                }
            }),
    )?;
    // Written before the connection is up: queued, never dropped.
    for message in &messages[1..] {
        client.write(message.as_bytes())?;
    }
    drop(client);

    ev.run()?;
    let echoed = echoed.lock().unwrap().clone();
    assert_eq!(echoed, messages.concat().as_bytes(), "the echo matches");
    println!("part 1 done: {} bytes echoed in drain mode\n", echoed.len());

    // ---- Part 2: dont-drain mode, 64 MiB up, a summary line back ----------
    // The server leaves bytes in the input buffer; its notify_cb takes at
    // most 256 KiB per notification, so the buffer fills to its watermark,
    // the loop stops reading, and TCP flow control slows the client down.
    let notifications = Arc::new(AtomicUsize::new(0));
    let counter = notifications.clone();
    let server_state = Arc::new(Mutex::new((0usize, 0u64))); // (bytes, checksum)
    let state = server_state.clone();
    let summary = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .read_watermarks(0, 1024 * 1024)
                .notify_cb(move |socket| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let mut buf = vec![0u8; 256 * 1024];
                    if let Ok(n) = socket.read(&mut buf) {
                        let mut state = state.lock().unwrap();
                        state.0 += n;
                        state.1 = buf[..n].iter().fold(state.1, |sum, &b| {
                            sum.wrapping_mul(31).wrapping_add(b as u64)
                        });
                    }
                })
                .event_cb({
                    let state = server_state.clone();
                    move |socket, event| {
                        if let Event::Eof = event {
                            // Take what the notifications left behind.
                            drain(socket, &state);
                            let (bytes, sum) = *state.lock().unwrap();
                            println!("[summary server] EOF after {bytes} bytes; replying");
                            socket
                                .write(format!("{bytes} {sum:x}\n").as_bytes())
                                .expect("reply");
                            socket.close();
                        }
                    }
                }),
        ),
    )?;

    let payload: Bytes = (0..STREAM_BYTES)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect::<Vec<_>>()
        .into();
    let expected_sum = payload
        .iter()
        .fold(0u64, |sum, &b| sum.wrapping_mul(31).wrapping_add(b as u64));
    let reply = Arc::new(Mutex::new(String::new()));
    let reply_sink = reply.clone();
    let summary_server = summary.clone();
    let upload_started = Instant::now();
    let uploader = tcp_connect(
        &handle,
        "127.0.0.1",
        summary.local_addr().port(),
        TcpOptions::new()
            .dont_drain(true)
            .notify_cb(move |socket| {
                let mut buf = [0u8; 128];
                while let Ok(n @ 1..) = socket.read(&mut buf) {
                    reply_sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
            .write_cb(|socket| {
                println!("[uploader] output handed to the kernel; half-closing");
                let _ = socket.shutdown_write();
            })
            .event_cb(move |socket, event| {
                if !matches!(event, Event::Closed) {
                    println!("[uploader] event {event:?}");
                }
                match event {
                    Event::Eof => socket.close(),
                    Event::Closed => summary_server.close(),
                    _ => {}
                }
            }),
    )?;
    uploader.write_bytes(payload)?; // no copy: the Bytes is queued as is
    drop(uploader);

    ev.run()?;
    let elapsed = upload_started.elapsed();
    let reply = reply.lock().unwrap().clone();
    let (bytes, sum) = *server_state.lock().unwrap();
    println!("[uploader] server replied {:?}", reply.trim_end());
    assert_eq!(bytes, STREAM_BYTES, "the server counted every byte");
    assert_eq!(sum, expected_sum, "and in order");
    assert_eq!(reply.trim_end(), format!("{STREAM_BYTES} {expected_sum:x}"));
    println!(
        "part 2 done: {} MiB in dont-drain mode in {:.0} ms ({:.0} MiB/s), {} notifications\n",
        STREAM_BYTES >> 20,
        elapsed.as_secs_f64() * 1000.0,
        (STREAM_BYTES >> 20) as f64 / elapsed.as_secs_f64(),
        notifications.load(Ordering::Relaxed),
    );
    // ---- Part 3: streams ---------------------------------------------------
    // The server hands each accepted connection's stream to a task on the
    // loop, which upper-cases lines until the client half-closes.
    let task_handle = handle.clone();
    let shouter = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().stream_connect_cb(move |stream| {
            task_handle.spawn(async move {
                let (input, mut output) = stream.into_split();
                let mut lines = input.lines();
                let mut count = 0;
                while let Some(Ok(line)) = lines.next().await {
                    let reply = format!("{}\n", line.to_uppercase());
                    AsyncWriteExt::write_all(&mut output, reply.as_bytes())
                        .await
                        .expect("reply");
                    count += 1;
                }
                // poll_close: flush, then FIN; the client's reader sees the end.
                output.close().await.expect("close");
                println!("[stream server] upper-cased {count} lines");
            });
        })),
    )?;
    let lines_to_send = 20_000;
    let port = shouter.local_addr().port();
    let connect = AsyncIoStream::connect_on(&handle, ("127.0.0.1", port), TcpOptions::new());
    let stream = ev.block_on(connect)??;
    let (input, output) = stream.into_split();
    // The write half on a plain thread, with blocking std Write.
    let writer = std::thread::spawn(move || {
        let mut blocking = output.blocking();
        for i in 0..lines_to_send {
            writeln!(blocking, "line {i} from a blocking thread").expect("write");
        }
        blocking.flush().expect("flush");
        blocking
            .get_ref()
            .socket()
            .shutdown_write()
            .expect("half-close");
    });
    // The read half as a future driven by the loop itself.
    let replies = ev.block_on(async move {
        let mut lines = input.lines();
        let mut n = 0;
        while let Some(line) = lines.next().await {
            let line = line.expect("reply line");
            assert_eq!(line, format!("LINE {n} FROM A BLOCKING THREAD"));
            n += 1;
        }
        n
    })?;
    writer.join().expect("writer thread");
    shouter.close();
    ev.run()?;
    assert_eq!(replies, lines_to_send);
    println!("part 3 done: {replies} lines written by a thread, upper-cased by a task, read by a future\n");

    println!(
        "demo finished in {:.2} s: every byte checked",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads everything buffered on `socket` into the running count and sum.
fn drain(socket: &Socket, state: &Mutex<(usize, u64)>) {
    let mut buf = vec![0u8; 256 * 1024];
    while let Ok(n @ 1..) = socket.read(&mut buf) {
        let mut state = state.lock().unwrap();
        state.0 += n;
        state.1 = buf[..n].iter().fold(state.1, |sum, &b| {
            sum.wrapping_mul(31).wrapping_add(b as u64)
        });
    }
}
