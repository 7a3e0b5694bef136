//! Decoding frames out of a connection's input, one at a time: the engine
//! of [`Framed`](super::Framed) and of the `on_frame` callback.

use std::task::Waker;

use super::Decoder;
use crate::error::{Error, Limit, TimeoutKind};
use crate::socket::{HeldInput, InputEnd, Socket};

/// What [`FrameReader::next`] found.
pub(crate) enum Next<T> {
    /// A whole frame.
    Frame(T),
    /// No whole frame yet; the waker given is stored.
    Pending,
    /// The input ended and every frame has been delivered.
    End,
    /// Malformed input, a limit, or the connection's failure: the reader is
    /// finished, and the bytes it held are back in the input buffer.
    Failed(Error),
    /// A read timeout expired while waiting for a frame; reading goes on.
    TimedOut(Error),
}

/// Decodes frames from bytes it holds out of the input buffer (so the
/// decoder, user code, runs with no lock held). A frame is decoded only
/// when asked for, so nothing is ever decoded ahead and lost: what the
/// reader holds is always raw input, given back on drop.
pub(crate) struct FrameReader {
    hold: HeldInput,
    finished: bool,
}

impl FrameReader {
    pub(crate) fn new(socket: &Socket) -> Self {
        FrameReader {
            hold: socket.hold_input(),
            finished: false,
        }
    }

    /// Bytes taken from the input but not yet a whole frame.
    pub(crate) fn held(&self) -> &crate::Buffer {
        self.hold.held()
    }

    /// Whether the reader has delivered its last frame or failed.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Puts every byte held back at the front of the input buffer.
    pub(crate) fn give_back(&mut self) {
        self.hold.give_back();
    }

    /// The next frame, if one can be had now.
    pub(crate) fn next<D: Decoder>(
        &mut self,
        decoder: &mut D,
        waker: Option<&Waker>,
    ) -> Next<D::Item> {
        if self.finished {
            return Next::End;
        }
        let mut end = None;
        loop {
            match decoder.decode(self.hold.buffer()) {
                Ok(Some(frame)) => {
                    self.hold.sync();
                    self.hold.frame_done();
                    return Next::Frame(frame);
                }
                Ok(None) => {}
                Err(err) => return self.fail(err),
            }
            if end.is_some() {
                break;
            }
            let before = self.hold.held().len();
            end = Some(self.hold.pull(waker));
            if self.hold.held().len() == before {
                // Nothing new: the decoder has seen it all.
                break;
            }
        }
        match end.unwrap_or(InputEnd::Open) {
            InputEnd::Open if self.hold.is_full() => self.fail(Error::LimitExceeded {
                what: Limit::InputBuffer,
                limit: self.hold.limit(),
            }),
            InputEnd::Open => {
                if !self.hold.held().is_empty() {
                    // Part of a frame is here: the read deadline runs.
                    self.hold.frame_started();
                }
                Next::Pending
            }
            InputEnd::Ended => self.at_end(decoder, None),
            InputEnd::Failed(err @ Error::TimedOut(TimeoutKind::ReadDeadline)) => {
                // A frame that never completes: the reader is done.
                self.fail(err)
            }
            InputEnd::Failed(err @ Error::TimedOut(_)) => Next::TimedOut(err),
            InputEnd::Failed(err) => self.at_end(decoder, Some(err)),
        }
    }

    /// The input is finished (with `error` if it failed): a last frame
    /// through `decode_eof`, then the end or the error.
    fn at_end<D: Decoder>(&mut self, decoder: &mut D, error: Option<Error>) -> Next<D::Item> {
        match decoder.decode_eof(self.hold.buffer()) {
            Ok(Some(frame)) => {
                self.hold.sync();
                Next::Frame(frame)
            }
            Ok(None) => {
                self.finished = true;
                self.hold.sync();
                match error {
                    Some(err) => Next::Failed(err),
                    None => Next::End,
                }
            }
            Err(err) => self.fail(err),
        }
    }

    fn fail<T>(&mut self, err: Error) -> Next<T> {
        self.finished = true;
        // Bad input stays readable where it came from, in order.
        self.hold.give_back();
        Next::Failed(err)
    }
}
