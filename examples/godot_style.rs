//! A game loop as a Godot user writes it, with evstream's `TcpPeerServer`
//! and `TcpPeer` in place of Godot's `TCPServer` and `StreamPeerTCP`.
//!
//! ```text
//! cargo run --example godot_style
//! ```
//!
//! Everything happens in one "frame" loop on the main thread, which never
//! blocks and uses no callbacks: each frame the server takes waiting
//! connections (`is_connection_available` / `take_connection`), every peer
//! checks its `status()`, and messages are read only once
//! `available_bytes()` says they are there — `get_data` for the fixed-size
//! header, `get_partial_data` for the rest. The connections themselves live
//! on evstream's default loop, on its own thread, so unlike Godot nothing
//! needs a `poll()` to make progress.
//!
//! The protocol: a message is a `u32` id and an `f32` position in network
//! order (Godot's `big_endian = true`), then a Godot `put_utf8_string`
//! (a little-endian `u32` byte length and the UTF-8 bytes). The client says
//! hello, the server answers, the client disconnects, and the server sees
//! the end of the stream. A third peer connects to a closed port to show the
//! error path: `PeerStatus::Error` and `SocketError::ConnectFailed`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use evstream::peer::{ByteOrder, PeerStatus, SocketError, StreamPeer, TcpPeer, TcpPeerServer};
use evstream::Error;

/// The byte order of the protocol's numbers (Godot's `big_endian = true`).
const ORDER: ByteOrder = ByteOrder::Big;

/// The id, the position and the string length.
const HEADER_LEN: usize = 4 + 4 + 4;

/// The longest name a peer may send, in bytes.
const MAX_NAME: usize = 256;

/// A safety bound: the demo ends on its own long before this.
const MAX_FRAMES: usize = 10_000;

/// The pause between frames (a real game would wait for vsync).
const FRAME: Duration = Duration::from_millis(1);

/// One protocol message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who.
    pub id: u32,
    /// Where.
    pub x: f32,
    /// What they are called.
    pub name: String,
}

/// What the demo saw, for the test to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The hello the server read.
    pub server_got: Message,
    /// The answer the client read.
    pub client_got: Message,
    /// The client's statuses, each change once, in order.
    pub client_statuses: Vec<PeerStatus>,
    /// The server-side peer's statuses, each change once, in order.
    pub server_peer_statuses: Vec<PeerStatus>,
    /// How the server-side peer's read reported the client's disconnect.
    pub server_saw_end: SocketError,
    /// The statuses of the peer that connected to a closed port.
    pub refused_statuses: Vec<PeerStatus>,
    /// Its error code.
    pub refused_code: SocketError,
    /// How many frames it all took.
    pub frames: usize,
}

/// Writes a message (`put_data` never waits here: it is a few bytes).
fn put_message(peer: &mut impl StreamPeer, message: &Message) -> Result<(), Error> {
    peer.put_u32_with(message.id, ORDER)?;
    peer.put_f32_with(message.x, ORDER)?;
    peer.put_utf8_string(&message.name)
}

/// Reads a message a frame at a time, without ever waiting.
#[derive(Debug, Default)]
struct MessageReader {
    /// The header, once read: the id, the position, the name's length.
    header: Option<(u32, f32, usize)>,
    /// The name's bytes so far.
    name: Vec<u8>,
}

impl MessageReader {
    /// Takes what this frame offers; `Some` once a whole message is in.
    fn poll(&mut self, peer: &mut impl StreamPeer) -> Result<Option<Message>, Error> {
        if self.header.is_none() {
            if peer.available_bytes() < HEADER_LEN {
                return Ok(None); // not all here yet: try next frame
            }
            // The whole header is buffered, so these getters do not wait.
            let id = peer.get_u32_with(ORDER)?;
            let x = peer.get_f32_with(ORDER)?;
            let len = peer.get_u32_with(ByteOrder::Little)? as usize; // Godot's string length
            if len > MAX_NAME {
                return Err(Error::InvalidData(format!("name of {len} bytes")));
            }
            self.header = Some((id, x, len));
        }
        let (id, x, len) = self.header.expect("header read above");
        // The name may come over several frames: take what is there.
        let mut chunk = [0u8; 64];
        while self.name.len() < len {
            let want = (len - self.name.len()).min(chunk.len());
            let got = peer.get_partial_data(&mut chunk[..want])?;
            if got == 0 {
                return Ok(None); // nothing more this frame
            }
            self.name.extend_from_slice(&chunk[..got]);
        }
        let name = String::from_utf8(std::mem::take(&mut self.name))
            .map_err(|err| Error::InvalidData(format!("name is not UTF-8: {err}")))?;
        self.header = None;
        Ok(Some(Message { id, x, name }))
    }
}

/// Pushes `status` unless it is the last one recorded.
fn record(statuses: &mut Vec<PeerStatus>, status: PeerStatus, who: &str, frame: usize) {
    if statuses.last() != Some(&status) {
        println!("frame {frame:>4}: {who} is {status:?}");
        statuses.push(status);
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Where the client is in its conversation.
#[derive(Debug, PartialEq)]
enum Client {
    Connecting,
    AwaitingAnswer,
    Done,
}

/// Where the server is with its one player.
#[derive(Debug, PartialEq)]
enum Server {
    AwaitingHello,
    AwaitingEnd,
    Done,
}

/// Runs the game loop and says what happened.
pub fn self_test() -> Result<Summary, Box<dyn std::error::Error>> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // TCPServer.new(); server.listen(0, "127.0.0.1")
    let mut server = TcpPeerServer::new();
    server.listen(0, Some(localhost))?;
    println!("server listening on port {}", server.local_port());

    // StreamPeerTCP.new(); client.connect_to_host("127.0.0.1", port)
    let mut client = TcpPeer::new();
    let mut client_statuses = Vec::new();
    record(&mut client_statuses, client.status(), "client", 0);
    client.connect_to_host("127.0.0.1", server.local_port())?;

    // The error path: nobody listens there.
    let mut refused = TcpPeer::new();
    let mut refused_statuses = Vec::new();
    record(&mut refused_statuses, refused.status(), "refused peer", 0);
    refused.connect_to_host("127.0.0.1", closed_port()?)?;
    let mut refused_code = None;

    let hello = Message {
        id: 42,
        x: 12.75,
        name: "Ada ✓".to_string(),
    };
    let mut client_state = Client::Connecting;
    let mut client_reader = MessageReader::default();
    let mut client_got = None;

    let mut server_peer: Option<TcpPeer> = None;
    let mut server_state = Server::AwaitingHello;
    let mut server_reader = MessageReader::default();
    let mut server_peer_statuses = Vec::new();
    let mut server_got = None;
    let mut server_saw_end = None;

    let mut frames = 0;
    while client_state != Client::Done || server_state != Server::Done || refused_code.is_none() {
        frames += 1;
        if frames > MAX_FRAMES {
            return Err(format!(
                "gave up after {MAX_FRAMES} frames: client {client_state:?}, \
                 server {server_state:?}, refused {:?}",
                refused.status()
            )
            .into());
        }

        // --- the server's _process() ---
        if server_peer.is_none() && server.is_connection_available() {
            let peer = server.take_connection().expect("a connection is available");
            println!(
                "frame {frames:>4}: server took a connection from {}:{}",
                peer.connected_host()
                    .map_or("?".to_string(), |ip| ip.to_string()),
                peer.connected_port()
            );
            server_peer = Some(peer);
        }
        if let Some(peer) = server_peer.as_mut() {
            record(
                &mut server_peer_statuses,
                peer.status(),
                "server peer",
                frames,
            );
            match server_state {
                Server::AwaitingHello => {
                    if let Some(message) = server_reader.poll(peer)? {
                        println!("frame {frames:>4}: server got {message:?}");
                        let answer = Message {
                            id: message.id * 2,
                            x: message.x + 0.25,
                            name: format!("welcome, {}", message.name),
                        };
                        put_message(peer, &answer)?;
                        server_got = Some(message);
                        server_state = Server::AwaitingEnd;
                    }
                }
                Server::AwaitingEnd => {
                    // The client sends nothing more: the next read is the end.
                    let mut probe = [0u8; 1];
                    match peer.get_partial_data(&mut probe) {
                        Ok(0) => {}
                        Ok(_) => return Err("unexpected bytes after the hello".into()),
                        Err(err) => {
                            let code = SocketError::from(&err);
                            println!("frame {frames:>4}: server read: {err} ({code})");
                            server_saw_end = Some(code);
                            peer.disconnect_from_host();
                            record(
                                &mut server_peer_statuses,
                                peer.status(),
                                "server peer",
                                frames,
                            );
                            server.stop();
                            server_state = Server::Done;
                        }
                    }
                }
                Server::Done => {}
            }
        }

        // --- the client's _process() ---
        if client_state != Client::Done {
            record(&mut client_statuses, client.status(), "client", frames);
        }
        match client_state {
            Client::Connecting => match client.status() {
                PeerStatus::Connected => {
                    println!(
                        "frame {frames:>4}: client connected from local port {}",
                        client.local_port()
                    );
                    put_message(&mut client, &hello)?;
                    client_state = Client::AwaitingAnswer;
                }
                PeerStatus::Error | PeerStatus::None => {
                    return Err(format!("client failed: {:?}", client.last_error()).into())
                }
                PeerStatus::Connecting => {}
            },
            Client::AwaitingAnswer => {
                if let Some(message) = client_reader.poll(&mut client)? {
                    println!("frame {frames:>4}: client got {message:?}");
                    client_got = Some(message);
                    client.disconnect_from_host();
                    record(&mut client_statuses, client.status(), "client", frames);
                    client_state = Client::Done;
                }
            }
            Client::Done => {}
        }

        // --- the peer that cannot connect ---
        if refused_code.is_none() {
            record(
                &mut refused_statuses,
                refused.status(),
                "refused peer",
                frames,
            );
            if refused.status() == PeerStatus::Error {
                // Godot's poll() returns the error; so does evstream's.
                let err = refused.poll().expect_err("the status is Error");
                let code = SocketError::from(&err);
                println!("frame {frames:>4}: refused peer: {err} -> {code}");
                refused_code = Some(code);
            }
        }

        std::thread::sleep(FRAME);
    }

    Ok(Summary {
        server_got: server_got.expect("set before Done"),
        client_got: client_got.expect("set before Done"),
        client_statuses,
        server_peer_statuses,
        server_saw_end: server_saw_end.expect("set before Done"),
        refused_statuses,
        refused_code: refused_code.expect("the loop ended"),
        frames,
    })
}

#[allow(dead_code)] // `main` is unused when a test includes this file
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let summary = self_test()?;
    println!("done in {} frames", summary.frames);
    println!("client statuses:      {:?}", summary.client_statuses);
    println!("server peer statuses: {:?}", summary.server_peer_statuses);
    println!("refused peer:         {:?}", summary.refused_statuses);
    Ok(())
}
