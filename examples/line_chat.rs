//! A line-based chat server: every line a client sends goes to every other
//! client, prefixed with the sender's address. Built from the codec layer's
//! callback form (`on_frame` with a `LinesCodec`) and the connection
//! callbacks; all of it runs on one loop thread.
//!
//! ```text
//! cargo run --example line_chat                 # listens on 127.0.0.1:7979
//! cargo run --example line_chat -- 0.0.0.0:9000
//! cargo run --example line_chat -- --self-test  # three clients chat, then exit
//! ```
//!
//! Try it with a few `nc 127.0.0.1 7979` in other terminals. A line longer
//! than 1 KiB breaks the protocol: that client is told and disconnected.

use evstream::prelude::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use evstream::codec::LinesCodec;
use evstream::{
    tcp_connect, Error, Event, EventLoop, LoopHandle, ServerOptions, Socket, TcpOptions, TcpServer,
};

/// The longest line a client may send.
const MAX_LINE: usize = 1024;

/// Who is connected, by address.
type Room = Arc<Mutex<HashMap<SocketAddr, Socket>>>;

/// Binds the chat server on `handle`'s loop.
pub fn chat_server(handle: &LoopHandle, addr: &str) -> Result<TcpServer, Error> {
    let room: Room = Arc::default();
    let joined = room.clone();
    let left = room.clone();
    let options = TcpOptions::new()
        .connect_cb(move |socket| {
            if let Some(addr) = socket.peer_addr() {
                let _ = socket.write(format!("welcome, {addr}\n").as_bytes());
                joined.lock().unwrap().insert(addr, socket.clone());
            }
        })
        .on_frame(LinesCodec::lf(MAX_LINE), move |socket, line| match line {
            Ok(line) => {
                let Some(from) = socket.peer_addr() else {
                    return;
                };
                let message = format!("{from}: {}\n", String::from_utf8_lossy(&line));
                for (addr, peer) in room.lock().unwrap().iter() {
                    if *addr != from {
                        // A peer that cannot take more is its own problem:
                        // its output is capped by max_buffer_size.
                        let _ = peer.write(message.as_bytes());
                    }
                }
            }
            Err(err) => {
                // The codec refused the input (here: a line over MAX_LINE);
                // the connection is closed after this callback.
                let _ = socket.write(format!("error: {err}\n").as_bytes());
            }
        })
        .event_cb(move |socket, event| match event {
            Event::Eof => socket.close(),
            Event::Closed => {
                if let Some(addr) = socket.peer_addr() {
                    left.lock().unwrap().remove(&addr);
                }
            }
            _ => {}
        });
    TcpServer::bind(handle, addr, ServerOptions::new().connection(options))
}

#[allow(dead_code)] // `main` is unused when a test includes this file
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--self-test") {
        let transcript = self_test()?;
        for (client, lines) in transcript.iter().enumerate() {
            println!("client {client} heard {} lines", lines.len());
        }
        return Ok(());
    }
    let mut ev = EventLoop::new()?;
    let addr = arg.unwrap_or_else(|| "127.0.0.1:7979".to_string());
    let server = chat_server(&ev.handle(), &addr)?;
    println!("chat server on {}", server.local_addr());
    ev.run()?;
    Ok(())
}

/// Three clients join, each says two lines once everyone is in, then they
/// leave; returns what each client heard (the welcome, then others' lines).
pub fn self_test() -> Result<Vec<Vec<String>>, Box<dyn std::error::Error>> {
    const CLIENTS: usize = 3;
    let mut ev = EventLoop::new()?;
    let handle = ev.handle();
    let server = chat_server(&handle, "127.0.0.1:0")?;
    let port = server.local_addr().port();
    let heard: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(vec![Vec::new(); CLIENTS]));
    let welcomed = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(0usize));
    for client in 0..CLIENTS {
        let heard = heard.clone();
        let welcomed = welcomed.clone();
        let done = done.clone();
        let server = server.clone();
        tcp_connect(
            &handle,
            "127.0.0.1",
            port,
            TcpOptions::new()
                .on_frame(LinesCodec::lf(MAX_LINE), move |socket, line| {
                    let line = String::from_utf8_lossy(&line.expect("server lines")).to_string();
                    let welcome = line.starts_with("welcome");
                    let mut heard = heard.lock().unwrap();
                    heard[client].push(line);
                    if welcome {
                        // Speak once everybody is in the room.
                        let mut welcomed = welcomed.lock().unwrap();
                        welcomed.push(socket.clone());
                        if welcomed.len() == CLIENTS {
                            for (i, speaker) in welcomed.iter().enumerate() {
                                let _ = speaker
                                    .write(format!("hello from {i}\nbye from {i}\n").as_bytes());
                            }
                        }
                    }
                    // Welcome + two lines from each of the others: done.
                    if heard[client].len() == 1 + 2 * (CLIENTS - 1) {
                        socket.close();
                    }
                })
                .event_cb(move |_, event| {
                    if matches!(event, Event::Closed) {
                        let mut done = done.lock().unwrap();
                        *done += 1;
                        if *done == CLIENTS {
                            server.close();
                        }
                    }
                }),
        )?;
    }
    ev.run()?;
    let heard = heard.lock().unwrap().clone();
    Ok(heard)
}
