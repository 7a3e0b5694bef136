//! `Framed`: a `Stream` of decoded frames and a `Sink` of items over a
//! stream.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;
use futures_sink::Sink;

use super::reader::{FrameReader, Next};
use super::{Decoder, Encoder};
use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::stream::{AsyncIoStream, LimitPolicy};

/// A codec over an [`AsyncIoStream`]: a `Stream` of decoded frames and a
/// `Sink` of items to encode.
///
/// Frames are decoded one at a time, when asked for, from bytes the codec
/// holds out of the connection's input buffer (still counted as buffered
/// input), with no lock held while the decoder runs. The `Sink` encodes
/// items into a batch that goes to the connection with one vectored write
/// when it reaches 64 KiB or on flush, and accepts items only while the
/// connection's output is below its write high watermark.
///
/// While the decoder holds an incomplete frame, the connection goes on
/// reading, so the input may hold up to one read high watermark more than
/// the frame itself: a frame longer than the watermark can still complete,
/// and memory stays bounded by the codec's maximum frame plus the watermark
/// (and always by `max_buffer_size`).
///
/// After a decoding error the stream yields that error and ends; the bytes
/// go back to the input buffer and the connection is closed or paused as
/// its [`LimitPolicy`] says (close by default). A read timeout is yielded as
/// an error and the stream goes on.
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
    reader: FrameReader,
    policy: LimitPolicy,
    /// Encoded items not yet queued on the connection: written as one
    /// vectored write when the batch is large or on flush.
    write_batch: Buffer,
}

/// Encoded items are queued on the connection once the batch reaches this.
const WRITE_BATCH: usize = 64 * 1024;

// Framed never pins its fields (frames are moved out, the stream is Unpin),
// so it is Unpin whatever the items are.
impl<C: Decoder> Unpin for Framed<C> {}

impl<C: Decoder> fmt::Debug for Framed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framed")
            .field("stream", &self.stream)
            .field("held", &self.reader.held().len())
            .field("done", &self.reader.is_finished())
            .finish()
    }
}

impl<C: Decoder> Framed<C> {
    /// Frames `stream` with `codec`.
    pub fn new(mut stream: AsyncIoStream, codec: C) -> Self {
        // A chunk lent before framing began comes first.
        stream.return_lent();
        Framed {
            reader: FrameReader::new(stream.socket()),
            stream,
            codec,
            policy: LimitPolicy::default(),
            write_batch: Buffer::new(),
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
        self.reader.held()
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The codec, mutably.
    pub fn codec_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// The stream back, with every received byte not yet delivered as a
    /// frame back at the front of its input buffer (frames are decoded only
    /// when asked for, so none is lost). Encoded items not yet queued are
    /// queued first.
    ///
    /// # Errors
    ///
    /// None for reading; a failure to queue the pending encoded items is
    /// dropped with them, as the connection's error also reports it.
    pub fn into_inner(mut self) -> AsyncIoStream {
        let _ = self.push_batch();
        self.reader.give_back();
        let mut stream = AsyncIoStream::new(self.stream.socket().clone());
        stream.set_limit_policy(self.stream.policy());
        stream
    }

    fn fail(&mut self, err: Error) -> Error {
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
        match this.reader.next(&mut this.codec, Some(cx.waker())) {
            Next::Frame(frame) => Poll::Ready(Some(Ok(frame))),
            Next::Pending => Poll::Pending,
            Next::End => Poll::Ready(None),
            Next::TimedOut(err) => Poll::Ready(Some(Err(err))),
            Next::Failed(err) => {
                let err = this.fail(err);
                Poll::Ready(Some(Err(err)))
            }
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
        self.stream.socket().write_buffer(batch).map(drop)
    }
}

impl<C: Decoder + Encoder<I>, I> Sink<I> for Framed<C> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.write_batch.len() >= WRITE_BATCH {
            this.push_batch()?;
        }
        this.stream.socket().poll_write_ready(cx.waker())
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
        this.stream.socket().poll_flushed(Some(cx.waker()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.push_batch()?;
        futures_lite::io::AsyncWrite::poll_close(Pin::new(&mut this.stream), cx)
            .map_err(Error::from)
    }
}
