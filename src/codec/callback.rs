//! The callback form of a codec: `on_frame`, an extension of
//! [`TcpOptions`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::reader::{FrameReader, Next};
use super::Decoder;
use crate::error::Result;
use crate::socket::Socket;
use crate::sync::lock;
use crate::tcp::TcpOptions;

/// The callback form of a codec, as an extension of [`TcpOptions`] (bring
/// it into scope with `use evstream::codec::FrameOptions` or
/// `evstream::prelude::*`).
pub trait FrameOptions: Sized {
    /// Frames every connection with its own copy of `decoder` and calls
    /// `callback(socket, frame)` on the loop thread for each whole frame
    /// (dont-drain mode: partial frames wait, still counted as buffered
    /// input). A last frame at EOF comes through the decoder's
    /// `decode_eof`.
    ///
    /// A decoding error is passed to the callback once; then decoding
    /// stops and the connection is closed gracefully (the bytes go back to
    /// the input buffer and stay readable).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::codec::{FrameOptions, LinesCodec};
    /// use evstream::TcpOptions;
    ///
    /// let options = TcpOptions::new().on_frame(LinesCodec::lf(4096), |socket, line| match line {
    ///     Ok(line) => { let _ = socket.write(&line); }
    ///     Err(err) => log::warn!("bad input: {err}"),
    /// });
    /// # let _ = options;
    /// ```
    fn on_frame<D>(
        self,
        decoder: D,
        callback: impl Fn(&Socket, Result<D::Item>) + Send + Sync + 'static,
    ) -> Self
    where
        D: Decoder + Clone + Send + 'static,
        D::Item: Send;
}

/// One connection's decoding state, kept by the callback between calls.
struct Connection<D> {
    decoder: D,
    reader: FrameReader,
}

impl FrameOptions for TcpOptions {
    fn on_frame<D>(
        self,
        decoder: D,
        callback: impl Fn(&Socket, Result<D::Item>) + Send + Sync + 'static,
    ) -> Self
    where
        D: Decoder + Clone + Send + 'static,
        D::Item: Send,
    {
        // Each connection keeps its own decoder and held bytes, taken out of
        // the map while they run, so no lock is held meanwhile (the map's
        // lock only covers the lookup).
        let connections: Arc<Mutex<HashMap<usize, Connection<D>>>> = Arc::default();
        // Only cloned, once per connection: the lock makes the callback
        // `Sync` without asking it of the decoder.
        let template = Mutex::new(decoder);
        self.notify_cb(move |socket| {
            let key = socket.key();
            let taken = lock(&connections).remove(&key);
            let mut state = match taken {
                Some(state) => state,
                None => {
                    // Forget the state once the connection is released.
                    let map = Arc::downgrade(&connections);
                    socket.on_close(move || {
                        if let Some(map) = map.upgrade() {
                            lock(&map).remove(&key);
                        }
                    });
                    Connection {
                        decoder: lock(&template).clone(),
                        reader: FrameReader::new(socket),
                    }
                }
            };
            loop {
                match state.reader.next(&mut state.decoder, None) {
                    Next::Frame(frame) => callback(socket, Ok(frame)),
                    // A read timeout reaches `event_cb`; the frames go on.
                    Next::Pending | Next::End | Next::TimedOut(_) => break,
                    Next::Failed(err) => {
                        callback(socket, Err(err));
                        socket.close();
                        break;
                    }
                }
            }
            // Kept until the connection is released, finished or not: a
            // failed reader must not start again on the bytes it gave back.
            lock(&connections).insert(key, state);
        })
    }
}
