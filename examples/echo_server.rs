//! An echo server in stream mode: the read callback is only a notification
//! that bytes are ready; it echoes whatever it can through the connection's
//! stream, and whatever the output cannot take now stays buffered for the
//! next notification (the callback runs again while it makes progress).
//!
//! ```text
//! cargo run --example echo_server            # listens on 127.0.0.1:7878
//! cargo run --example echo_server -- 0.0.0.0:9000
//! cargo run --example echo_server -- --self-test
//! ```
//!
//! `--self-test` runs a client against the server on one loop, checks the
//! echo of 8 MiB, and exits.

use evstream::prelude::*;
use std::io::{ErrorKind, Read, Write};
use std::sync::{Arc, Mutex};

use evstream::{
    tcp_connect, AsyncIoStream, Event, EventLoop, ServerOptions, TcpOptions, TcpServer,
};

/// Echoes what is ready: read a block, write what the output takes, and
/// put the rest back by not reading further than what could be written.
fn echo_ready(stream: &mut AsyncIoStream) {
    let mut block = [0u8; 64 * 1024];
    loop {
        // Only take as much as the output will accept right now, so nothing
        // read is ever dropped: peek, write, then consume what was written.
        let ready = stream.peek_buffered(&mut block);
        if ready == 0 {
            return;
        }
        match Write::write(stream, &block[..ready]) {
            Ok(written) => {
                let mut discard = vec![0u8; written];
                Read::read_exact(stream, &mut discard).expect("bytes just peeked");
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                stream.socket().abort();
                return;
            }
        }
    }
}

fn server_options() -> ServerOptions {
    ServerOptions::new().connection(
        TcpOptions::new()
            .stream_read_cb(echo_ready)
            // When the peer has sent everything and it is echoed, close.
            .write_cb(|socket| {
                if socket.is_eof() && socket.input_buffer_len() == 0 {
                    socket.close();
                }
            })
            .event_cb(|socket, event| match event {
                Event::Eof if socket.input_buffer_len() == 0 && socket.output_buffer_len() == 0 => {
                    socket.close()
                }
                Event::Error(err) => eprintln!("echo_server: {err}"),
                _ => {}
            }),
    )
}

#[allow(dead_code)] // `main` is unused when a test includes this file
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--self-test") {
        let echoed = self_test(8 * 1024 * 1024)?;
        println!("self-test: {echoed} bytes echoed intact");
        return Ok(());
    }
    let mut ev = EventLoop::new()?;
    let addr = arg.unwrap_or_else(|| "127.0.0.1:7878".to_string());
    let server = TcpServer::bind(&ev.handle(), addr.as_str(), server_options())?;
    println!("echo server listening on {}", server.local_addr());
    ev.run()?;
    Ok(())
}

/// Runs the server and a client sending `len` bytes on one loop; returns
/// how many bytes came back, after checking they are the ones sent.
pub fn self_test(len: usize) -> Result<usize, Box<dyn std::error::Error>> {
    let mut ev = EventLoop::new()?;
    let handle = ev.handle();
    let server = TcpServer::bind(&handle, "127.0.0.1:0", server_options())?;
    let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    let received = Arc::new(Mutex::new(Vec::with_capacity(payload.len())));
    let sink = received.clone();
    let expected = payload.len();
    let stop = server.clone();
    let client = tcp_connect(
        &handle,
        "127.0.0.1",
        server.local_addr().port(),
        TcpOptions::new()
            .read_cb(move |socket, data| {
                let mut all = sink.lock().unwrap();
                all.extend_from_slice(&data);
                if all.len() == expected {
                    socket.close();
                }
            })
            .write_cb(|socket| {
                let _ = socket.shutdown_write();
            })
            .event_cb(move |_, event| {
                if matches!(event, Event::Closed) {
                    stop.close();
                }
            }),
    )?;
    client.write(&payload)?;
    ev.run()?;
    let received = received.lock().unwrap();
    if *received != payload {
        return Err(format!(
            "echo differs: {} of {} bytes back",
            received.len(),
            payload.len()
        )
        .into());
    }
    Ok(received.len())
}
