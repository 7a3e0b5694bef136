//! The callback example from the README, kept compiling and running.

use evstream::{tcp_connect, Event, EventLoop, ServerOptions, TcpOptions, TcpServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut ev = EventLoop::new()?;
    let handle = ev.handle();

    // An echo server in drain mode: read_cb gets the new bytes.
    let server = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .read_cb(|socket, data| socket.write_bytes(data).unwrap())
                .event_cb(|socket, event| {
                    if matches!(event, Event::Eof) {
                        socket.close();
                    }
                }),
        ),
    )?;

    // A client: `data` is sent once connected; writes made before that are
    // queued, never dropped.
    let server_handle = server.clone();
    tcp_connect(
        &handle,
        "127.0.0.1",
        server.local_addr().port(),
        TcpOptions::new()
            .data("ping")
            .read_cb(|socket, data| {
                println!("echo: {}", String::from_utf8_lossy(&data));
                socket.shutdown_write().unwrap();
            })
            .event_cb(move |socket, event| match event {
                Event::Eof => socket.close(),
                Event::Closed => server_handle.close(),
                _ => {}
            }),
    )?;

    ev.run()?; // returns once the client and the server are closed
    Ok(())
}
