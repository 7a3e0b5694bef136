//! The input side of a connection and the ways to read it.
//!
//! Every reader goes through one rule, [`Input::poll_more`]: buffered bytes
//! first; then the stored error; then the end (EOF or close); then a read
//! timeout nobody has seen; else "not yet", with the reader's waker stored.
//!
//! Bytes leave the input buffer only when a reader takes them. A reader
//! that must look at bytes without the lock (a chunk lent by
//! `poll_fill_buf`, a codec's incomplete frame) *holds* them: they still
//! count against `max_buffer_size` and for `input_buffer_len()`, and what
//! it does not consume goes back to the front of the buffer when it lets
//! go ([`Lent`], [`HeldInput`]). Reads that search for a frame
//! ([`FrameRead`]) search the input buffer in place, under its lock, and
//! ask the loop to read past the watermark as far as their frame may reach.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};

use bytes::{Buf, Bytes};

use super::conn::{
    Conn, Failure, CLOSED, DIRECT_READ, INPUT_SUSPENDED, REQ_DEADLINE, REQ_IO_FAILED, REQ_RESUME,
    USER_PAUSED,
};
use super::driver::READ_BUDGET;
use super::protocol::Wakers;
use super::{NetStream, Socket};
use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result, TimeoutKind};
use crate::sync::lock;

/// The input side of a connection, under `Conn::input`.
pub(crate) struct Input {
    pub(super) buf: Buffer,
    /// The peer sent FIN.
    pub(super) eof: bool,
    /// No more bytes will arrive (closed or released).
    pub(super) closed: bool,
    /// The connection failed; reported once the buffer is empty.
    pub(super) error: Failure,
    /// The loop stopped reading the socket at a limit.
    pub(super) suspended: bool,
    /// A read timeout expired that pending readers have not seen yet.
    pub(super) timed_out: bool,
    /// When the read waiting now must be complete (the read deadline).
    pub(super) deadline: Option<std::time::Instant>,
    /// The deadline passed; the read waiting sees it once.
    pub(super) deadline_passed: bool,
    /// How much a waiting frame read may need buffered at once: reading
    /// goes on past the watermark up to this (never past
    /// `max_buffer_size`).
    pub(super) wanted: usize,
    /// Frame reads and holders waiting for bytes (turbo's `reading()`).
    pub(super) readers: u32,
    /// Changes whenever bytes leave or join the front of the buffer: a
    /// search offset kept across polls is valid only while it is the same.
    pub(super) front_epoch: u64,
    /// The socket, while a copying read on the loop thread may take bytes
    /// straight from it (see [`Conn::read_direct`]): set once a plaintext
    /// connection is open, cleared at STARTTLS and when it is released.
    pub(super) direct: Option<Arc<NetStream>>,
    /// Bytes read straight from the socket since the loop's last read pass
    /// on this connection (bounded by [`READ_BUDGET`], so a reader of a
    /// fast peer still lets the loop turn).
    pub(super) direct_since_pass: u32,
    /// The kernel is worth asking directly: the loop's last read pass
    /// brought in at least `DIRECT_AFTER_PASS` bytes (the peer streams),
    /// and no direct read has found the kernel empty since. So a reader of
    /// small messages never pays a failing system call per message.
    pub(super) direct_worth_trying: bool,
    pub(super) wakers: Wakers,
}

impl Input {
    pub(super) fn new() -> Input {
        Input {
            buf: Buffer::new(),
            eof: false,
            closed: false,
            error: Failure::default(),
            suspended: false,
            timed_out: false,
            deadline: None,
            deadline_passed: false,
            wanted: 0,
            readers: 0,
            front_epoch: 0,
            direct: None,
            direct_since_pass: 0,
            direct_worth_trying: false,
            wakers: Wakers::default(),
        }
    }

    /// Whether more bytes may still come, whatever is buffered: the stored
    /// error, the end (`Ready(Ok)`), a read timeout not seen yet (reported
    /// once), or `Pending` with `waker` stored for the next append, EOF or
    /// error. Every read path of the connection decides with this.
    pub(crate) fn poll_more(&mut self, waker: Option<&Waker>) -> Poll<io::Result<()>> {
        if let Some(err) = self.error.get() {
            return Poll::Ready(Err(err.clone().into()));
        }
        if self.eof || self.closed {
            return Poll::Ready(Ok(()));
        }
        if self.timed_out {
            self.timed_out = false;
            return Poll::Ready(Err(Error::TimedOut(TimeoutKind::Read).into()));
        }
        if self.deadline_passed {
            self.deadline_passed = false;
            self.deadline = None;
            return Poll::Ready(Err(Error::TimedOut(TimeoutKind::ReadDeadline).into()));
        }
        if let Some(waker) = waker {
            self.wakers.register(waker);
        }
        Poll::Pending
    }

    /// Appends received bytes and takes the wakers to wake (the caller
    /// wakes them once unlocked).
    pub(crate) fn append(&mut self, chunks: impl IntoIterator<Item = Bytes>) -> Wakers {
        for chunk in chunks {
            self.buf.push(chunk);
        }
        // Progress: a timeout nobody saw no longer applies.
        self.timed_out = false;
        self.wakers.take()
    }

    /// Takes the first `n` bytes.
    fn split_front(&mut self, n: usize) -> Bytes {
        self.front_epoch += 1;
        self.buf.split_to(n)
    }

    /// Copies buffered bytes into `dst` and takes them.
    fn read_into(&mut self, dst: &mut [u8]) -> usize {
        self.front_epoch += 1;
        self.buf.read(dst)
    }

    /// Takes the front chunk, at most `max` bytes of it.
    fn take_chunk(&mut self, max: usize) -> Option<Bytes> {
        let front = self.buf.front_chunk()?.len();
        Some(self.split_front(front.min(max)))
    }

    /// Takes everything buffered (bytes that turn out to be the peer's
    /// first TLS records, at a STARTTLS upgrade).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(super) fn take_all(&mut self) -> Buffer {
        self.front_epoch += 1;
        std::mem::take(&mut self.buf)
    }

    /// Puts `front` back before what the buffer holds, in order.
    fn unread(&mut self, mut front: Buffer) {
        if front.is_empty() {
            return;
        }
        self.front_epoch += 1;
        let mut rest = std::mem::take(&mut self.buf);
        self.buf.append(&mut front);
        self.buf.append(&mut rest);
    }
}

impl Conn {
    /// How many more bytes the loop may read now: up to the soft limit (the
    /// read high watermark, raised to what a waiting frame read wants) and
    /// never past `max_buffer_size` counting held bytes.
    pub(super) fn read_room(&self, input: &Input) -> usize {
        let max = self.config.max_buffer_size;
        let soft = self.config.input_limit().max(input.wanted.min(max));
        let hard = max.saturating_sub(self.held_total());
        soft.min(hard).saturating_sub(input.buf.len())
    }

    /// Whether a suspended input has been drained enough to read again:
    /// to half its soft limit (so a reader taking a few bytes at a time
    /// does not make the loop poll the socket for a few bytes at a time),
    /// with room left under the hard one.
    fn should_resume(&self, input: &Input) -> bool {
        if !input.suspended {
            return false;
        }
        let max = self.config.max_buffer_size;
        let soft = self.config.input_limit().max(input.wanted.min(max));
        input.buf.len() <= soft / 2 && self.read_room(input) > 0
    }

    /// Reads straight from the socket into `dst` when nothing is buffered,
    /// saving the copy through a read block (what tokio's `read` does).
    ///
    /// Only where that cannot reorder, hide or outrun anything: on the
    /// loop's own thread (so the driver is not in the middle of a read
    /// pass), with nothing buffered, lent or held, no frame read waiting,
    /// no callback that must see the bytes, no read timeout or deadline
    /// to restart, reading not paused, and the connection open. `None`
    /// means "read the usual way": would block, the end (the loop's own
    /// read reports it), or an error (left for the loop to fail the
    /// connection with, so it reaches every reader and `event_cb`).
    fn read_direct(&self, input: &mut Input, dst: &mut [u8]) -> Option<usize> {
        let eligible = input.direct_worth_trying
            && self.flag(DIRECT_READ)
            && !self.flag(USER_PAUSED)
            && !self.flag(CLOSED)
            && !input.eof
            && !input.closed
            && !input.suspended
            && !input.timed_out
            && input.readers == 0
            && input.error.get().is_none()
            && (input.direct_since_pass as usize) < READ_BUDGET
            && self.held_total() == 0
            && self.handle.is_loop_thread();
        if !eligible {
            return None;
        }
        let stream = input.direct.as_deref()?;
        let want = dst.len().min(READ_BUDGET);
        let result = loop {
            match (&*stream).read(&mut dst[..want]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                result => break result,
            }
        };
        match result {
            Ok(n) if n > 0 => {
                input.direct_since_pass += n as u32;
                return Some(n);
            }
            // The end, or "would block": the loop's own read reports it.
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => {
                // The kernel reports an error once: keep it for the loop.
                lock(&self.output).error.set(&Error::from(err));
                self.request(REQ_IO_FAILED);
            }
        }
        input.direct_worth_trying = false;
        None
    }

    /// A read has begun waiting: with a read deadline, it must complete by
    /// then (the loop is asked for a timer). Under the input lock.
    fn start_deadline(&self, input: &mut Input) -> bool {
        let Some(limit) = self.config.read_deadline else {
            return false;
        };
        if input.deadline.is_some() {
            return false;
        }
        // Too far to represent means no deadline.
        input.deadline = std::time::Instant::now().checked_add(limit);
        input.deadline.is_some()
    }

    /// The read is done (or gave up): its deadline no longer applies.
    fn clear_deadline(input: &mut Input) {
        input.deadline = None;
        input.deadline_passed = false;
    }

    /// Runs `f` on the input under its lock and, if that left a suspended
    /// input with room again, asks the loop to read.
    pub(super) fn with_input<R>(&self, f: impl FnOnce(&mut Input) -> R) -> R {
        let (result, resume) = {
            let mut input = lock(&self.input);
            let result = f(&mut input);
            let resume = self.should_resume(&input);
            if resume {
                input.suspended = false;
                self.clear_flag(INPUT_SUSPENDED);
            }
            (result, resume)
        };
        if resume {
            self.request(REQ_RESUME);
        }
        result
    }
}

/// The reading API of a connection, for the stream, codec and peer layers.
impl Socket {
    /// Non-blocking read with the contract's rules: bytes if any, then the
    /// stored error, `Ok(0)` at the end, `Pending` (with `waker` stored)
    /// otherwise.
    pub(crate) fn poll_read(
        &self,
        dst: &mut [u8],
        waker: Option<&Waker>,
    ) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let conn = self.conn();
        conn.with_input(|input| {
            if !input.buf.is_empty() {
                return Poll::Ready(Ok(input.read_into(dst)));
            }
            if let Some(n) = conn.read_direct(input, dst) {
                return Poll::Ready(Ok(n));
            }
            input.poll_more(waker).map_ok(|()| 0)
        })
    }

    /// Takes up to `max` bytes of the front chunk (without copying); an
    /// empty `Bytes` means the end.
    pub(crate) fn poll_chunk(&self, max: usize, waker: Option<&Waker>) -> Poll<io::Result<Bytes>> {
        self.conn().with_input(|input| match input.take_chunk(max) {
            Some(chunk) => Poll::Ready(Ok(chunk)),
            None if max == 0 => Poll::Ready(Ok(Bytes::new())),
            None => input.poll_more(waker).map_ok(|()| Bytes::new()),
        })
    }

    /// Lends the front received chunk (`AsyncBufRead::poll_fill_buf`): it
    /// stays counted as buffered input until consumed, and what is not
    /// consumed goes back to the front when the [`Lent`] is dropped. An
    /// empty one means the end.
    pub(crate) fn poll_lend(&self, waker: Option<&Waker>) -> Poll<io::Result<Lent>> {
        let conn = self.conn();
        conn.with_input(|input| match input.take_chunk(usize::MAX) {
            Some(chunk) => {
                conn.held.fetch_add(chunk.len(), Ordering::AcqRel);
                Poll::Ready(Ok(Lent {
                    conn: Some(conn.clone()),
                    chunk,
                }))
            }
            None => input.poll_more(waker).map_ok(|()| Lent::default()),
        })
    }

    /// Lends the front received chunk if one is buffered, without waiting
    /// and without touching the end or a stored error (those stay for the
    /// reader that waits). `None` when nothing is buffered.
    pub(crate) fn lend_buffered(&self) -> Option<Lent> {
        let conn = self.conn();
        let chunk = conn.with_input(|input| input.take_chunk(usize::MAX))?;
        conn.held.fetch_add(chunk.len(), Ordering::AcqRel);
        Some(Lent {
            conn: Some(conn.clone()),
            chunk,
        })
    }

    /// `Ready` once bytes are buffered, or at the end or an error (the
    /// error is reported only once nothing is buffered); `Pending` with
    /// `waker` stored otherwise. Takes nothing.
    pub(crate) fn poll_readable(&self, waker: &Waker) -> Poll<io::Result<()>> {
        self.conn().with_input(|input| {
            if input.buf.is_empty() {
                input.poll_more(Some(waker))
            } else {
                Poll::Ready(Ok(()))
            }
        })
    }

    /// Copies buffered input into `dst` without taking it.
    pub(crate) fn peek_input(&self, dst: &mut [u8]) -> usize {
        lock(&self.conn().input).buf.copy_out(dst)
    }

    /// Starts a frame read on the input buffer; see [`FrameRead`].
    pub(crate) fn frame_read<'a>(&'a self, kind: FrameKind<'a>, max: usize) -> FrameRead<'a> {
        FrameRead {
            conn: self.conn(),
            kind,
            max,
            searched: 0,
            epoch: 0,
            waiting: false,
        }
    }

    /// The deadline of a read made of many takes; see [`ReadDeadline`].
    pub(crate) fn read_deadline(&self) -> ReadDeadline {
        ReadDeadline {
            conn: self.conn().clone(),
            armed: false,
        }
    }

    /// A holder for bytes a reader works on out of the lock; see
    /// [`HeldInput`].
    pub(crate) fn hold_input(&self) -> HeldInput {
        let conn = self.conn();
        HeldInput {
            solo: conn.claim_solo_holder(),
            conn: conn.clone(),
            buf: Buffer::new(),
            counted: 0,
            waiting: false,
        }
    }
}

/// A received chunk lent out of the input buffer.
#[derive(Default)]
pub(crate) struct Lent {
    conn: Option<Arc<Conn>>,
    chunk: Bytes,
}

impl Lent {
    /// The bytes not consumed yet.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.chunk
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunk.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.chunk.len()
    }

    /// Consumes `amount` bytes (at most what is left).
    pub(crate) fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.chunk.len());
        self.chunk.advance(amount);
        if let Some(conn) = &self.conn {
            conn.release_held(amount);
        }
    }

    /// Takes up to `max` of the bytes not consumed yet, as a `Bytes`.
    pub(crate) fn take(&mut self, max: usize) -> Bytes {
        let n = max.min(self.chunk.len());
        let taken = self.chunk.split_to(n);
        if let Some(conn) = &self.conn {
            conn.release_held(n);
        }
        taken
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let rest = std::mem::take(&mut self.chunk);
            let len = rest.len();
            if len > 0 {
                conn.with_input(|input| input.unread(Buffer::from(rest)));
                conn.release_held(len);
            }
        }
    }
}

/// What a [`FrameRead`] looks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FrameKind<'a> {
    /// Up to and including the first occurrence of these bytes.
    Delimiter(&'a [u8]),
    /// Exactly this many bytes.
    Exactly(usize),
    /// Everything until the end of the input.
    UntilEnd,
}

/// A read of one frame straight out of the input buffer: the search runs
/// in place under the input lock (it is evstream's own, memchr-based),
/// resumes where it stopped while nobody else takes bytes, and takes
/// exactly the frame (without copying when it lies in one received chunk).
///
/// While it waits, the loop reads past the read high watermark as far as
/// the frame may reach (`max`), never past `max_buffer_size`; a frame that
/// cannot fit there fails with `LimitExceeded` (`InputBuffer`), one longer
/// than `max` with `LimitExceeded` (`FrameLength`). Either way, and at an
/// unexpected end, every byte stays in the input buffer.
pub(crate) struct FrameRead<'a> {
    conn: &'a Conn,
    kind: FrameKind<'a>,
    max: usize,
    searched: usize,
    epoch: u64,
    /// Registered as a waiting reader (`wanted`, `readers`).
    waiting: bool,
}

impl FrameRead<'_> {
    /// Takes the frame if it is buffered; else the reason it never will be,
    /// or `Pending` with `waker` stored.
    pub(crate) fn poll(&mut self, waker: &Waker) -> Poll<Result<Bytes>> {
        let conn = self.conn;
        let max_buffer = conn.config.max_buffer_size;
        let mut arm_deadline = false;
        let poll = conn.with_input(|input| {
            let len = input.buf.len();
            if input.front_epoch != self.epoch {
                self.searched = 0;
                self.epoch = input.front_epoch;
            }
            let end = match self.kind {
                FrameKind::Delimiter(delimiter) => {
                    let found = input
                        .buf
                        .search_from(self.searched, delimiter)
                        .map(|at| at + delimiter.len());
                    // A delimiter may straddle what arrives next.
                    self.searched = len.saturating_sub(delimiter.len().saturating_sub(1));
                    found
                }
                FrameKind::Exactly(n) => (len >= n).then_some(n),
                FrameKind::UntilEnd => None,
            };
            if let Some(end) = end {
                if end > self.max {
                    return Poll::Ready(Err(self.too_long()));
                }
                return Poll::Ready(Ok(input.split_front(end)));
            }
            if matches!(self.kind, FrameKind::Delimiter(_)) && len >= self.max {
                return Poll::Ready(Err(self.too_long()));
            }
            let held = conn.held_total();
            let cannot_fit = len + held >= max_buffer;
            match input.poll_more(Some(waker)) {
                Poll::Ready(Ok(())) => Poll::Ready(match self.kind {
                    FrameKind::UntilEnd => Ok(input.split_front(len)),
                    FrameKind::Exactly(n) => Err(Error::UnexpectedEof {
                        needed: n,
                        received: len,
                    }),
                    FrameKind::Delimiter(_) => Err(Error::UnexpectedEof {
                        needed: len + 1,
                        received: len,
                    }),
                }),
                Poll::Ready(Err(err)) => Poll::Ready(Err(Error::from(err))),
                Poll::Pending if cannot_fit => Poll::Ready(Err(Error::LimitExceeded {
                    what: Limit::InputBuffer,
                    limit: max_buffer,
                })),
                Poll::Pending => {
                    if !self.waiting {
                        self.waiting = true;
                        input.readers += 1;
                    }
                    let wanted = match self.kind {
                        FrameKind::Exactly(n) => n,
                        _ => self.max,
                    };
                    input.wanted = input.wanted.max(wanted.min(max_buffer));
                    arm_deadline = conn.start_deadline(input);
                    Poll::Pending
                }
            }
        });
        if arm_deadline {
            conn.request(REQ_DEADLINE);
        }
        if poll.is_ready() {
            self.stop_waiting();
        }
        poll
    }

    fn too_long(&self) -> Error {
        Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: self.max,
        }
    }

    fn stop_waiting(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.conn.with_input(|input| {
                input.readers -= 1;
                if input.readers == 0 {
                    input.wanted = 0;
                    Conn::clear_deadline(input);
                }
            });
        }
    }
}

impl Drop for FrameRead<'_> {
    fn drop(&mut self) {
        self.stop_waiting();
    }
}

/// The read deadline of a read that takes the input piece by piece (the
/// streaming reads): it runs from the first time the read waits until the
/// read ends, when this is dropped.
pub(crate) struct ReadDeadline {
    conn: Arc<Conn>,
    armed: bool,
}

impl ReadDeadline {
    /// The read is waiting for bytes: with a read deadline, the read must
    /// be over by then (armed once per read).
    pub(crate) fn waiting(&mut self) {
        if self.armed || self.conn.config.read_deadline.is_none() {
            return;
        }
        self.armed = true;
        let arm = self
            .conn
            .with_input(|input| self.conn.start_deadline(input));
        if arm {
            self.conn.request(REQ_DEADLINE);
        }
    }
}

impl Drop for ReadDeadline {
    fn drop(&mut self) {
        if self.armed {
            self.conn.with_input(Conn::clear_deadline);
        }
    }
}

/// What the input looked like when a [`HeldInput`] pulled from it.
#[derive(Debug)]
pub(crate) enum InputEnd {
    /// More may come; the waker given is stored.
    Open,
    /// The end: EOF or close.
    Ended,
    /// The connection failed (or a read timed out): after what is held.
    Failed(Error),
}

/// Bytes a reader takes out of the input buffer to work on without the
/// lock (a codec's decoder, a user's matcher). They stay counted as
/// buffered input until consumed ([`sync`](HeldInput::sync)), and what is
/// left goes back to the front of the input buffer, in order, when the
/// holder [gives it back](HeldInput::give_back) or is dropped.
pub(crate) struct HeldInput {
    conn: Arc<Conn>,
    buf: Buffer,
    /// How much of `buf` is counted as held (in `Conn::solo_held` for the
    /// solo holder, else in `Conn::held`).
    counted: usize,
    /// Registered as a waiting reader.
    waiting: bool,
    /// This holder claimed the connection's solo count: `Conn::solo_held`
    /// equals `counted`, and only this holder writes it.
    solo: bool,
}

impl HeldInput {
    /// Moves what the input buffer has to the end of this holder and says
    /// whether more may come (storing `waker` if so).
    pub(crate) fn pull(&mut self, waker: Option<&Waker>) -> InputEnd {
        self.sync();
        let conn = self.conn.clone();
        conn.with_input(|input| {
            let moved = input.buf.len();
            if moved > 0 {
                input.front_epoch += 1;
                self.buf.append(&mut input.buf);
                self.count_moved(moved);
            }
            match input.poll_more(waker) {
                Poll::Pending => {
                    if !self.waiting {
                        self.waiting = true;
                        input.readers += 1;
                    }
                    InputEnd::Open
                }
                Poll::Ready(Ok(())) => InputEnd::Ended,
                Poll::Ready(Err(err)) => InputEnd::Failed(Error::from(err)),
            }
        })
    }

    /// The held bytes, for the reader to inspect and take from the front.
    pub(crate) fn buffer(&mut self) -> &mut Buffer {
        &mut self.buf
    }

    /// The held bytes.
    pub(crate) fn held(&self) -> &Buffer {
        &self.buf
    }

    /// A frame has begun (bytes of it are held) and is not complete: with a
    /// read deadline it must be by then. Nothing without a deadline.
    pub(crate) fn frame_started(&mut self) {
        if self.conn.config.read_deadline.is_none() {
            return;
        }
        let arm = self
            .conn
            .with_input(|input| self.conn.start_deadline(input));
        if arm {
            self.conn.request(REQ_DEADLINE);
        }
    }

    /// A frame is complete: its deadline no longer applies.
    pub(crate) fn frame_done(&mut self) {
        if self.conn.config.read_deadline.is_none() {
            return;
        }
        self.conn.with_input(Conn::clear_deadline);
    }

    /// Counts `moved` bytes, just taken from the input buffer under its
    /// lock, as held.
    fn count_moved(&mut self, moved: usize) {
        self.counted += moved;
        if self.solo {
            if let Ok(counted) = u32::try_from(self.counted) {
                self.conn.solo_held.store(counted, Ordering::Release);
                return;
            }
            // More than the solo count can hold (a `max_buffer_size` past
            // 4 GiB): this holder counts in the shared total from now on.
            self.conn.held.fetch_add(self.counted, Ordering::AcqRel);
            self.conn.solo_held.store(0, Ordering::Release);
            self.conn.release_solo_holder();
            self.solo = false;
            return;
        }
        self.conn.held.fetch_add(moved, Ordering::AcqRel);
    }

    /// Counts what the reader took since the last call as consumed.
    pub(crate) fn sync(&mut self) {
        let consumed = self.counted.saturating_sub(self.buf.len());
        if consumed == 0 {
            return;
        }
        self.counted -= consumed;
        if self.solo {
            // The only writer: a plain store, not an atomic subtraction.
            // Without a fence, the flag check below can miss a loop that
            // stops reading at a limit at this very moment. That loop hears
            // at the latest at this holder's next `pull` (or `give_back`),
            // which checks for room under the input lock. Until then it
            // reads nothing, which only matters to a second reader waiting
            // on the same connection meanwhile.
            let counted = u32::try_from(self.counted).unwrap_or(u32::MAX);
            self.conn.solo_held.store(counted, Ordering::Release);
            self.conn.resume_if_suspended();
        } else {
            self.conn.release_held(consumed);
        }
    }

    /// Whether the holder is at `max_buffer_size`: nothing more can come
    /// into it, so a frame it has not found is too long for the connection.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= self.conn.config.max_buffer_size
    }

    /// The connection's `max_buffer_size`.
    pub(crate) fn limit(&self) -> usize {
        self.conn.config.max_buffer_size
    }

    /// Puts every held byte back at the front of the input buffer.
    pub(crate) fn give_back(&mut self) {
        self.sync();
        let held = std::mem::take(&mut self.buf);
        let counted = std::mem::take(&mut self.counted);
        let waiting = std::mem::take(&mut self.waiting);
        if held.is_empty() && counted == 0 && !waiting {
            return;
        }
        let solo = self.solo;
        self.conn.with_input(|input| {
            input.unread(held);
            if solo {
                // With the bytes back in the buffer, under the same lock:
                // nobody sees them counted twice.
                self.conn.solo_held.store(0, Ordering::Release);
            }
            if waiting {
                input.readers -= 1;
                if input.readers == 0 {
                    // The read is over (or handed over, as a codec's
                    // `into_inner` does): the next read gets a deadline
                    // of its own, not what is left of this one's.
                    Conn::clear_deadline(input);
                }
            }
        });
        if !solo {
            self.conn.release_held(counted);
        }
    }
}

impl Drop for HeldInput {
    fn drop(&mut self) {
        self.give_back();
        if self.solo {
            self.conn.release_solo_holder();
        }
    }
}
