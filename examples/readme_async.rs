//! The async example from the README (bind, accept loop, a task per
//! connection), kept compiling and running; `tests/examples.rs` runs it.

use evstream::{AsyncIoStream, TcpServer};

/// The README's program; returns what the client got back.
pub fn echo_once() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    futures_lite::future::block_on(async {
        let server = TcpServer::listen("127.0.0.1:0").await?;
        let addr = server.local_addr();

        // The accept loop: one task per connection, echoing until EOF.
        evstream::spawn(async move {
            while let Ok((mut stream, _peer)) = server.accept().await {
                evstream::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = stream.close().await; // flush + FIN
                });
            }
        });

        let mut client = AsyncIoStream::connect(addr).await?;
        client.write_all(b"ping").await?;
        client.close().await?; // flush + FIN: the server's read ends
        let mut echo = Vec::new();
        client.read_to_end(&mut echo).await?;
        Ok(echo)
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let echo = echo_once()?;
    println!("echo: {}", String::from_utf8_lossy(&echo));
    Ok(())
}
