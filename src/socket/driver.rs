//! The loop-thread half of a connection: connecting, reading, flushing,
//! timeouts, closing, and running the callbacks.

use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{
    lock, wake_all, Callbacks, Conn, NetStream, Socket, Wakers, WriteState, REQ_ABORT, REQ_CLOSE,
    REQ_FLUSH, REQ_RESOLVED, REQ_RESUME, REQ_SHUTDOWN, REQ_TIMERS, REQ_WRITE_CB, REQ_WRITE_FAILED,
};
use crate::error::{Direction, Error, Event, TimeoutKind};
use crate::event_loop::{
    panic_message, read_into_spare, Core, Readiness, Registration, Source, Step,
};

const TOKEN_READ: u64 = 1;
const TOKEN_WRITE: u64 = 2;
const TOKEN_CONNECT: u64 = 3;
const TOKEN_LINGER: u64 = 4;

/// The smallest read block; connections that only ever see small messages
/// stay at this size, so thousands of idle connections cost little memory.
const MIN_READ_BLOCK: usize = 512;

/// How many bytes one readiness event may read before the loop moves on to
/// other connections (the rest is read on the next turn).
const READ_BUDGET: usize = 1024 * 1024;

/// How many chunks one vectored write hands the kernel at most.
const MAX_IOVECS: usize = 64;

/// Where a new connection goes.
pub(crate) enum Target {
    /// Already resolved addresses, tried in order.
    Addrs(Vec<SocketAddr>),
    /// Being resolved off the loop thread; the result arrives through
    /// `Conn::set_resolved`.
    Resolving,
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// Accepted by a server: already connected. The addresses the server
    /// already knows (the peer's from `accept`, its own when it listens on
    /// one address) save asking the kernel.
    Accepted {
        stream: NetStream,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    },
}

enum Phase {
    /// Created; starts on the first wake, once it has its key.
    New(Option<Target>),
    Resolving,
    Connecting {
        addrs: Vec<SocketAddr>,
        next: usize,
        last_error: Option<Error>,
    },
    Open,
    /// FIN sent after a graceful close; waiting for the peer's FIN.
    Lingering,
}

/// Reads go into the spare capacity of a `BytesMut` block; what one event
/// read is split off and frozen, so a read costs no allocation until the
/// block is used up, and a used-up block whose chunks have all been dropped
/// is reclaimed rather than reallocated. The block size adapts: it starts
/// small (so idle connections hold little memory), doubles while reads fill
/// it and halves when they are small.
struct ReadBlock {
    /// `len()` is what this event has read so far; the rest is room.
    block: BytesMut,
    next_size: usize,
    max_size: usize,
}

impl ReadBlock {
    fn new(max_size: usize) -> Self {
        ReadBlock {
            block: BytesMut::new(),
            next_size: MIN_READ_BLOCK.min(max_size),
            max_size,
        }
    }

    /// Reads at most `want` bytes from `stream`; returns (read, asked).
    /// Moves what this event read so far into `done` when the block has to
    /// be replaced.
    fn read(
        &mut self,
        stream: &NetStream,
        want: usize,
        done: &mut Vec<Bytes>,
    ) -> io::Result<(usize, usize)> {
        let room = self.block.capacity() - self.block.len();
        if room < want.min(MIN_READ_BLOCK) {
            if !self.block.is_empty() {
                done.push(self.block.split().freeze());
            }
            // Reclaims the old allocation when nothing refers to it any more.
            self.block.reserve(self.next_size.max(MIN_READ_BLOCK));
        }
        let asked = (self.block.capacity() - self.block.len()).min(want);
        let n = read_into_spare(stream, &mut self.block, asked)?;
        if n == asked {
            self.next_size = (self.next_size * 2).min(self.max_size);
        } else if n < self.next_size / 8 {
            self.next_size = (self.next_size / 2).max(MIN_READ_BLOCK);
        }
        Ok((n, asked))
    }

    fn finish(&mut self, done: &mut Vec<Bytes>) {
        if !self.block.is_empty() {
            done.push(self.block.split().freeze());
        }
    }
}

/// One direction's idle timeout: it counts only while that direction waits
/// (for bytes to read, or for queued output to go), and any progress
/// restarts it. Its heap timer is never cancelled: when it fires, `fire`
/// re-checks the deadline from `last`.
struct IdleTimer {
    timeout: Option<Duration>,
    /// The last progress, or when waiting began. Kept current only when
    /// something looks at it (a timeout, or a caller's `record`), so the
    /// hot path reads no clock otherwise.
    last: Instant,
    waiting: bool,
    armed: bool,
    timed_out: bool,
}

impl IdleTimer {
    fn new(timeout: Option<Duration>, now: Instant) -> Self {
        IdleTimer {
            timeout,
            last: now,
            waiting: false,
            armed: false,
            timed_out: false,
        }
    }

    /// New timeout (`set_timeouts`), counted from `now`. Disarming makes
    /// `update` arm a timer at the new deadline (a shorter timeout must not
    /// wait for the old timer).
    fn set(&mut self, timeout: Option<Duration>, now: Instant) {
        self.timeout = timeout;
        self.last = now;
        self.armed = false;
        self.timed_out = false;
    }

    /// Bytes moved: the count restarts; `record` keeps the time even
    /// without a timeout.
    fn progress(&mut self, core: &Core, record: bool) {
        if self.timeout.is_some() || record {
            self.last = core.now();
        }
        self.timed_out = false;
    }

    /// Notes whether the direction waits now, and arms a timer if it does
    /// and none is pending.
    fn update(&mut self, core: &mut Core, key: usize, token: u64, waiting: bool) {
        let Some(timeout) = self.timeout else {
            self.waiting = waiting;
            return;
        };
        if waiting && !self.waiting {
            self.last = core.now();
        }
        self.waiting = waiting;
        if waiting && !self.armed && !self.timed_out {
            core.add_timer(self.last + timeout, key, token);
            self.armed = true;
        }
    }

    /// Its timer fired at `now`: whether the direction has timed out.
    fn fire(&mut self, now: Instant) -> bool {
        self.armed = false;
        let due = self
            .timeout
            .is_some_and(|timeout| self.waiting && !self.timed_out && now >= self.last + timeout);
        if due {
            self.timed_out = true;
        }
        due
    }
}

/// Addresses of a new connection that are known without asking the kernel.
struct Known {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

/// What one pass over the socket produced, to be reported in order once the
/// state is settled.
#[derive(Default)]
struct Outcome {
    connected: bool,
    chunks: Vec<Bytes>,
    notify: bool,
    write_cb: bool,
    eof: bool,
    timeouts: Vec<Direction>,
    error: Option<Error>,
}

pub(crate) struct Driver {
    conn: Arc<Conn>,
    /// Shared by every connection made with the same options.
    callbacks: Arc<Callbacks>,
    phase: Phase,
    registration: Option<Registration<NetStream>>,
    read_block: ReadBlock,
    outcome: Outcome,
    // A handle for callbacks, kept only when the lifetime is explicit (a
    // kept handle would otherwise stop "last handle dropped" from closing).
    socket: Option<Socket>,
    eof: bool,
    closing: bool,
    released: bool,
    suspended: bool,
    read_more: bool,
    // notify_cb took bytes and left some: call it again next turn.
    renotify: bool,
    // The poller reported a hang-up: a short read is no longer proof that
    // the kernel has nothing more (a pending FIN raises no new edge).
    read_closed_seen: bool,
    read_idle: IdleTimer,
    // Its `last` is also the linger's measure of output progress.
    write_idle: IdleTimer,
    // Timers are never cancelled and slab keys are reused, so a timer may
    // belong to an earlier connection: these say whether one applies.
    connect_deadline: Option<Instant>,
    linger_deadline: Option<Instant>,
    // The linger timer fired while output was still moving: re-arm it from
    // this last progress.
    pending_linger_rearm: Option<Instant>,
}

impl Driver {
    pub(crate) fn new(
        conn: Arc<Conn>,
        callbacks: Arc<Callbacks>,
        target: Target,
        now: Instant,
    ) -> Self {
        let (read_timeout, write_timeout) = *lock(&conn.timeouts);
        let socket = conn
            .lifetime_is_explicit
            .then(|| Socket::from_conn(conn.clone()));
        Driver {
            read_block: ReadBlock::new(conn.config.read_chunk_size),
            conn,
            callbacks,
            phase: Phase::New(Some(target)),
            registration: None,
            outcome: Outcome::default(),
            socket,
            eof: false,
            closing: false,
            released: false,
            suspended: false,
            read_more: false,
            renotify: false,
            read_closed_seen: false,
            read_idle: IdleTimer::new(read_timeout, now),
            write_idle: IdleTimer::new(write_timeout, now),
            connect_deadline: None,
            linger_deadline: None,
            pending_linger_rearm: None,
        }
    }

    /// Registers the driver in `core` and starts it.
    pub(crate) fn spawn(
        core: &mut Core,
        conn: Arc<Conn>,
        callbacks: Arc<Callbacks>,
        target: Target,
    ) {
        let key = core.reserve_key();
        conn.key.store(key, Ordering::Release);
        let driver = Driver::new(conn, callbacks, target, core.now());
        core.fill(key, Box::new(driver));
    }

    fn start(&mut self, core: &mut Core, key: usize, target: Target) {
        match target {
            Target::Accepted {
                stream,
                peer,
                local,
            } => {
                if self.conn.config.nodelay {
                    // Best effort: a socket that refuses it still works.
                    let _ = stream.set_nodelay(true);
                }
                match Registration::new(core.poller(), Arc::new(stream), key) {
                    Ok(registration) => {
                        self.registration = Some(registration);
                        self.open(core, key, Known { peer, local });
                    }
                    Err(err) => self.fail(Error::from(err)),
                }
            }
            Target::Addrs(addrs) => {
                self.arm_connect_timer(core, key);
                self.phase = Phase::Connecting {
                    addrs,
                    next: 0,
                    last_error: None,
                };
                self.try_next_address(core, key);
            }
            Target::Resolving => {
                self.arm_connect_timer(core, key);
                self.phase = Phase::Resolving;
            }
            Target::Unix(path) => {
                self.arm_connect_timer(core, key);
                self.phase = Phase::Connecting {
                    addrs: Vec::new(),
                    next: 0,
                    last_error: None,
                };
                let attempt = connect_unix_nonblocking(&path)
                    .and_then(|stream| Registration::new(core.poller(), Arc::new(stream), key));
                match attempt {
                    Ok(registration) => self.registration = Some(registration),
                    Err(err) => self.fail(Error::from(err)),
                }
            }
        }
    }

    fn arm_connect_timer(&mut self, core: &mut Core, key: usize) {
        let deadline = core.now() + self.conn.config.connect_timeout;
        self.connect_deadline = Some(deadline);
        core.add_timer(deadline, key, TOKEN_CONNECT);
    }

    /// Arms the linger timer: while closing, it bounds how long the output
    /// may go without progress and how long to wait for the peer's FIN.
    fn arm_linger_timer(&mut self, core: &mut Core, key: usize, from: Instant) {
        let deadline = from + self.conn.config.close_linger;
        self.linger_deadline = Some(deadline);
        core.add_timer(deadline, key, TOKEN_LINGER);
    }

    /// Starts a non-blocking connect to the next address; fails the
    /// connection with the last error once every address has been tried.
    fn try_next_address(&mut self, core: &mut Core, key: usize) {
        self.registration = None;
        loop {
            let Phase::Connecting {
                addrs,
                next,
                last_error,
            } = &mut self.phase
            else {
                return;
            };
            let Some(&addr) = addrs.get(*next) else {
                let err = last_error.take().unwrap_or(Error::Refused);
                self.fail(err);
                return;
            };
            *next += 1;
            let attempt = connect_nonblocking(addr, &self.conn.config)
                .and_then(|stream| Registration::new(core.poller(), Arc::new(stream), key));
            match attempt {
                Ok(registration) => {
                    self.registration = Some(registration);
                    return;
                }
                Err(err) => *last_error = Some(Error::from(err)),
            }
        }
    }

    /// Called on readiness while connecting: finishes the attempt or moves
    /// on to the next address.
    fn check_connect(&mut self, core: &mut Core, key: usize, writable: bool) {
        let Some(registration) = &self.registration else {
            return;
        };
        // The TCP address being tried (none for a Unix socket).
        let peer = match &self.phase {
            Phase::Connecting { addrs, next, .. } => {
                next.checked_sub(1).and_then(|i| addrs.get(i).copied())
            }
            _ => None,
        };
        let stream = registration.source();
        let failure = match stream.take_error() {
            Ok(Some(err)) | Err(err) => Some(err),
            // A connecting TCP socket turns writable only once the connect
            // has finished, and a failed one has its error pending: so
            // writable without an error is connected (no `getpeername`).
            Ok(None) if writable && peer.is_some() => None,
            Ok(None) => match stream.check_connected() {
                Ok(()) => None,
                // Not connected yet: a spurious wake-up.
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return,
                Err(err) => Some(err),
            },
        };
        match failure {
            None => self.open(core, key, Known { peer, local: None }),
            Some(err) => {
                if let Phase::Connecting { last_error, .. } = &mut self.phase {
                    *last_error = Some(Error::from(err));
                }
                self.try_next_address(core, key);
            }
        }
    }

    /// The socket is connected: publish it and send what was queued.
    fn open(&mut self, core: &mut Core, key: usize, known: Known) {
        let Some(registration) = &self.registration else {
            return;
        };
        let stream = registration.source().clone();
        if let Some(addrs) = stream.tcp_addrs(known.local, known.peer) {
            let _ = self.conn.addrs.set(addrs);
        }
        if let Some(paths) = stream.unix_paths() {
            let _ = self.conn.unix_paths.set(paths);
        }
        self.conn.connected.store(true, Ordering::Release);
        let wakers = {
            let mut out = lock(&self.conn.output);
            out.stream = Some(stream);
            if out.state == WriteState::Connecting {
                out.state = WriteState::Open;
            }
            out.take_wakers()
        };
        // Whoever waits for the connection (a connect future) goes on now.
        wake_all(wakers);
        self.phase = Phase::Open;
        self.read_idle.last = core.now();
        self.write_idle.last = core.now();
        self.outcome.connected = true;
        // A connection whose lifetime follows its handles, with no callback
        // to hand one out and no handle held (a server with no callbacks at
        // all accepted it): nobody can ever use or close it, so close it.
        let unreachable = !self.conn.lifetime_is_explicit
            && self.callbacks.connect.is_none()
            && self.conn.handles.load(Ordering::Acquire) == 0;
        if unreachable {
            self.conn.closed.store(true, Ordering::Release);
            self.closing = true;
        }
        if self.closing {
            self.begin_close(core, key);
        } else {
            self.flush(core);
        }
    }

    fn stream(&self) -> Option<Arc<NetStream>> {
        self.registration.as_ref().map(|r| r.source().clone())
    }

    /// Hands queued output to the kernel until it is empty or the kernel
    /// refuses more; sends FIN once empty if a shutdown was asked for.
    fn flush(&mut self, core: &mut Core) {
        let Some(stream) = self.stream() else {
            return;
        };
        let mut error = None;
        let (before, after, wakers) = {
            let mut out = lock(&self.conn.output);
            out.flush_queued = false;
            if !matches!(out.state, WriteState::Open | WriteState::ShutdownQueued) {
                return;
            }
            let before = out.buf.len();
            while !out.buf.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = out.buf.fill_io_slices(&mut slices);
                match (&*stream).write_vectored(&slices[..count]) {
                    Ok(0) => {
                        error = Some(Error::from(io::Error::from(io::ErrorKind::WriteZero)));
                        break;
                    }
                    Ok(n) => {
                        out.buf.drain(n);
                        out.sent += n as u64;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => {
                        error = Some(Error::from(err));
                        break;
                    }
                }
            }
            let after = out.buf.len();
            out.awaiting_writable = after > 0;
            if after == 0 {
                self.conn.output_pending.store(false, Ordering::SeqCst);
            }
            let mut changed = after < before;
            if changed {
                // Progress: a timeout nobody saw no longer applies.
                out.timed_out = false;
            }
            if error.is_none() && after == 0 && out.state == WriteState::ShutdownQueued {
                match stream.shutdown(Shutdown::Write) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => {}
                    Err(err) => error = Some(Error::from(err)),
                }
                out.state = WriteState::Shutdown;
                changed = true;
            }
            let wakers = if changed {
                out.take_wakers()
            } else {
                Wakers::default()
            };
            (before, after, wakers)
        };
        wake_all(wakers);
        if after < before {
            // A closing connection's linger measures progress too.
            self.write_idle.progress(core, self.closing);
            // Any progress that ends at or below the low watermark: what
            // was queued may already have been below it (a partial direct
            // write), and a producer refilling from write_cb must hear of it.
            if self.callbacks.write.is_some() && after <= self.conn.config.write_low_watermark {
                self.outcome.write_cb = true;
            }
        }
        if let Some(err) = error {
            self.fail(err);
        }
    }

    /// Reads the socket until it would block, the input reaches its high
    /// watermark, or this event's budget is spent.
    fn read(&mut self, core: &mut Core) {
        if self.eof || self.released || !matches!(self.phase, Phase::Open | Phase::Lingering) {
            return;
        }
        let Some(stream) = self.stream() else {
            return;
        };
        // Closed by the application (perhaps from another thread, before
        // the loop has handled the request): what arrives is discarded.
        let discard = self.closing || self.conn.closed.load(Ordering::Acquire);
        // Validated options never combine dont-drain with a `read_cb`.
        let drain = self.callbacks.read.is_some();
        if !discard && self.conn.user_paused.load(Ordering::Acquire) {
            return;
        }
        let limited = !discard && !drain;
        let limit = self.conn.config.input_limit();
        let mut space = if limited {
            limit.saturating_sub(lock(&self.conn.input).buf.len())
        } else {
            usize::MAX
        };
        let chunk_size = self.conn.config.read_chunk_size;
        // The loop's list: delivering chunks allocates nothing, and an idle
        // connection keeps no list of its own.
        let mut done = core.take_chunk_list();
        let mut total = 0;
        let mut eof = false;
        let mut error = None;
        let mut hit_limit = false;
        loop {
            if space == 0 {
                hit_limit = true;
                break;
            }
            if total >= READ_BUDGET {
                self.read_more = true;
                break;
            }
            match self
                .read_block
                .read(&stream, space.min(chunk_size), &mut done)
            {
                Ok((0, _)) => {
                    eof = true;
                    break;
                }
                Ok((n, asked)) => {
                    total += n;
                    if limited {
                        space -= n;
                    }
                    // Edge-triggered: a short read means the kernel queue is
                    // empty and new data will raise a new edge — unless the
                    // peer's FIN is pending, which raises none; the poller
                    // says so (`read_closed`), and then we read on to EOF.
                    if n < asked && !self.read_closed_seen {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    error = Some(Error::from(err));
                    break;
                }
            }
        }
        self.read_block.finish(&mut done);
        if total > 0 {
            self.read_idle.progress(core, false);
        }
        if discard {
            done.clear();
        } else if drain {
            if self.outcome.chunks.is_empty() {
                // Usual case: the list itself goes to `report`; `settle`
                // gives it back to the loop.
                std::mem::swap(&mut self.outcome.chunks, &mut done);
            } else {
                self.outcome.chunks.append(&mut done);
            }
        } else {
            let (wakers, len) = {
                let mut input = lock(&self.conn.input);
                if input.closed {
                    // Closed while this read was in flight.
                    done.clear();
                }
                for chunk in done.drain(..) {
                    input.buf.push(chunk);
                }
                if total > 0 {
                    // Progress: a timeout nobody saw no longer applies.
                    input.timed_out = false;
                }
                if hit_limit {
                    if input.buf.len() >= limit {
                        input.suspended = true;
                        self.suspended = true;
                    } else {
                        // A reader drained it meanwhile: keep reading.
                        self.read_more = true;
                    }
                }
                if eof {
                    input.eof = true;
                }
                let wakers = if total > 0 || eof {
                    input.take_wakers()
                } else {
                    Wakers::default()
                };
                (wakers, input.buf.len())
            };
            wake_all(wakers);
            // At EOF the reader is told once more, so one waiting for the
            // rest of a frame (in the input, or held by a codec) sees the end.
            // (Only with a `notify_cb`: an outcome with nobody to tell would
            // still make `report` build a handle on every read.)
            let notify = (total > 0 && len >= self.conn.config.read_low_watermark) || eof;
            if notify && self.callbacks.notify.is_some() {
                self.outcome.notify = true;
            }
        }
        core.return_chunk_list(done);
        if eof {
            self.eof = true;
            if !discard {
                self.outcome.eof = true;
            }
        }
        if let Some(err) = error {
            self.fail(err);
        }
    }

    /// Starts (or continues) a graceful close: flush, FIN, linger, release.
    fn begin_close(&mut self, core: &mut Core, key: usize) {
        self.closing = true;
        let wakers = {
            let mut input = lock(&self.conn.input);
            input.closed = true;
            input.take_wakers()
        };
        wake_all(wakers);
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        {
            let mut out = lock(&self.conn.output);
            if out.state == WriteState::Open {
                out.state = WriteState::ShutdownQueued;
            }
        }
        self.flush(core);
        // Discard what the peer sends meanwhile, so it is never blocked
        // writing to us while we wait for it to read.
        self.read(core);
        // A peer that never reads must not hold the connection for ever.
        if !self.released && matches!(self.phase, Phase::Open) {
            self.arm_linger_timer(core, key, self.write_idle.last.max(core.now()));
        }
    }

    fn handle_requests(&mut self, core: &mut Core, key: usize, bits: u32) {
        if bits & REQ_RESOLVED != 0 && matches!(self.phase, Phase::Resolving) {
            let resolved = lock(&self.conn.resolved).take();
            match resolved {
                Some(Ok(addrs)) => {
                    self.phase = Phase::Connecting {
                        addrs,
                        next: 0,
                        last_error: None,
                    };
                    self.try_next_address(core, key);
                }
                Some(Err(err)) => self.fail(err),
                None => {}
            }
        }
        if bits & REQ_ABORT != 0 {
            self.release(None, true);
            return;
        }
        if bits & REQ_WRITE_FAILED != 0 {
            let err = lock(&self.conn.output).error.clone();
            if let Some(err) = err {
                self.fail(err);
                return;
            }
        }
        if bits & REQ_TIMERS != 0 {
            // set_timeouts: new values, counted from now. Clearing the armed
            // flags arms timers at the new deadlines (a shorter timeout must
            // not wait for the old timer); stale timers check their deadline.
            let (read, write) = *lock(&self.conn.timeouts);
            self.read_idle.set(read, core.now());
            self.write_idle.set(write, core.now());
        }
        // REQ_ARM_TIMERS needs nothing here: `settle` arms what applies.
        if bits & REQ_CLOSE != 0 && !self.closing {
            self.begin_close(core, key);
        }
        if bits & (REQ_FLUSH | REQ_SHUTDOWN) != 0 {
            self.flush(core);
        }
        if bits & REQ_RESUME != 0 {
            self.suspended = false;
            self.read(core);
        }
        if bits & REQ_WRITE_CB != 0 {
            self.outcome.write_cb = true;
        }
    }

    fn on_timer_token(&mut self, core: &mut Core, token: u64) {
        let now = core.now();
        match token {
            TOKEN_CONNECT => {
                let due = self
                    .connect_deadline
                    .is_some_and(|deadline| now >= deadline);
                if due && matches!(self.phase, Phase::Resolving | Phase::Connecting { .. }) {
                    self.fail(Error::TimedOut(TimeoutKind::Connect));
                }
            }
            TOKEN_LINGER => {
                let due = self.linger_deadline.is_some_and(|deadline| now >= deadline);
                if !due || !self.closing {
                    return;
                }
                match self.phase {
                    // The peer never sent its FIN: release anyway.
                    Phase::Lingering => self.release(None, false),
                    // Still flushing: give up only if the output has made
                    // no progress for the whole linger time (a peer that
                    // stopped reading); a slow reader keeps going.
                    Phase::Open => {
                        if now >= self.write_idle.last + self.conn.config.close_linger {
                            self.release(None, true);
                        } else {
                            self.pending_linger_rearm = Some(self.write_idle.last);
                        }
                    }
                    _ => {}
                }
            }
            TOKEN_READ => {
                let timed_out = self.read_idle.fire(now);
                if timed_out {
                    self.outcome.timeouts.push(Direction::Read);
                    let wakers = {
                        let mut input = lock(&self.conn.input);
                        input.timed_out = true;
                        input.take_wakers()
                    };
                    wake_all(wakers);
                }
            }
            TOKEN_WRITE => {
                let timed_out = self.write_idle.fire(now);
                if timed_out {
                    self.outcome.timeouts.push(Direction::Write);
                    let wakers = {
                        let mut out = lock(&self.conn.output);
                        out.timed_out = true;
                        out.take_wakers()
                    };
                    wake_all(wakers);
                }
            }
            _ => {}
        }
    }

    /// Arms the idle timers of the directions that are waiting.
    fn update_timers(&mut self, core: &mut Core, key: usize) {
        let open = matches!(self.phase, Phase::Open);
        let read_waiting = open
            && !self.eof
            && !self.closing
            && !self.suspended
            && !self.conn.user_paused.load(Ordering::Acquire);
        self.read_idle.update(core, key, TOKEN_READ, read_waiting);
        // The output lock only when a write timeout needs the answer.
        let write_waiting = self.write_idle.timeout.is_some()
            && matches!(self.phase, Phase::Open | Phase::Lingering)
            && !lock(&self.conn.output).buf.is_empty();
        self.write_idle
            .update(core, key, TOKEN_WRITE, write_waiting);
    }

    /// Ends the connection with an error.
    fn fail(&mut self, err: Error) {
        self.release(Some(err), false);
    }

    /// Releases the socket: deregisters it, closes it (with a reset when
    /// aborting), and marks both buffers finished. Buffered input stays.
    fn release(&mut self, error: Option<Error>, abort: bool) {
        if self.released {
            return;
        }
        self.released = true;
        if abort {
            if let Some(registration) = &self.registration {
                let _ = socket2::SockRef::from(&**registration.source())
                    .set_linger(Some(Duration::ZERO));
            }
        }
        // Deleting the registration first keeps the descriptor open until
        // the poller has forgotten it; the last `Arc` closes it below.
        self.registration = None;
        let out_wakers = {
            let mut out = lock(&self.conn.output);
            out.state = WriteState::Closed;
            out.stream = None;
            if abort {
                out.buf.clear();
            }
            if let Some(err) = &error {
                out.error.get_or_insert_with(|| err.clone());
            }
            out.take_wakers()
        };
        let in_wakers = {
            let mut input = lock(&self.conn.input);
            input.closed = true;
            if let Some(err) = &error {
                input.error.get_or_insert_with(|| err.clone());
            }
            input.take_wakers()
        };
        self.conn.closed.store(true, Ordering::Release);
        self.conn.key.store(super::UNREGISTERED, Ordering::Release);
        wake_all(out_wakers);
        wake_all(in_wakers);
        self.outcome.error = error;
    }

    /// Releases the connection once both directions are done.
    fn check_finished(&mut self, core: &mut Core, key: usize) {
        if self.released || !matches!(self.phase, Phase::Open | Phase::Lingering) {
            return;
        }
        // Only a closing connection or one whose peer has finished can be
        // done; skip the lock on every other event.
        if !self.closing && !self.eof {
            return;
        }
        let write_done = {
            let out = lock(&self.conn.output);
            out.state == WriteState::Shutdown && out.buf.is_empty()
        };
        if !write_done {
            return;
        }
        if self.eof {
            self.release(None, false);
        } else if self.closing && matches!(self.phase, Phase::Open) {
            self.phase = Phase::Lingering;
            core.add_timer(
                core.now() + self.conn.config.close_linger,
                key,
                TOKEN_LINGER,
            );
            self.read(core);
            if self.eof {
                self.release(None, false);
            }
        }
    }

    fn callback_socket(&self) -> Socket {
        match &self.socket {
            Some(socket) => socket.clone(),
            None => Socket::from_conn(self.conn.clone()),
        }
    }

    /// Runs the callbacks for everything that happened, in order. A panic
    /// in one of them ends the connection with `CallbackPanicked`.
    fn report(&mut self) {
        if !self.has_something_to_report() {
            return;
        }
        let c = &self.callbacks;
        let any = c.read.is_some()
            || c.notify.is_some()
            || c.write.is_some()
            || c.event.is_some()
            || c.connect.is_some();
        if !any {
            // Nobody to tell. Making a handle here could also close a
            // connection whose lifetime follows its handles.
            let error = self.outcome.error.take();
            self.outcome = Outcome {
                error,
                ..Outcome::default()
            };
            return;
        }
        let mut outcome = std::mem::take(&mut self.outcome);
        // The chunk list (the loop's, lent by `read`) keeps its allocation.
        let mut chunks = std::mem::take(&mut outcome.chunks);
        // Borrowed, not cloned: this runs for every event.
        let temporary;
        let socket = match &self.socket {
            Some(socket) => socket,
            None => {
                temporary = Socket::from_conn(self.conn.clone());
                &temporary
            }
        };
        let callbacks = &self.callbacks;
        let mut panicked: Option<String> = None;
        let run = |panicked: &mut Option<String>, result: Result<(), String>| {
            if let Err(message) = result {
                panicked.get_or_insert(message);
            }
        };
        if outcome.connected {
            if let Some(cb) = &callbacks.connect {
                run(&mut panicked, invoke(cb, |f| f(socket)));
            }
            if let Some(cb) = &callbacks.event {
                run(&mut panicked, invoke(cb, |f| f(socket, Event::Connected)));
            }
        }
        if let Some(cb) = &callbacks.read {
            for chunk in chunks.drain(..) {
                if panicked.is_some() {
                    break;
                }
                run(&mut panicked, invoke(cb, |f| f(socket, chunk)));
            }
        }
        chunks.clear();
        if outcome.notify && panicked.is_none() {
            if let Some(cb) = &callbacks.notify {
                let before = lock(&self.conn.input).buf.len();
                run(&mut panicked, invoke(cb, |f| f(socket)));
                let after = lock(&self.conn.input).buf.len();
                // A reader that takes part of what is ready each time is
                // called again until it stops making progress, so it can
                // never stall on bytes that are buffered but not new (for
                // instance with reading suspended at the watermark).
                self.renotify = after > 0 && after < before;
            }
        }
        if outcome.write_cb && panicked.is_none() {
            if let Some(cb) = &callbacks.write {
                run(&mut panicked, invoke(cb, |f| f(socket)));
            }
        }
        if let Some(cb) = &callbacks.event {
            if outcome.eof && panicked.is_none() {
                run(&mut panicked, invoke(cb, |f| f(socket, Event::Eof)));
            }
            for direction in outcome.timeouts {
                if panicked.is_none() {
                    run(
                        &mut panicked,
                        invoke(cb, |f| f(socket, Event::Timeout(direction))),
                    );
                }
            }
        }
        self.outcome.chunks = chunks;
        if let Some(message) = panicked {
            self.fail(Error::CallbackPanicked(message));
        }
        // Failure events are reported last, by `report_release`.
        if let Some(err) = outcome.error {
            self.outcome.error.get_or_insert(err);
        }
    }

    fn has_something_to_report(&self) -> bool {
        let o = &self.outcome;
        o.connected
            || !o.chunks.is_empty()
            || o.notify
            || o.write_cb
            || o.eof
            || !o.timeouts.is_empty()
    }

    /// The last callbacks of a released connection: its error, then
    /// `Closed`. Panics here have nowhere left to go and are dropped.
    fn report_release(&mut self) {
        let error = self.outcome.error.take();
        self.outcome = Outcome::default();
        let Some(cb) = self.callbacks.event.clone() else {
            return;
        };
        let socket = self.callback_socket();
        if let Some(err) = error {
            let _ = invoke(&cb, |f| f(&socket, Event::Error(err)));
        }
        let _ = invoke(&cb, |f| f(&socket, Event::Closed));
    }

    /// Runs the `on_close` callbacks, once, after the final event.
    fn run_close_callbacks(&mut self) {
        let callbacks = std::mem::take(&mut *lock(&self.conn.close_callbacks));
        for callback in callbacks {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(callback)) {
                eprintln!(
                    "evstream: an on_close callback panicked: {}",
                    panic_message(&*payload)
                );
            }
        }
    }

    /// Reports what happened, releases a finished connection, re-arms
    /// timers: the common tail of every entry point.
    fn settle(&mut self, core: &mut Core, key: usize) -> Step {
        self.report();
        if !self.released {
            self.check_finished(core, key);
            self.report();
        }
        if self.outcome.chunks.capacity() != 0 {
            core.return_chunk_list(std::mem::take(&mut self.outcome.chunks));
        }
        if self.released {
            self.report_release();
            self.run_close_callbacks();
            self.socket = None;
            return Step::Remove;
        }
        if let Some(from) = self.pending_linger_rearm.take() {
            self.arm_linger_timer(core, key, from);
        }
        if self.read_more || self.renotify {
            // `on_wake` sees the flags and reads or notifies again, after
            // the other sources that were ready on this turn.
            core.wake_later(key);
        }
        self.update_timers(core, key);
        Step::Keep
    }
}

fn invoke<F: ?Sized>(cb: &super::Shared<F>, call: impl FnOnce(&mut F)) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        let mut f = lock(cb);
        call(&mut f);
    }))
    .map_err(|payload| panic_message(&*payload))
}

/// Creates a non-blocking socket and starts connecting it to `addr`.
fn connect_nonblocking(addr: SocketAddr, config: &super::Config) -> io::Result<NetStream> {
    use socket2::{Domain, Protocol, Type};
    let socket = new_nonblocking_socket(Domain::for_address(addr), Type::STREAM, Protocol::TCP)?;
    if config.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(bind) = config.bind {
        socket.bind(&bind.into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(err)
            if err.raw_os_error() == Some(libc::EINPROGRESS)
                || err.kind() == io::ErrorKind::WouldBlock => {}
        Err(err) => return Err(err),
    }
    Ok(NetStream::Tcp(socket.into()))
}

/// A socket that is non-blocking from the start (`SOCK_NONBLOCK`: one
/// system call, where setting the flag afterwards takes two more).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn new_nonblocking_socket(
    domain: socket2::Domain,
    kind: socket2::Type,
    protocol: socket2::Protocol,
) -> io::Result<socket2::Socket> {
    socket2::Socket::new(domain, kind.nonblocking(), Some(protocol))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn new_nonblocking_socket(
    domain: socket2::Domain,
    kind: socket2::Type,
    protocol: socket2::Protocol,
) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(domain, kind, Some(protocol))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Creates a non-blocking Unix domain socket and starts connecting it.
fn connect_unix_nonblocking(path: &std::path::Path) -> io::Result<NetStream> {
    use socket2::{Domain, SockAddr, Type};
    let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => {}
        // A full backlog: the connect completes when the server accepts.
        Err(err)
            if err.raw_os_error() == Some(libc::EINPROGRESS)
                || err.kind() == io::ErrorKind::WouldBlock => {}
        Err(err) => return Err(err),
    }
    Ok(NetStream::Unix(std::os::unix::net::UnixStream::from(
        std::os::fd::OwnedFd::from(socket),
    )))
}

impl Source for Driver {
    fn on_ready(&mut self, core: &mut Core, key: usize, ready: Readiness) -> Step {
        self.read_closed_seen |= ready.read_closed;
        match self.phase {
            Phase::Connecting { .. } => {
                self.check_connect(core, key, ready.writable);
                // Bytes may have arrived with the connect completion, and
                // that edge will not come again.
                if ready.readable && matches!(self.phase, Phase::Open) {
                    self.read(core);
                }
            }
            Phase::Open | Phase::Lingering => {
                // Events carry the whole readiness mask, so nearly every
                // readable event is writable too: flush only if something
                // may be waiting for the kernel.
                if ready.writable && self.conn.output_pending.load(Ordering::SeqCst) {
                    self.flush(core);
                }
                if ready.readable {
                    self.read(core);
                }
            }
            Phase::New(_) | Phase::Resolving => {}
        }
        self.settle(core, key)
    }

    fn on_wake(&mut self, core: &mut Core, key: usize) -> Step {
        if let Phase::New(target) = &mut self.phase {
            let target = target.take().expect("a new driver has its target");
            self.phase = Phase::Resolving;
            self.start(core, key, target);
        }
        let bits = self.conn.requests.swap(0, Ordering::AcqRel);
        if bits != 0 && !self.released {
            self.handle_requests(core, key, bits);
        }
        if self.read_more && !self.released {
            self.read_more = false;
            self.read(core);
        }
        if self.renotify && !self.released {
            self.renotify = false;
            let len = lock(&self.conn.input).buf.len();
            if len > 0 && len >= self.conn.config.read_low_watermark {
                self.outcome.notify = true;
            }
        }
        self.settle(core, key)
    }

    fn on_timer(&mut self, core: &mut Core, key: usize, token: u64) -> Step {
        self.on_timer_token(core, token);
        self.settle(core, key)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The loop itself is going away: make every waiter see the end.
        self.release(Some(Error::Closed), false);
    }
}
