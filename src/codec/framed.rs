//! `Framed`: a `Stream` of decoded frames and a `Sink` of items over a
//! stream, and `TcpOptions::on_frame`, the callback form.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;
use futures_sink::Sink;

use super::{decode_batch, give_back, Decoder, Encoder};
use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::socket::Socket;
use crate::stream::{AsyncIoStream, LimitPolicy};
use crate::tcp::TcpOptions;

/// A codec over an [`AsyncIoStream`]: a `Stream` of decoded frames and a
/// `Sink` of items to encode.
///
/// Frames are decoded from the connection's input buffer itself, in
/// batches, with no lock held while the decoder runs. The `Sink` encodes
/// items into a batch that goes to the connection with one vectored write
/// when it reaches 64 KiB or on flush, and accepts items only while the
/// connection's output is below its write high watermark.
///
/// While the decoder holds an incomplete frame, the connection goes on
/// reading, so the input may hold up to one read high watermark more than
/// the frame itself: a frame longer than the watermark can still complete,
/// and memory stays bounded by the codec's maximum frame plus the watermark.
///
/// After a decoding error the stream yields that error and ends; the bytes
/// stay in the input buffer and the connection is closed or paused as its
/// [`LimitPolicy`] says (close by default).
///
/// # Examples
///
/// ```
/// use evstream::codec::{Framed, LinesCodec};
/// use evstream::AsyncIoStream;
/// use futures::{SinkExt, StreamExt};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?.to_string();
/// # let peer = std::thread::spawn(move || {
/// #     use std::io::{Read, Write};
/// #     let (mut s, _) = listener.accept().unwrap();
/// #     let mut b = [0u8; 5]; s.read_exact(&mut b).unwrap();
/// #     s.write_all(b"pong\n").unwrap();
/// # });
/// futures_lite::future::block_on(async {
///     let stream = AsyncIoStream::connect(&addr).await?;
///     let mut framed = Framed::new(stream, LinesCodec::lf(1024));
///     framed.send("ping").await?;
///     let reply = framed.next().await.unwrap()?;
///     assert_eq!(&reply[..], b"pong");
///     Ok::<(), evstream::Error>(())
/// })?;
/// # peer.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Framed<C: Decoder> {
    stream: AsyncIoStream,
    codec: C,
    frames: VecDeque<C::Item>,
    /// Set once the stream has ended (or failed): it yields nothing more.
    done: bool,
    pending_error: Option<Error>,
    policy: LimitPolicy,
    /// Encoded items not yet queued on the connection: written as one
    /// vectored write when the batch is large or on flush.
    write_batch: Buffer,
    /// Received bytes taken from the input but not yet a whole frame.
    read_pending: Buffer,
}

/// Encoded items are queued on the connection once the batch reaches this.
const WRITE_BATCH: usize = 64 * 1024;

// Framed never pins its fields (frames are moved out, the stream is Unpin),
// so it is Unpin whatever the items are.
impl<C: Decoder> Unpin for Framed<C> {}

impl<C: Decoder> Drop for Framed<C> {
    fn drop(&mut self) {
        // Bytes of an incomplete frame were taken from the connection: give
        // them back for whoever reads it next.
        give_back(self.stream.socket().conn(), &mut self.read_pending);
    }
}

impl<C: Decoder> fmt::Debug for Framed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framed")
            .field("stream", &self.stream)
            .field("decoded", &self.frames.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<C: Decoder> Framed<C> {
    /// Frames `stream` with `codec`.
    pub fn new(stream: AsyncIoStream, codec: C) -> Self {
        Framed {
            stream,
            codec,
            frames: VecDeque::new(),
            done: false,
            pending_error: None,
            policy: LimitPolicy::default(),
            write_batch: Buffer::new(),
            read_pending: Buffer::new(),
        }
    }

    /// What a decoding error does to the connection (close by default).
    pub fn set_limit_policy(&mut self, policy: LimitPolicy) {
        self.policy = policy;
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &AsyncIoStream {
        &self.stream
    }

    /// Received bytes the codec holds: taken from the connection's input
    /// buffer but not yet a whole frame (tokio's `Framed::read_buffer`).
    pub fn read_buffer(&self) -> &Buffer {
        &self.read_pending
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The codec, mutably.
    pub fn codec_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// The stream back. Bytes of an incomplete frame go back to the front
    /// of the input buffer; frames decoded but not yet taken are lost, so
    /// call this between frames.
    pub fn into_inner(mut self) -> AsyncIoStream {
        give_back(self.stream.socket().conn(), &mut self.read_pending);
        let stream = self.stream.socket().clone();
        let lent = self.stream.take_lent();
        let mut stream = AsyncIoStream::new(stream);
        stream.put_lent(lent);
        stream
    }

    fn fail(&mut self, err: Error) -> Error {
        self.done = true;
        match self.policy {
            LimitPolicy::Close => self.stream.socket().close(),
            LimitPolicy::Pause => self.stream.socket().pause_reading(),
        }
        err
    }
}

impl<C: Decoder> Stream for Framed<C> {
    type Item = Result<C::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(err) = this.pending_error.take() {
            return Poll::Ready(Some(Err(err)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let chunk = this.stream.take_lent();
        if !chunk.is_empty() {
            // A chunk lent before framing began comes first.
            let mut rest = std::mem::take(&mut this.read_pending);
            this.read_pending.push(chunk);
            this.read_pending.append(&mut rest);
        }
        let conn = this.stream.socket().conn().clone();
        let batch = decode_batch(&conn, &mut this.codec, &mut this.read_pending, |input| {
            input.register(cx.waker())
        });
        this.frames.extend(batch.frames);
        if let Some(err) = batch.error {
            let err = this.fail(err);
            if this.frames.is_empty() {
                return Poll::Ready(Some(Err(err)));
            }
            this.pending_error = Some(err);
        } else if batch.finished {
            this.done = true;
        }
        match this.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None if this.done => Poll::Ready(None),
            // The waker was registered before decoding: bytes that arrive
            // now wake this task again.
            None => Poll::Pending,
        }
    }
}

impl<C: Decoder> Framed<C> {
    /// Queues the encoded batch on the connection.
    fn push_batch(&mut self) -> Result<()> {
        if self.write_batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.write_batch);
        self.stream.socket().conn().write_chunks(batch)
    }
}

impl<C: Decoder + Encoder<I>, I> Sink<I> for Framed<C> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.write_batch.len() >= WRITE_BATCH {
            this.push_batch()?;
        }
        this.stream.socket().conn().poll_write_ready(cx.waker())
    }

    fn start_send(self: Pin<&mut Self>, item: I) -> Result<()> {
        let this = self.get_mut();
        let mut encoded = Buffer::new();
        this.codec.encode(item, &mut encoded)?;
        this.write_batch.append(&mut encoded);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.push_batch()?;
        this.stream.socket().conn().poll_flushed(Some(cx.waker()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.push_batch()?;
        futures_lite::io::AsyncWrite::poll_close(Pin::new(&mut this.stream), cx)
            .map_err(Error::from)
    }
}

/// The callback form of a codec.
impl TcpOptions {
    /// Frames every connection with its own copy of `decoder` and calls
    /// `callback(socket, frame)` on the loop thread for each whole frame
    /// (dont-drain mode: partial frames wait in the input buffer). A last
    /// frame at EOF comes through the decoder's `decode_eof`.
    ///
    /// A decoding error is passed to the callback once; then decoding stops
    /// and the connection is closed gracefully (the bytes stay readable).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::codec::LinesCodec;
    /// use evstream::TcpOptions;
    ///
    /// let options = TcpOptions::new().on_frame(LinesCodec::lf(4096), |socket, line| match line {
    ///     Ok(line) => { let _ = socket.write(&line); }
    ///     Err(err) => eprintln!("bad input: {err}"),
    /// });
    /// # let _ = options;
    /// ```
    pub fn on_frame<D>(
        self,
        decoder: D,
        mut callback: impl FnMut(&Socket, Result<D::Item>) + Send + 'static,
    ) -> Self
    where
        D: Decoder + Clone + Send + 'static,
        D::Item: Send,
    {
        self.notify_cb(move |socket| {
            let conn = socket.conn().clone();
            // Each connection keeps its own decoder state; it is taken out
            // of its slot while it runs, so no lock is held meanwhile.
            let taken = crate::event_loop::lock(&conn.extension).take();
            let mut state = match taken.and_then(|state| state.downcast::<FrameState<D>>().ok()) {
                Some(state) => *state,
                None => FrameState {
                    decoder: decoder.clone(),
                    failed: false,
                    pending: Buffer::new(),
                },
            };
            if !state.failed {
                loop {
                    let batch = decode_batch(&conn, &mut state.decoder, &mut state.pending, |_| {});
                    let more = batch.frames.len() == super::BATCH && batch.error.is_none();
                    for frame in batch.frames {
                        callback(socket, Ok(frame));
                    }
                    if let Some(err) = batch.error {
                        state.failed = true;
                        callback(socket, Err(err));
                        socket.close();
                        break;
                    }
                    if !more {
                        break;
                    }
                }
            }
            *crate::event_loop::lock(&conn.extension) = Some(Box::new(state));
        })
    }
}

struct FrameState<D> {
    decoder: D,
    failed: bool,
    /// Bytes of an incomplete frame, out of the input buffer so reading
    /// goes on past the watermark.
    pending: Buffer,
}
