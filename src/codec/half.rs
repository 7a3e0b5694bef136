//! `FramedRead` and `FramedWrite`: a codec over one half of a connection
//! (tokio-util's types of the same names).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;
use futures_sink::Sink;

use super::reader::{FrameReader, Next};
use super::{Decoder, Encoder};
use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::stream::mode::{ReadOnly, Readable, Writable, WriteOnly};
use crate::stream::{EvStream, LimitPolicy};

/// Encoded items are queued on the connection once the batch reaches this.
const WRITE_BATCH: usize = 64 * 1024;

/// A decoder over a readable stream — usually the read half,
/// [`AsyncInputStream`](crate::AsyncInputStream): a `Stream` of frames,
/// tokio-util's `FramedRead`.
///
/// As with [`Framed`](super::Framed), frames are decoded one at a time,
/// only when asked for, from bytes held out of the connection's input
/// buffer with no lock held (so `into_inner` loses nothing), and a frame
/// that lies in one received chunk comes out without a copy.
///
/// # Examples
///
/// ```
/// use evstream::codec::{FramedRead, FramedWrite, LinesCodec};
/// use futures::{SinkExt, StreamExt};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # let peer = std::thread::spawn(move || {
/// #     let (s, _) = listener.accept().unwrap();
/// #     let mut r = std::io::BufReader::new(s.try_clone().unwrap());
/// #     let mut line = String::new();
/// #     std::io::BufRead::read_line(&mut r, &mut line).unwrap();
/// #     std::io::Write::write_all(&mut &s, line.to_uppercase().as_bytes()).unwrap();
/// # });
/// futures_lite::future::block_on(async {
///     let stream = evstream::AsyncIoStream::connect(addr).await?;
///     let (input, output) = stream.into_split();
///     let mut lines_in = FramedRead::new(input, LinesCodec::lf(1024));
///     let mut lines_out = FramedWrite::new(output, LinesCodec::lf(1024));
///     lines_out.send("shout this").await?;
///     assert_eq!(&lines_in.next().await.unwrap()?[..], b"SHOUT THIS");
///     Ok::<(), evstream::Error>(())
/// })?;
/// # peer.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FramedRead<C: Decoder, M: Readable = ReadOnly> {
    stream: EvStream<M>,
    codec: C,
    reader: FrameReader,
    policy: LimitPolicy,
}

// Never pins its fields (frames are moved out, the stream is Unpin).
impl<C: Decoder, M: Readable> Unpin for FramedRead<C, M> {}

impl<C: Decoder, M: Readable> fmt::Debug for FramedRead<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedRead")
            .field("stream", &self.stream)
            .field("held", &self.reader.held().len())
            .field("done", &self.reader.is_finished())
            .finish()
    }
}

impl<C: Decoder, M: Readable> FramedRead<C, M> {
    /// Frames the readable `stream` with `codec`.
    pub fn new(mut stream: EvStream<M>, codec: C) -> Self {
        // A chunk lent before framing began comes first.
        stream.return_lent();
        FramedRead {
            reader: FrameReader::new(stream.socket()),
            stream,
            codec,
            policy: LimitPolicy::default(),
        }
    }

    /// What a decoding error does to the connection (close by default).
    pub fn set_limit_policy(&mut self, policy: LimitPolicy) {
        self.policy = policy;
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &EvStream<M> {
        &self.stream
    }

    /// Received bytes the codec holds, not yet a whole frame.
    pub fn read_buffer(&self) -> &Buffer {
        self.reader.held()
    }

    /// The codec.
    pub fn decoder(&self) -> &C {
        &self.codec
    }

    /// The codec, mutably.
    pub fn decoder_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// The stream back, with every received byte not yet delivered as a
    /// frame back at the front of its input buffer.
    pub fn into_inner(mut self) -> EvStream<M> {
        self.reader.give_back();
        self.stream
    }
}

impl<C: Decoder, M: Readable> Stream for FramedRead<C, M> {
    type Item = Result<C::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.reader.next(&mut this.codec, Some(cx.waker())) {
            Next::Frame(frame) => Poll::Ready(Some(Ok(frame))),
            Next::Pending => {
                this.stream.socket().loop_handle().note_wait();
                Poll::Pending
            }
            Next::End => Poll::Ready(None),
            Next::TimedOut(err) => Poll::Ready(Some(Err(err))),
            Next::Failed(err) => {
                match this.policy {
                    LimitPolicy::Close => this.stream.socket().close(),
                    LimitPolicy::Pause => this.stream.socket().pause_reading(),
                }
                Poll::Ready(Some(Err(err)))
            }
        }
    }
}

/// An encoder over a writable stream — usually the write half,
/// [`AsyncOutputStream`](crate::AsyncOutputStream): a `Sink` of items,
/// tokio-util's `FramedWrite`.
///
/// As with [`Framed`](super::Framed), items are encoded into a batch that
/// goes to the connection in one vectored write when it reaches 64 KiB or
/// on flush, and are accepted only while the output is below its write
/// high watermark. Closing the sink flushes and shuts down the write side;
/// so does dropping a `FramedWrite` over the write half (the half's own
/// drop). As with tokio-util, items given to `start_send` but never flushed
/// (`SinkExt::send` and `feed` + `flush` do flush) are dropped with it.
pub struct FramedWrite<C, M: Writable = WriteOnly> {
    stream: EvStream<M>,
    codec: C,
    write_batch: Buffer,
}

impl<C, M: Writable> Unpin for FramedWrite<C, M> {}

impl<C, M: Writable> fmt::Debug for FramedWrite<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedWrite")
            .field("stream", &self.stream)
            .field("batched", &self.write_batch.len())
            .finish()
    }
}

impl<C, M: Writable> FramedWrite<C, M> {
    /// Frames the writable `stream` with `codec`.
    pub fn new(stream: EvStream<M>, codec: C) -> Self {
        FramedWrite {
            stream,
            codec,
            write_batch: Buffer::new(),
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &EvStream<M> {
        &self.stream
    }

    /// The codec.
    pub fn encoder(&self) -> &C {
        &self.codec
    }

    /// The codec, mutably.
    pub fn encoder_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// The stream back; encoded items not yet queued are queued first (a
    /// failure to queue them is dropped with them, as the connection's
    /// error also reports it).
    pub fn into_inner(mut self) -> EvStream<M> {
        let _ = self.push_batch();
        self.stream
    }

    fn push_batch(&mut self) -> Result<()> {
        if self.write_batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.write_batch);
        self.stream.socket().write_buffer(batch).map(drop)
    }
}

impl<C: Encoder<I>, I, M: Writable> Sink<I> for FramedWrite<C, M> {
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
