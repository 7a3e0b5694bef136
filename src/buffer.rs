//! A growable byte queue made of reference-counted chunks.
//!
//! [`Buffer`] is the Rust counterpart of libevent's `evbuffer`: an ordered
//! chain of [`Bytes`] chunks with O(1) length tracking. Data enters at the
//! back ([`push`], [`extend_from_slice`]) and leaves from the front
//! ([`read`], [`drain`], [`split_to`], [`read_line`]). Because chunks are
//! reference counted, moving data in and out usually means moving handles,
//! not bytes:
//!
//! * [`push`] appends a [`Bytes`] without copying it.
//! * [`drain`] and [`split_to`] advance or split the front chunk in place.
//! * [`read_line`] hands back the line as a slice of the chunk it lives in
//!   whenever the line does not cross a chunk boundary.
//! * [`fill_io_slices`] exposes the chunks for vectored writes without
//!   allocating.
//!
//! Bytes are only copied when the caller asks for contiguous data that
//! currently spans several chunks ([`contiguous`], or [`split_to`] across a
//! boundary), or explicitly asks for a copy ([`extend_from_slice`],
//! [`read`], [`copy_out`]).
//!
//! The buffer never stores empty chunks, so every chunk holds at least one
//! byte and the chunk count is bounded by the length.
//!
//! # Examples
//!
//! ```
//! use bytes::Bytes;
//! use evstream::buffer::{Buffer, Eol};
//!
//! let mut buf = Buffer::new();
//! buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: exa");
//! buf.push(Bytes::from_static(b"mple.com\r\n\r\n"));
//!
//! assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "GET / HTTP/1.1");
//! assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "Host: example.com");
//! assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "");
//! assert!(buf.is_empty());
//! ```
//!
//! [`push`]: Buffer::push
//! [`extend_from_slice`]: Buffer::extend_from_slice
//! [`read`]: Buffer::read
//! [`drain`]: Buffer::drain
//! [`split_to`]: Buffer::split_to
//! [`read_line`]: Buffer::read_line
//! [`fill_io_slices`]: Buffer::fill_io_slices
//! [`contiguous`]: Buffer::contiguous
//! [`copy_out`]: Buffer::copy_out

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::mem;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;

/// Small appends are merged into the last chunk while it stays below this
/// size. Many tiny chunks make vectored writes and searches slower (and
/// `writev` caps the number of slices per call), whereas merging into a
/// uniquely owned chunk is an amortized `memcpy`. Past this size a new chunk
/// is cheaper than growing, and possibly reallocating, the old one.
const COALESCE_LIMIT: usize = 8 * 1024;

/// Needles up to this length search chunk boundaries using a stack window,
/// which keeps [`Buffer::search`] allocation-free for typical delimiters.
const STACK_NEEDLE_MAX: usize = 64;

/// How a line ends, for [`Buffer::read_line`] and [`Buffer::find_eol`].
///
/// The variants match libevent's `evbuffer_eol_style`.
///
/// # Examples
///
/// ```
/// use evstream::buffer::{Buffer, Eol};
///
/// let mut buf = Buffer::from(&b"one\r\ntwo\nthree\r\n\r\nfour"[..]);
/// assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "one");
/// assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "two");
/// assert_eq!(buf.read_line(Eol::Any).unwrap(), "three");
/// // "four" has no terminator yet.
/// assert_eq!(buf.read_line(Eol::Any), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eol {
    /// A single linefeed (`EVBUFFER_EOL_LF`).
    Lf,
    /// A linefeed, optionally preceded by a carriage return
    /// (`EVBUFFER_EOL_CRLF`).
    ///
    /// A carriage return that is not directly followed by a linefeed is part
    /// of the line, so a buffer ending in `"\r"` holds no complete line yet.
    CrLf,
    /// Exactly a carriage return followed by a linefeed
    /// (`EVBUFFER_EOL_CRLF_STRICT`).
    CrLfStrict,
    /// A single NUL byte (`EVBUFFER_EOL_NUL`).
    Nul,
    /// Any run of carriage returns and linefeeds, in any order
    /// (`EVBUFFER_EOL_ANY`).
    ///
    /// A line is complete as soon as one such byte is present; the
    /// terminator is the longest run currently buffered. As in libevent, a
    /// run that continues in data not yet received shows up as an empty line
    /// on the next read.
    Any,
}

/// A queue of bytes stored as a chain of [`Bytes`] chunks.
///
/// See the [module documentation](self) for an overview.
///
/// Cloning a `Buffer` clones the chunk handles, not the bytes. Equality
/// compares contents, regardless of how they are split into chunks.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use evstream::buffer::Buffer;
///
/// let mut buf = Buffer::new();
/// buf.push(Bytes::from_static(b"hello "));
/// buf.extend_from_slice(b"world");
/// assert_eq!(buf.len(), 11);
///
/// let mut out = [0u8; 5];
/// assert_eq!(buf.read(&mut out), 5);
/// assert_eq!(&out, b"hello");
/// assert_eq!(buf, b" world"[..]);
/// ```
#[derive(Default, Clone)]
pub struct Buffer {
    /// Invariant: no chunk is empty.
    chunks: ChunkDeque,
    /// Invariant: the sum of the chunk lengths.
    len: usize,
}

/// The chunks of a buffer: a deque whose first chunk lives inline, so a
/// buffer of one chunk — the usual state of a connection's input and output
/// — allocates nothing, and one that empties gives its allocation back (an
/// idle connection keeps no memory for chunk lists).
#[derive(Default, Clone)]
struct ChunkDeque {
    /// Invariant: `None` only when `rest` is empty too.
    head: Option<Bytes>,
    rest: VecDeque<Bytes>,
}

impl ChunkDeque {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn front(&self) -> Option<&Bytes> {
        self.head.as_ref()
    }

    fn front_mut(&mut self) -> Option<&mut Bytes> {
        self.head.as_mut()
    }

    fn back_mut(&mut self) -> Option<&mut Bytes> {
        match self.rest.back_mut() {
            Some(back) => Some(back),
            None => self.head.as_mut(),
        }
    }

    fn push_back(&mut self, chunk: Bytes) {
        if self.head.is_none() {
            self.head = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    fn push_front(&mut self, chunk: Bytes) {
        if let Some(old) = self.head.replace(chunk) {
            self.rest.push_front(old);
        }
    }

    fn pop_front(&mut self) -> Option<Bytes> {
        let front = self.head.take()?;
        self.head = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            // Back to one chunk or none: the list's allocation goes.
            self.rest = VecDeque::new();
        }
        Some(front)
    }

    fn clear(&mut self) {
        self.head = None;
        self.rest = VecDeque::new();
    }

    fn append(&mut self, other: &mut ChunkDeque) {
        if self.head.is_none() {
            std::mem::swap(self, other);
            return;
        }
        if let Some(head) = other.head.take() {
            self.rest.push_back(head);
            self.rest.append(&mut other.rest);
            other.rest = VecDeque::new();
        }
    }

    fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            head: self.head.as_ref(),
            rest: self.rest.iter(),
        }
    }

    /// The chunk at `index`.
    fn get(&self, index: usize) -> Option<&Bytes> {
        match index {
            0 => self.head.as_ref(),
            n => self.rest.get(n - 1),
        }
    }

    /// The chunks from index `start` on.
    fn iter_from(&self, start: usize) -> ChunkIter<'_> {
        let mut iter = self.iter();
        if start > 0 {
            iter.nth(start - 1);
        }
        iter
    }
}

/// Iterates the chunks of a [`ChunkDeque`], front to back.
#[derive(Clone)]
struct ChunkIter<'a> {
    head: Option<&'a Bytes>,
    rest: std::collections::vec_deque::Iter<'a, Bytes>,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<&'a Bytes> {
        match self.head.take() {
            Some(head) => Some(head),
            None => self.rest.next(),
        }
    }

    fn nth(&mut self, n: usize) -> Option<&'a Bytes> {
        match (self.head.take(), n) {
            (Some(head), 0) => Some(head),
            (Some(_), n) => self.rest.nth(n - 1),
            (None, n) => self.rest.nth(n),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.len();
        (len, Some(len))
    }
}

impl DoubleEndedIterator for ChunkIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self.rest.next_back() {
            Some(back) => Some(back),
            None => self.head.take(),
        }
    }
}

impl ExactSizeIterator for ChunkIter<'_> {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }
}

/// A position inside the buffer, in both absolute and chunk-relative form,
/// so callers can look at neighbouring bytes without another linear walk.
#[derive(Debug, Clone, Copy)]
struct Pos {
    abs: usize,
    chunk: usize,
    local: usize,
}

impl Buffer {
    /// Creates an empty buffer.
    ///
    /// This does not allocate.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::new();
    /// assert!(buf.is_empty());
    /// ```
    #[inline]
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the number of bytes in the buffer.
    ///
    /// This is O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"abc"[..]);
    /// assert_eq!(buf.len(), 3);
    /// ```
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` if the buffer holds no bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// assert!(buf.is_empty());
    /// buf.extend_from_slice(b"x");
    /// assert!(!buf.is_empty());
    /// ```
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the number of chunks the bytes are stored in.
    ///
    /// Empty chunks are never stored, so this is at most [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"ab"));
    /// buf.push(Bytes::from_static(b"cd"));
    /// buf.push(Bytes::new());
    /// assert_eq!(buf.chunk_count(), 2);
    /// ```
    #[inline]
    #[must_use]
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Appends a copy of `data` to the end of the buffer.
    ///
    /// Small appends may be merged into the last chunk when the buffer owns
    /// it exclusively, which keeps the chunk count low under many small
    /// writes. Appending an empty slice does nothing. Use
    /// [`push`](Self::push) to append a [`Bytes`] without copying.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.extend_from_slice(b"hello, ");
    /// buf.extend_from_slice(b"world");
    /// assert_eq!(buf, b"hello, world"[..]);
    /// ```
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if let Some(last) = self.chunks.back_mut() {
            if last.len() + data.len() <= COALESCE_LIMIT {
                // A chunk that nobody else references can grow in place; a
                // shared one must stay immutable, so it is put back as is.
                match mem::take(last).try_into_mut() {
                    Ok(mut tail) => {
                        tail.extend_from_slice(data);
                        *last = tail.freeze();
                        return;
                    }
                    Err(shared) => *last = shared,
                }
            }
        }
        self.chunks.push_back(Bytes::copy_from_slice(data));
    }

    /// Appends `chunk` to the end of the buffer without copying it.
    ///
    /// Empty chunks are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let data = Bytes::from_static(b"payload");
    /// let mut buf = Buffer::new();
    /// buf.push(data.clone());
    /// assert_eq!(buf.front_chunk().unwrap().as_ptr(), data.as_ptr());
    /// ```
    #[inline]
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Moves every chunk of `other` to the end of `self`, leaving `other`
    /// empty.
    ///
    /// No bytes are copied.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut a = Buffer::from(&b"foo"[..]);
    /// let mut b = Buffer::from(&b"bar"[..]);
    /// a.append(&mut b);
    /// assert_eq!(a, b"foobar"[..]);
    /// assert!(b.is_empty());
    /// ```
    pub fn append(&mut self, other: &mut Buffer) {
        self.len += mem::take(&mut other.len);
        self.chunks.append(&mut other.chunks);
    }

    /// Copies bytes from the front of the buffer into `dst` and removes
    /// them, returning how many were copied.
    ///
    /// The count is `min(dst.len(), self.len())`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::from(&b"abcdef"[..]);
    /// let mut out = [0u8; 4];
    /// assert_eq!(buf.read(&mut out), 4);
    /// assert_eq!(&out, b"abcd");
    /// assert_eq!(buf.read(&mut out), 2);
    /// assert_eq!(&out[..2], b"ef");
    /// assert_eq!(buf.read(&mut out), 0);
    /// ```
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        let mut copied = 0;
        while copied < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let take = front.len().min(n - copied);
            dst[copied..copied + take].copy_from_slice(&front[..take]);
            if take == front.len() {
                self.chunks.pop_front();
            } else {
                front.advance(take);
            }
            copied += take;
        }
        self.len -= n;
        n
    }

    /// Removes the first `n` bytes.
    ///
    /// Chunks are released or advanced in place; nothing is copied.
    ///
    /// # Panics
    ///
    /// Panics if `n > self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::from(&b"hello world"[..]);
    /// buf.drain(6);
    /// assert_eq!(buf, b"world"[..]);
    /// ```
    pub fn drain(&mut self, n: usize) {
        assert!(n <= self.len, "drain out of bounds: {} > {}", n, self.len);
        self.len -= n;
        let mut rem = n;
        while rem > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= rem {
                rem -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(rem);
                rem = 0;
            }
        }
    }

    /// Removes the first `n` bytes and returns them as one [`Bytes`].
    ///
    /// When the bytes lie within the front chunk, the result shares that
    /// chunk's memory and nothing is copied. Otherwise the bytes are gathered
    /// into a single allocation, reusing the front chunk's storage when the
    /// buffer is its only owner.
    ///
    /// # Panics
    ///
    /// Panics if `n > self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let chunk = Bytes::from_static(b"header:body");
    /// let mut buf = Buffer::from(chunk.clone());
    /// let header = buf.split_to(6);
    /// assert_eq!(header, "header");
    /// assert_eq!(header.as_ptr(), chunk.as_ptr());
    /// assert_eq!(buf, b":body"[..]);
    /// ```
    pub fn split_to(&mut self, n: usize) -> Bytes {
        assert!(
            n <= self.len,
            "split_to out of bounds: {} > {}",
            n,
            self.len
        );
        if n == 0 {
            return Bytes::new();
        }
        if self.chunks[0].len() < n {
            self.pullup(n);
        }
        self.len -= n;
        let front = &mut self.chunks[0];
        if front.len() == n {
            self.chunks.pop_front().unwrap_or_default()
        } else {
            front.split_to(n)
        }
    }

    /// Removes and returns the whole contents, leaving `self` empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::from(&b"data"[..]);
    /// let all = buf.take_all();
    /// assert!(buf.is_empty());
    /// assert_eq!(all, b"data"[..]);
    /// ```
    #[inline]
    #[must_use = "use `clear` to discard the contents"]
    pub fn take_all(&mut self) -> Buffer {
        mem::take(self)
    }

    /// Returns the first chunk, or `None` if the buffer is empty.
    ///
    /// The chunk is never empty. Together with [`drain`](Self::drain) this
    /// allows consuming the buffer without copying, as
    /// `AsyncBufRead::poll_fill_buf` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// assert!(buf.front_chunk().is_none());
    /// buf.push(Bytes::from_static(b"first"));
    /// buf.push(Bytes::from_static(b"second"));
    /// assert_eq!(buf.front_chunk().unwrap(), "first");
    /// ```
    #[inline]
    #[must_use]
    pub fn front_chunk(&self) -> Option<&Bytes> {
        self.chunks.front()
    }

    /// Removes and returns the first chunk without copying it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"first"));
    /// buf.push(Bytes::from_static(b"second"));
    /// assert_eq!(buf.pop_front_chunk().unwrap(), "first");
    /// assert_eq!(buf.len(), 6);
    /// ```
    pub fn pop_front_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.pop_front()?;
        self.len -= chunk.len();
        Some(chunk)
    }

    /// Returns an iterator over the chunks, front to back, without removing
    /// them.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"ab"));
    /// buf.push(Bytes::from_static(b"cd"));
    /// let chunks: Vec<&[u8]> = buf.chunks().collect();
    /// assert_eq!(chunks, [&b"ab"[..], &b"cd"[..]]);
    /// ```
    #[must_use]
    pub fn chunks(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.chunks.iter().map(|chunk| &chunk[..])
    }

    /// Fills `dst` with slices of the leading chunks, for use with
    /// [`Write::write_vectored`](std::io::Write::write_vectored), and returns
    /// how many slices were filled.
    ///
    /// This does not allocate. Slots beyond the returned count are left
    /// untouched. After a vectored write, [`drain`](Self::drain) the number
    /// of bytes written.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::IoSlice;
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"ab"));
    /// buf.push(Bytes::from_static(b"cd"));
    /// buf.push(Bytes::from_static(b"ef"));
    ///
    /// let mut slices = [IoSlice::new(&[]); 2];
    /// assert_eq!(buf.fill_io_slices(&mut slices), 2);
    /// assert_eq!(&*slices[1], b"cd");
    /// ```
    pub fn fill_io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// Copies bytes from the front of the buffer into `dst` without removing
    /// them, returning how many were copied.
    ///
    /// The count is `min(dst.len(), self.len())`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"abc"[..]);
    /// let mut out = [0u8; 2];
    /// assert_eq!(buf.copy_out(&mut out), 2);
    /// assert_eq!(&out, b"ab");
    /// assert_eq!(buf.len(), 3);
    /// ```
    #[inline]
    pub fn copy_out(&self, dst: &mut [u8]) -> usize {
        self.copy_out_from(0, dst)
    }

    /// Copies bytes starting at `offset` into `dst` without removing them,
    /// returning how many were copied.
    ///
    /// The count is `min(dst.len(), self.len() - offset)`, and zero when
    /// `offset >= self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"abcdef"[..]);
    /// let mut out = [0u8; 8];
    /// assert_eq!(buf.copy_out_from(4, &mut out), 2);
    /// assert_eq!(&out[..2], b"ef");
    /// assert_eq!(buf.copy_out_from(9, &mut out), 0);
    /// ```
    pub fn copy_out_from(&self, offset: usize, dst: &mut [u8]) -> usize {
        let Some(pos) = self.locate(offset) else {
            return 0;
        };
        let n = dst.len().min(self.len - offset);
        let mut copied = 0;
        let mut local = pos.local;
        for chunk in self.chunks.iter_from(pos.chunk) {
            if copied == n {
                break;
            }
            let take = (chunk.len() - local).min(n - copied);
            dst[copied..copied + take].copy_from_slice(&chunk[local..local + take]);
            copied += take;
            local = 0;
        }
        copied
    }

    /// Makes the first `n` bytes contiguous and returns them.
    ///
    /// This is libevent's `evbuffer_pullup`. If the front chunk already holds
    /// `n` bytes, nothing changes. Otherwise the leading chunks are merged
    /// into one, copying only the bytes needed; when the buffer is the sole
    /// owner of the front chunk, that chunk's storage is extended rather than
    /// copied.
    ///
    /// # Panics
    ///
    /// Panics if `n > self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"\x00\x00"));
    /// buf.push(Bytes::from_static(b"\x01\x00rest"));
    ///
    /// let header = buf.contiguous(4);
    /// assert_eq!(u32::from_be_bytes(header.try_into().unwrap()), 256);
    /// assert_eq!(buf.front_chunk().unwrap().len(), 4);
    /// assert_eq!(buf.len(), 8);
    /// ```
    pub fn contiguous(&mut self, n: usize) -> &[u8] {
        assert!(
            n <= self.len,
            "contiguous out of bounds: {} > {}",
            n,
            self.len
        );
        if n == 0 {
            return &[];
        }
        if self.chunks[0].len() < n {
            self.pullup(n);
        }
        &self.chunks[0][..n]
    }

    /// Returns the byte at `index`, or `None` if it is out of bounds.
    ///
    /// This walks the chunk list (from whichever end is closer), so it costs
    /// O(chunks); prefer [`chunks`](Self::chunks) or
    /// [`copy_out_from`](Self::copy_out_from) for bulk access.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"abc"[..]);
    /// assert_eq!(buf.get(1), Some(b'b'));
    /// assert_eq!(buf.get(3), None);
    /// ```
    #[must_use]
    pub fn get(&self, index: usize) -> Option<u8> {
        let pos = self.locate(index)?;
        Some(self.chunks[pos.chunk][pos.local])
    }

    /// Returns the offset of the first occurrence of `needle`, or `None`.
    ///
    /// Matches that straddle chunk boundaries are found without copying the
    /// buffer. An empty needle matches at offset 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"Content-Length: 5\r"));
    /// buf.push(Bytes::from_static(b"\n\r\nhello"));
    /// assert_eq!(buf.search(b"\r\n\r\n"), Some(17));
    /// assert_eq!(buf.search(b"xyz"), None);
    /// ```
    #[inline]
    #[must_use]
    pub fn search(&self, needle: &[u8]) -> Option<usize> {
        self.search_from(0, needle)
    }

    /// Returns the offset of the first occurrence of `needle` that starts at
    /// or after `start`, or `None`.
    ///
    /// The returned offset is relative to the front of the buffer, not to
    /// `start`. An empty needle matches at `start` if `start <= self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"abcabc"[..]);
    /// assert_eq!(buf.search_from(1, b"abc"), Some(3));
    /// assert_eq!(buf.search_from(4, b"abc"), None);
    /// ```
    #[must_use]
    pub fn search_from(&self, start: usize, needle: &[u8]) -> Option<usize> {
        if start > self.len {
            return None;
        }
        match needle.len() {
            0 => Some(start),
            m if m > self.len - start => None,
            1 => self.find_byte_from(start, needle[0]).map(|pos| pos.abs),
            _ => self.search_with(start, &Finder::new(needle)),
        }
    }

    /// Returns the offset of the first occurrence of `byte`, or `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"key=value"[..]);
    /// assert_eq!(buf.find_byte(b'='), Some(3));
    /// assert_eq!(buf.find_byte(b'!'), None);
    /// ```
    #[must_use]
    pub fn find_byte(&self, byte: u8) -> Option<usize> {
        self.find_byte_from(0, byte).map(|pos| pos.abs)
    }

    /// Returns the line length and terminator length of the first complete
    /// line, without removing anything.
    ///
    /// Returns `None` if the buffer does not yet contain a terminator of the
    /// given style. See [`Eol`] for the styles.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::{Buffer, Eol};
    ///
    /// let buf = Buffer::from(&b"abc\r\ndef"[..]);
    /// assert_eq!(buf.find_eol(Eol::CrLf), Some((3, 2)));
    /// assert_eq!(buf.find_eol(Eol::Lf), Some((4, 1)));
    /// assert_eq!(buf.find_eol(Eol::Nul), None);
    /// ```
    #[must_use]
    pub fn find_eol(&self, eol: Eol) -> Option<(usize, usize)> {
        self.find_eol_from(0, eol)
    }

    /// Like [`find_eol`](Self::find_eol), for a caller that already knows
    /// the first `start` bytes hold no complete line ending: only the rest
    /// is searched (plus, for the CR LF styles, the byte before `start`,
    /// which may be the CR of a terminator).
    ///
    /// A decoder that found no line in the buffer's first `start` bytes
    /// resumes here when more bytes have arrived, so a long line arriving
    /// in many pieces is searched once in total rather than once per piece.
    /// The answer is the same as [`find_eol`](Self::find_eol) gives whenever
    /// `find_eol` would have found nothing in the first `start` bytes alone;
    /// otherwise it is the first line ending found from `start` on. A
    /// `start` past the end searches nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::{Buffer, Eol};
    ///
    /// let mut buf = Buffer::from(&b"abc\r"[..]);
    /// assert_eq!(buf.find_eol(Eol::CrLfStrict), None);
    /// let searched = buf.len();
    /// buf.extend_from_slice(b"\ndef");
    /// assert_eq!(buf.find_eol_from(searched, Eol::CrLfStrict), Some((3, 2)));
    /// assert_eq!(buf.find_eol_from(searched, Eol::CrLf), Some((3, 2)));
    /// ```
    #[must_use]
    pub fn find_eol_from(&self, start: usize, eol: Eol) -> Option<(usize, usize)> {
        let start = start.min(self.len);
        match eol {
            Eol::Lf => self.find_byte_from(start, b'\n').map(|at| (at.abs, 1)),
            Eol::Nul => self.find_byte_from(start, 0).map(|at| (at.abs, 1)),
            // A terminator that starts at `start - 1` ends after `start`.
            Eol::CrLfStrict => self
                .search_from(start.saturating_sub(1), b"\r\n")
                .map(|at| (at, 2)),
            Eol::CrLf => {
                // The first LF ends the line; any CR before it that is not
                // directly followed by LF belongs to the line.
                let lf = self.find_byte_from(start, b'\n')?;
                if self.byte_before(lf) == Some(b'\r') {
                    Some((lf.abs - 1, 2))
                } else {
                    Some((lf.abs, 1))
                }
            }
            Eol::Any => {
                let first = self.scan_from(start, |s| memchr::memchr2(b'\r', b'\n', s))?;
                Some((first.abs, self.eol_run_len(first)))
            }
        }
    }

    /// Returns the offset of the first byte at or after `start` that is
    /// `a` or `b`, or `None`.
    ///
    /// The chunks are searched with `memchr2`, from the chunk holding
    /// `start` (found from whichever end of the chain is nearer).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let buf = Buffer::from(&b"a=b;c"[..]);
    /// assert_eq!(buf.find_either_from(0, b';', b'='), Some(1));
    /// assert_eq!(buf.find_either_from(2, b';', b'='), Some(3));
    /// assert_eq!(buf.find_either_from(4, b';', b'='), None);
    /// ```
    #[must_use]
    pub fn find_either_from(&self, start: usize, a: u8, b: u8) -> Option<usize> {
        self.scan_from(start, |s| memchr::memchr2(a, b, s))
            .map(|pos| pos.abs)
    }

    /// Returns the bytes from offset `start` to the end as slices of the
    /// chunks they lie in, front to back, without copying or removing them.
    ///
    /// The first slice starts at `start` inside its chunk; every slice is
    /// non-empty. The chunk holding `start` is found from whichever end of
    /// the chain is nearer, so a scan that resumes near the end of a long
    /// chain does not walk it from the front. A `start` at or past the end
    /// yields nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::new();
    /// buf.push(Bytes::from_static(b"abc"));
    /// buf.push(Bytes::from_static(b"de"));
    /// let rest: Vec<&[u8]> = buf.chunks_from(1).collect();
    /// assert_eq!(rest, [&b"bc"[..], &b"de"[..]]);
    /// assert_eq!(buf.chunks_from(5).count(), 0);
    /// ```
    pub fn chunks_from(&self, start: usize) -> impl Iterator<Item = &[u8]> {
        let (first, local) = match self.locate(start) {
            Some(pos) => (pos.chunk, pos.local),
            None => (self.chunks.len(), 0),
        };
        self.chunks
            .iter_from(first)
            .enumerate()
            .map(move |(i, chunk)| if i == 0 { &chunk[local..] } else { &chunk[..] })
    }

    /// Removes the first complete line and returns it without its
    /// terminator.
    ///
    /// This is libevent's `evbuffer_readln`. The terminator is removed from
    /// the buffer too. If no complete line is buffered yet, returns `None`
    /// and leaves the buffer untouched. When the line lies within the front
    /// chunk, the result shares that chunk's memory and nothing is copied.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::{Buffer, Eol};
    ///
    /// let mut buf = Buffer::from(&b"PING\r\nPON"[..]);
    /// assert_eq!(buf.read_line(Eol::CrLfStrict).unwrap(), "PING");
    /// assert_eq!(buf.read_line(Eol::CrLfStrict), None);
    ///
    /// buf.extend_from_slice(b"G\r\n");
    /// assert_eq!(buf.read_line(Eol::CrLfStrict).unwrap(), "PONG");
    /// assert!(buf.is_empty());
    /// ```
    pub fn read_line(&mut self, eol: Eol) -> Option<Bytes> {
        let (line_len, term_len) = self.find_eol(eol)?;
        let line = self.split_to(line_len);
        self.drain(term_len);
        Some(line)
    }

    /// Removes all bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::from(&b"abc"[..]);
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.chunk_count(), 0);
    /// ```
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Copies the contents into a new `Vec`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use evstream::buffer::Buffer;
    ///
    /// let mut buf = Buffer::from(&b"ab"[..]);
    /// buf.push(Bytes::from_static(b"cd"));
    /// assert_eq!(buf.to_vec(), b"abcd");
    /// ```
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }

    /// Merges the leading chunks so that the front chunk holds at least `n`
    /// bytes. The caller guarantees `self.chunks[0].len() < n <= self.len`.
    fn pullup(&mut self, n: usize) {
        let Some(first) = self.chunks.pop_front() else {
            return;
        };
        let mut merged = match first.try_into_mut() {
            // Sole owner: grow the existing allocation instead of copying
            // the front chunk into a new one.
            Ok(mut merged) => {
                merged.reserve(n - merged.len());
                merged
            }
            Err(first) => {
                let mut merged = BytesMut::with_capacity(n);
                merged.extend_from_slice(&first);
                merged
            }
        };
        while merged.len() < n {
            let Some(chunk) = self.chunks.front_mut() else {
                break;
            };
            let need = n - merged.len();
            if chunk.len() <= need {
                merged.extend_from_slice(chunk);
                self.chunks.pop_front();
            } else {
                merged.extend_from_slice(&chunk[..need]);
                chunk.advance(need);
            }
        }
        self.chunks.push_front(merged.freeze());
    }

    /// Maps an absolute offset to its chunk, or `None` if out of bounds.
    fn locate(&self, offset: usize) -> Option<Pos> {
        if offset >= self.len {
            return None;
        }
        // Walk from the nearer end: lookups near the back (the most recently
        // appended data) are common when scanning for delimiters.
        if offset < self.len / 2 {
            let mut base = 0;
            for (i, chunk) in self.chunks.iter().enumerate() {
                if offset < base + chunk.len() {
                    return Some(Pos {
                        abs: offset,
                        chunk: i,
                        local: offset - base,
                    });
                }
                base += chunk.len();
            }
        } else {
            let mut end = self.len;
            for (i, chunk) in self.chunks.iter().enumerate().rev() {
                let base = end - chunk.len();
                if offset >= base {
                    return Some(Pos {
                        abs: offset,
                        chunk: i,
                        local: offset - base,
                    });
                }
                end = base;
            }
        }
        None
    }

    /// Runs `find` over each chunk from `start` onwards and returns the
    /// first hit. `find` returns an index into the slice it is given.
    fn scan_from(&self, start: usize, mut find: impl FnMut(&[u8]) -> Option<usize>) -> Option<Pos> {
        let first = self.locate(start)?;
        let mut base = start - first.local;
        let mut local = first.local;
        for (i, chunk) in self.chunks.iter_from(first.chunk).enumerate() {
            if let Some(at) = find(&chunk[local..]) {
                return Some(Pos {
                    abs: base + local + at,
                    chunk: first.chunk + i,
                    local: local + at,
                });
            }
            base += chunk.len();
            local = 0;
        }
        None
    }

    fn find_byte_from(&self, start: usize, byte: u8) -> Option<Pos> {
        // The common case first: a delimiter in the front chunk, found
        // without walking the chunk list (a line reader's every call).
        if let Some(front) = self.chunks.front() {
            if start < front.len() {
                if let Some(at) = memchr::memchr(byte, &front[start..]) {
                    return Some(Pos {
                        abs: start + at,
                        chunk: 0,
                        local: start + at,
                    });
                }
                if self.chunks.len() == 1 {
                    return None;
                }
            }
        }
        self.scan_from(start, |s| memchr::memchr(byte, s))
    }

    fn byte_before(&self, pos: Pos) -> Option<u8> {
        if pos.local > 0 {
            Some(self.chunks[pos.chunk][pos.local - 1])
        } else if pos.chunk > 0 {
            self.chunks[pos.chunk - 1].last().copied()
        } else {
            None
        }
    }

    /// Length of the run of CR/LF bytes starting at `from`, which may span
    /// chunks. Terminators are short, so a byte loop is fine here.
    fn eol_run_len(&self, from: Pos) -> usize {
        let mut run = 0;
        let mut local = from.local;
        for chunk in self.chunks.iter_from(from.chunk) {
            let rest = &chunk[local..];
            match rest.iter().position(|&b| b != b'\r' && b != b'\n') {
                Some(at) => return run + at,
                None => run += rest.len(),
            }
            local = 0;
        }
        run
    }

    /// Substring search for needles of at least two bytes, with
    /// `start + needle.len() <= self.len`.
    ///
    /// Every match either lies inside one chunk, where `finder` runs
    /// directly on the chunk, or straddles a chunk boundary. A match
    /// straddling the boundary at offset `b` lies within
    /// `[b - (m - 1), b + (m - 1))`, and conversely every match inside that
    /// window straddles `b` (it is too short to hold a match on either side
    /// alone). Copying that window (at most `2 * (m - 1)` bytes) into
    /// scratch space therefore finds exactly the straddling matches. Checking
    /// each boundary before the chunk that follows it visits matches in
    /// order of their start offset, so the first hit is the answer.
    fn search_with(&self, start: usize, finder: &Finder<'_>) -> Option<usize> {
        let m = finder.needle().len();
        let window_len = 2 * (m - 1);
        let mut stack = [0u8; 2 * (STACK_NEEDLE_MAX - 1)];
        let mut heap = Vec::new();
        let window: &mut [u8] = if window_len <= stack.len() {
            &mut stack[..window_len]
        } else {
            heap.resize(window_len, 0);
            &mut heap
        };

        let first = self.locate(start)?;
        let mut base = start - first.local;
        for (i, chunk) in self.chunks.iter_from(first.chunk).enumerate() {
            let index = first.chunk + i;
            let from = if i == 0 {
                first.local
            } else {
                if let Some(at) = self.straddling_match(index, base, start, finder, window) {
                    return Some(at);
                }
                0
            };
            if chunk.len() - from >= m {
                if let Some(at) = finder.find(&chunk[from..]) {
                    return Some(base + from + at);
                }
            }
            base += chunk.len();
        }
        None
    }

    /// Finds the first match that starts at or after `start` and crosses the
    /// boundary at absolute offset `boundary`, where chunk `index` begins.
    fn straddling_match(
        &self,
        index: usize,
        boundary: usize,
        start: usize,
        finder: &Finder<'_>,
        window: &mut [u8],
    ) -> Option<usize> {
        let m = finder.needle().len();
        let lo = boundary.saturating_sub(m - 1).max(start);
        let left = boundary - lo;
        let right = (m - 1).min(self.len - boundary);
        if left + right < m {
            return None;
        }

        // The left part may span several short chunks before the boundary.
        let mut fill = left;
        for chunk in self.chunks.iter().take(index).rev() {
            let take = chunk.len().min(fill);
            window[fill - take..fill].copy_from_slice(&chunk[chunk.len() - take..]);
            fill -= take;
            if fill == 0 {
                break;
            }
        }
        let end = left + right;
        let mut fill = left;
        for chunk in self.chunks.iter_from(index) {
            let take = chunk.len().min(end - fill);
            window[fill..fill + take].copy_from_slice(&chunk[..take]);
            fill += take;
            if fill == end {
                break;
            }
        }
        finder.find(&window[..end]).map(|at| lo + at)
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl From<&[u8]> for Buffer {
    fn from(data: &[u8]) -> Self {
        let mut buf = Buffer::new();
        buf.extend_from_slice(data);
        buf
    }
}

impl From<Vec<u8>> for Buffer {
    /// Takes ownership of the vector without copying its contents.
    fn from(data: Vec<u8>) -> Self {
        Buffer::from(Bytes::from(data))
    }
}

impl From<Bytes> for Buffer {
    fn from(chunk: Bytes) -> Self {
        let mut buf = Buffer::new();
        buf.push(chunk);
        buf
    }
}

impl From<BytesMut> for Buffer {
    fn from(chunk: BytesMut) -> Self {
        Buffer::from(chunk.freeze())
    }
}

impl From<Buffer> for Bytes {
    /// Returns the contents as one `Bytes`, copying only if they span more
    /// than one chunk.
    fn from(mut buf: Buffer) -> Self {
        let len = buf.len;
        buf.split_to(len)
    }
}

impl PartialEq for Buffer {
    fn eq(&self, other: &Buffer) -> bool {
        if self.len != other.len {
            return false;
        }
        let mut theirs = other.chunks.iter().map(|c| &c[..]);
        let mut rest: &[u8] = &[];
        for mut ours in self.chunks.iter().map(|c| &c[..]) {
            while !ours.is_empty() {
                if rest.is_empty() {
                    match theirs.next() {
                        Some(next) => rest = next,
                        None => return false,
                    }
                }
                let n = ours.len().min(rest.len());
                if ours[..n] != rest[..n] {
                    return false;
                }
                ours = &ours[n..];
                rest = &rest[n..];
            }
        }
        true
    }
}

impl Eq for Buffer {}

impl PartialEq<[u8]> for Buffer {
    fn eq(&self, other: &[u8]) -> bool {
        if self.len != other.len() {
            return false;
        }
        let mut rest = other;
        for chunk in &self.chunks {
            let (head, tail) = rest.split_at(chunk.len());
            if head != chunk.as_ref() {
                return false;
            }
            rest = tail;
        }
        true
    }
}

impl PartialEq<&[u8]> for Buffer {
    fn eq(&self, other: &&[u8]) -> bool {
        *self == **other
    }
}

impl PartialEq<Vec<u8>> for Buffer {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self == other[..]
    }
}

/// Reading drains the buffer; it never blocks and returns `Ok(0)` once the
/// buffer is empty.
impl io::Read for Buffer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(Buffer::read(self, buf))
    }
}

/// Writing appends a copy of the data; it never fails.
impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for buf in bufs {
            self.extend_from_slice(buf);
            n += buf.len();
        }
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Consuming through [`Buf`] drains the buffer, and
/// [`copy_to_bytes`](Buf::copy_to_bytes) is as cheap as
/// [`Buffer::split_to`].
impl Buf for Buffer {
    #[inline]
    fn remaining(&self) -> usize {
        self.len
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |chunk| chunk.as_ref())
    }

    fn advance(&mut self, cnt: usize) {
        self.drain(cnt);
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.fill_io_slices(dst)
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.split_to(len)
    }
}

impl std::ops::Index<usize> for ChunkDeque {
    type Output = Bytes;

    fn index(&self, index: usize) -> &Bytes {
        self.get(index).expect("chunk index in bounds")
    }
}

impl std::ops::IndexMut<usize> for ChunkDeque {
    fn index_mut(&mut self, index: usize) -> &mut Bytes {
        match index {
            0 => self.head.as_mut(),
            n => self.rest.get_mut(n - 1),
        }
        .expect("chunk index in bounds")
    }
}

impl<'a> IntoIterator for &'a ChunkDeque {
    type Item = &'a Bytes;
    type IntoIter = ChunkIter<'a>;

    fn into_iter(self) -> ChunkIter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Builds a buffer whose chunks are exactly `parts` (empty parts are
    /// dropped by `push`).
    fn chunked(parts: &[&[u8]]) -> Buffer {
        let mut buf = Buffer::new();
        for part in parts {
            buf.push(Bytes::copy_from_slice(part));
        }
        buf
    }

    /// One chunk per byte: the worst case for boundary handling.
    fn bytewise(data: &[u8]) -> Buffer {
        let mut buf = Buffer::new();
        for &b in data {
            buf.push(Bytes::copy_from_slice(&[b]));
        }
        buf
    }

    fn check_invariants(buf: &Buffer) {
        assert!(buf.chunks.iter().all(|c| !c.is_empty()), "empty chunk");
        assert_eq!(buf.len, buf.chunks.iter().map(Bytes::len).sum::<usize>());
    }

    #[test]
    fn empty_buffer() {
        let mut buf = Buffer::new();
        assert_eq!(buf.len(), 0);
        assert!(buf.is_empty());
        assert_eq!(buf.chunk_count(), 0);
        assert_eq!(buf.read(&mut [0; 4]), 0);
        assert_eq!(buf.copy_out(&mut [0; 4]), 0);
        assert_eq!(buf.copy_out_from(0, &mut [0; 4]), 0);
        assert_eq!(buf.get(0), None);
        assert_eq!(buf.search(b""), Some(0));
        assert_eq!(buf.search(b"a"), None);
        assert_eq!(buf.search(b"ab"), None);
        assert_eq!(buf.search_from(1, b""), None);
        assert_eq!(buf.find_byte(b'a'), None);
        assert_eq!(buf.front_chunk(), None);
        assert_eq!(buf.pop_front_chunk(), None);
        assert_eq!(buf.chunks().count(), 0);
        assert_eq!(buf.contiguous(0), b"");
        assert_eq!(buf.split_to(0), "");
        buf.drain(0);
        for eol in [Eol::Lf, Eol::CrLf, Eol::CrLfStrict, Eol::Nul, Eol::Any] {
            assert_eq!(buf.find_eol(eol), None);
            assert_eq!(buf.read_line(eol), None);
        }
        let mut slices = [IoSlice::new(b"x")];
        assert_eq!(buf.fill_io_slices(&mut slices), 0);
        assert_eq!(&*slices[0], b"x");
        assert_eq!(buf.to_vec(), b"");
        assert_eq!(Bytes::from(buf), "");
    }

    #[test]
    fn push_ignores_empty_chunks() {
        let mut buf = Buffer::new();
        buf.push(Bytes::new());
        buf.extend_from_slice(b"");
        assert_eq!(buf.chunk_count(), 0);
        buf.push(Bytes::from_static(b"a"));
        buf.push(Bytes::new());
        assert_eq!(buf.chunk_count(), 1);
        assert_eq!(buf.len(), 1);
        check_invariants(&buf);
    }

    #[test]
    fn extend_from_slice_coalesces_small_appends() {
        let mut buf = Buffer::new();
        for _ in 0..100 {
            buf.extend_from_slice(b"0123456789");
        }
        assert_eq!(buf.len(), 1000);
        assert_eq!(buf.chunk_count(), 1);
        assert_eq!(buf, b"0123456789".repeat(100));
        check_invariants(&buf);
    }

    #[test]
    fn extend_from_slice_respects_coalesce_limit() {
        let mut buf = Buffer::new();
        let block = vec![7u8; COALESCE_LIMIT / 2 + 1];
        buf.extend_from_slice(&block);
        buf.extend_from_slice(&block);
        assert_eq!(buf.chunk_count(), 2);
        assert_eq!(buf.len(), block.len() * 2);
    }

    #[test]
    fn extend_from_slice_never_mutates_shared_chunks() {
        let shared = Bytes::from(b"abc".to_vec());
        let mut buf = Buffer::new();
        buf.push(shared.clone());
        buf.extend_from_slice(b"def");
        assert_eq!(shared, "abc");
        assert_eq!(buf.chunk_count(), 2);
        assert_eq!(buf, b"abcdef"[..]);

        // A static chunk is never unique either.
        let mut buf = Buffer::from(Bytes::from_static(b"xy"));
        buf.extend_from_slice(b"z");
        assert_eq!(buf, b"xyz"[..]);
        assert_eq!(buf.chunk_count(), 2);
    }

    #[test]
    fn extend_after_drain_of_coalesced_chunk() {
        let mut buf = Buffer::new();
        let mut model = Vec::new();
        for i in 0..2000u32 {
            let piece = i.to_le_bytes();
            buf.extend_from_slice(&piece);
            model.extend_from_slice(&piece);
            if i % 3 == 0 {
                let n = buf.len().min(5);
                buf.drain(n);
                model.drain(..n);
            }
            assert_eq!(buf, model);
        }
        check_invariants(&buf);
    }

    #[test]
    fn append_moves_chunks() {
        let mut a = chunked(&[b"ab", b"c"]);
        let mut b = chunked(&[b"de", b"f"]);
        a.append(&mut b);
        assert_eq!(a, b"abcdef"[..]);
        assert_eq!(a.chunk_count(), 4);
        assert!(b.is_empty());
        assert_eq!(b.chunk_count(), 0);
        check_invariants(&a);
        check_invariants(&b);
    }

    #[test]
    fn read_across_chunks() {
        let mut buf = chunked(&[b"ab", b"cde", b"f"]);
        let mut out = [0u8; 4];
        assert_eq!(buf.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(buf.chunk_count(), 2);
        assert_eq!(buf, b"ef"[..]);
        assert_eq!(buf.read(&mut []), 0);
        assert_eq!(buf.read(&mut out), 2);
        assert_eq!(&out[..2], b"ef");
        assert!(buf.is_empty());
        check_invariants(&buf);
    }

    #[test]
    fn drain_whole_and_partial_chunks() {
        let mut buf = chunked(&[b"ab", b"cde", b"f"]);
        buf.drain(2);
        assert_eq!(buf.chunk_count(), 2);
        buf.drain(1);
        assert_eq!(buf, b"def"[..]);
        buf.drain(3);
        assert!(buf.is_empty());
        assert_eq!(buf.chunk_count(), 0);
    }

    #[test]
    fn drain_does_not_copy() {
        let chunk = Bytes::from_static(b"hello world");
        let mut buf = Buffer::from(chunk.clone());
        buf.drain(6);
        assert_eq!(buf.front_chunk().unwrap().as_ptr(), chunk[6..].as_ptr());
    }

    #[test]
    #[should_panic(expected = "drain out of bounds")]
    fn drain_past_end_panics() {
        Buffer::from(&b"abc"[..]).drain(4);
    }

    #[test]
    fn split_to_within_front_chunk_is_zero_copy() {
        let chunk = Bytes::from(b"hello world".to_vec());
        let mut buf = Buffer::from(chunk.clone());
        buf.push(Bytes::from_static(b"!"));

        let head = buf.split_to(5);
        assert_eq!(head, "hello");
        assert_eq!(head.as_ptr(), chunk.as_ptr());

        // Taking exactly the rest of the front chunk is zero-copy too.
        let rest = buf.split_to(6);
        assert_eq!(rest, " world");
        assert_eq!(rest.as_ptr(), chunk[5..].as_ptr());
        assert_eq!(buf, b"!"[..]);
    }

    #[test]
    fn split_to_across_chunks() {
        let mut buf = chunked(&[b"ab", b"cd", b"ef"]);
        assert_eq!(buf.split_to(3), "abc");
        assert_eq!(buf, b"def"[..]);
        assert_eq!(buf.split_to(3), "def");
        assert!(buf.is_empty());
        assert_eq!(buf.chunk_count(), 0);

        // A shared front chunk must not be modified while gathering.
        let shared = Bytes::from(b"ab".to_vec());
        let mut buf = Buffer::from(shared.clone());
        buf.push(Bytes::from_static(b"cd"));
        assert_eq!(buf.split_to(4), "abcd");
        assert_eq!(shared, "ab");
    }

    #[test]
    #[should_panic(expected = "split_to out of bounds")]
    fn split_to_past_end_panics() {
        chunked(&[b"a", b"b"]).split_to(3);
    }

    #[test]
    fn take_all_and_clear() {
        let mut buf = chunked(&[b"ab", b"cd"]);
        let taken = buf.take_all();
        assert!(buf.is_empty());
        assert_eq!(taken, b"abcd"[..]);
        let mut buf = taken;
        buf.clear();
        assert!(buf.is_empty());
        assert_eq!(buf.chunk_count(), 0);
    }

    #[test]
    fn front_chunk_and_pop_front_chunk() {
        let a = Bytes::from_static(b"first");
        let mut buf = Buffer::from(a.clone());
        buf.push(Bytes::from_static(b"second"));
        assert_eq!(buf.front_chunk().unwrap().as_ptr(), a.as_ptr());
        let popped = buf.pop_front_chunk().unwrap();
        assert_eq!(popped.as_ptr(), a.as_ptr());
        assert_eq!(buf.len(), 6);
        assert_eq!(buf.pop_front_chunk().unwrap(), "second");
        assert_eq!(buf.pop_front_chunk(), None);
        assert_eq!(buf.len(), 0);
    }

    #[test]
    fn chunks_iterates_without_draining() {
        let buf = chunked(&[b"ab", b"c"]);
        assert_eq!(buf.chunks().len(), 2);
        assert_eq!(buf.chunks().next_back(), Some(&b"c"[..]));
        assert_eq!(buf.chunks().collect::<Vec<_>>(), [&b"ab"[..], &b"c"[..]]);
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn fill_io_slices_is_bounded_by_dst_and_chunks() {
        let buf = chunked(&[b"ab", b"cd", b"e"]);
        let mut few = [IoSlice::new(&[]); 2];
        assert_eq!(buf.fill_io_slices(&mut few), 2);
        assert_eq!(&*few[0], b"ab");
        assert_eq!(&*few[1], b"cd");

        let mut many = [IoSlice::new(b"untouched"); 5];
        assert_eq!(buf.fill_io_slices(&mut many), 3);
        assert_eq!(&*many[2], b"e");
        assert_eq!(&*many[3], b"untouched");

        assert_eq!(buf.fill_io_slices(&mut []), 0);
    }

    #[test]
    fn vectored_write_then_drain() {
        let mut buf = chunked(&[b"hello ", b"vectored ", b"world"]);
        let mut sink = Vec::new();
        while !buf.is_empty() {
            let mut slices = [IoSlice::new(&[]); 2];
            let n = buf.fill_io_slices(&mut slices);
            let written = sink.write_vectored(&slices[..n]).unwrap();
            buf.drain(written);
        }
        assert_eq!(sink, b"hello vectored world");
    }

    #[test]
    fn copy_out_and_copy_out_from() {
        let buf = chunked(&[b"ab", b"cde", b"f"]);
        let mut out = [0u8; 10];
        assert_eq!(buf.copy_out(&mut out), 6);
        assert_eq!(&out[..6], b"abcdef");
        assert_eq!(buf.copy_out_from(1, &mut out[..3]), 3);
        assert_eq!(&out[..3], b"bcd");
        assert_eq!(buf.copy_out_from(5, &mut out), 1);
        assert_eq!(out[0], b'f');
        assert_eq!(buf.copy_out_from(6, &mut out), 0);
        assert_eq!(buf.copy_out_from(usize::MAX, &mut out), 0);
        assert_eq!(buf.copy_out_from(2, &mut []), 0);
        assert_eq!(buf.len(), 6);
    }

    #[test]
    fn contiguous_noop_when_front_chunk_suffices() {
        let chunk = Bytes::from_static(b"abcdef");
        let mut buf = Buffer::from(chunk.clone());
        buf.push(Bytes::from_static(b"gh"));
        assert_eq!(buf.contiguous(4).as_ptr(), chunk.as_ptr());
        assert_eq!(buf.contiguous(6), b"abcdef");
        assert_eq!(buf.chunk_count(), 2);
    }

    #[test]
    fn contiguous_merges_needed_bytes_only() {
        let mut buf = chunked(&[b"ab", b"c", b"def", b"gh"]);
        assert_eq!(buf.contiguous(5), b"abcde");
        assert_eq!(buf.chunk_count(), 3);
        assert_eq!(buf.front_chunk().unwrap(), "abcde");
        assert_eq!(buf, b"abcdefgh"[..]);
        assert_eq!(buf.contiguous(8), b"abcdefgh");
        assert_eq!(buf.chunk_count(), 1);
        check_invariants(&buf);

        // Shared front chunks stay untouched.
        let shared = Bytes::from(b"ab".to_vec());
        let mut buf = Buffer::from(shared.clone());
        buf.push(Bytes::from_static(b"cd"));
        assert_eq!(buf.contiguous(3), b"abc");
        assert_eq!(shared, "ab");
        assert_eq!(buf, b"abcd"[..]);
    }

    #[test]
    #[should_panic(expected = "contiguous out of bounds")]
    fn contiguous_past_end_panics() {
        chunked(&[b"ab", b"c"]).contiguous(4);
    }

    #[test]
    fn get_from_both_ends() {
        let data = b"abcdefghij";
        let buf = chunked(&[b"abc", b"d", b"efgh", b"ij"]);
        for (i, &b) in data.iter().enumerate() {
            assert_eq!(buf.get(i), Some(b));
        }
        assert_eq!(buf.get(data.len()), None);
        assert_eq!(buf.get(usize::MAX), None);
    }

    #[test]
    fn search_within_single_chunk() {
        let buf = Buffer::from(&b"hello world"[..]);
        assert_eq!(buf.search(b"world"), Some(6));
        assert_eq!(buf.search(b"o"), Some(4));
        assert_eq!(buf.search(b""), Some(0));
        assert_eq!(buf.search(b"hello world!"), None);
        assert_eq!(buf.search(b"worlds"), None);
    }

    #[test]
    fn search_across_two_chunks() {
        let buf = chunked(&[b"abc\r", b"\n\r\nxyz"]);
        assert_eq!(buf.search(b"\r\n\r\n"), Some(3));
        assert_eq!(buf.search(b"c\r"), Some(2));
        assert_eq!(buf.search(b"\r\n"), Some(3));
        assert_eq!(buf.search(b"nx"), None);
    }

    #[test]
    fn search_across_three_chunks() {
        let buf = chunked(&[b"xxab", b"c", b"dexx"]);
        assert_eq!(buf.search(b"abcde"), Some(2));
        assert_eq!(buf.search(b"bcd"), Some(3));
        assert_eq!(buf.search(b"xabcdex"), Some(1));
    }

    #[test]
    fn search_needle_longer_than_chunks() {
        let data = b"the quick brown fox jumps over the lazy dog";
        let buf = chunked(&[&data[..3], &data[3..5], &data[5..20], &data[20..]]);
        assert_eq!(buf.search(b"e quick brown fox jumps"), Some(2));
        let buf = bytewise(data);
        assert_eq!(buf.search(b"lazy dog"), Some(35));
        assert_eq!(buf.search(data), Some(0));
        assert_eq!(buf.search(b"lazy cat"), None);
    }

    #[test]
    fn search_returns_first_match_in_order() {
        // A straddling match that starts before an in-chunk match wins.
        let buf = chunked(&[b"xa", b"bxab"]);
        assert_eq!(buf.search(b"ab"), Some(1));
        // An in-chunk match beats a later straddling one.
        let buf = chunked(&[b"abxa", b"b"]);
        assert_eq!(buf.search(b"ab"), Some(0));
        // Overlapping candidates across boundaries.
        let buf = bytewise(b"aaaab");
        assert_eq!(buf.search(b"aab"), Some(2));
    }

    #[test]
    fn search_long_needle_uses_heap_window() {
        let needle: Vec<u8> = (0..200u8).collect();
        let mut data = vec![0xffu8; 50];
        data.extend_from_slice(&needle);
        data.extend_from_slice(&[0xff; 50]);
        let parts: Vec<&[u8]> = data.chunks(7).collect();
        let buf = chunked(&parts);
        assert_eq!(buf.search(&needle), Some(50));
        assert_eq!(buf.search_from(51, &needle), None);
    }

    #[test]
    fn search_from_offsets() {
        let buf = chunked(&[b"ab", b"cab", b"c", b"ab"]);
        assert_eq!(buf.search_from(0, b"abc"), Some(0));
        assert_eq!(buf.search_from(1, b"abc"), Some(3));
        assert_eq!(buf.search_from(4, b"abc"), None);
        assert_eq!(buf.search_from(4, b"cab"), Some(5));
        assert_eq!(buf.search_from(6, b"ab"), Some(6));
        assert_eq!(buf.search_from(7, b"ab"), None);
        assert_eq!(buf.search_from(8, b""), Some(8));
        assert_eq!(buf.search_from(9, b""), None);
        assert_eq!(buf.search_from(9, b"a"), None);
        // The match straddling the boundary at 2 starts before `start`.
        assert_eq!(buf.search_from(2, b"bc"), Some(4));
        assert_eq!(chunked(&[b"ab", b"cd"]).search_from(2, b"bc"), None);
        assert_eq!(chunked(&[b"ab", b"cd"]).search_from(1, b"bc"), Some(1));
    }

    #[test]
    fn find_byte_across_chunks() {
        let buf = chunked(&[b"ab", b"cd", b"e"]);
        assert_eq!(buf.find_byte(b'a'), Some(0));
        assert_eq!(buf.find_byte(b'd'), Some(3));
        assert_eq!(buf.find_byte(b'e'), Some(4));
        assert_eq!(buf.find_byte(b'z'), None);
    }

    #[test]
    fn eol_lf_and_nul() {
        let mut buf = chunked(&[b"one\ntw", b"o\0three"]);
        assert_eq!(buf.find_eol(Eol::Lf), Some((3, 1)));
        assert_eq!(buf.find_eol(Eol::Nul), Some((7, 1)));
        assert_eq!(buf.read_line(Eol::Lf).unwrap(), "one");
        assert_eq!(buf.read_line(Eol::Nul).unwrap(), "two");
        assert_eq!(buf.read_line(Eol::Nul), None);
        assert_eq!(buf.read_line(Eol::Lf), None);
        assert_eq!(buf, b"three"[..]);
    }

    #[test]
    fn eol_crlf() {
        let mut buf = Buffer::from(&b"a\r\nb\nc\rd\n\r"[..]);
        assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "a");
        assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "b");
        // A lone CR belongs to the line.
        assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "c\rd");
        // A trailing CR is not a terminator yet.
        assert_eq!(buf.find_eol(Eol::CrLf), None);
        assert_eq!(buf.read_line(Eol::CrLf), None);
        assert_eq!(buf, b"\r"[..]);
        buf.extend_from_slice(b"\n");
        assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "");
        assert!(buf.is_empty());
    }

    #[test]
    fn eol_crlf_split_across_chunks() {
        let mut buf = chunked(&[b"line\r", b"\nrest"]);
        assert_eq!(buf.find_eol(Eol::CrLf), Some((4, 2)));
        assert_eq!(buf.read_line(Eol::CrLf).unwrap(), "line");
        assert_eq!(buf, b"rest"[..]);
    }

    #[test]
    fn eol_crlf_strict() {
        let mut buf = Buffer::from(&b"a\nb\r\nc\r"[..]);
        assert_eq!(buf.read_line(Eol::CrLfStrict).unwrap(), "a\nb");
        assert_eq!(buf.read_line(Eol::CrLfStrict), None);
        assert_eq!(buf, b"c\r"[..]);

        let mut buf = chunked(&[b"ab\r", b"\ncd"]);
        assert_eq!(buf.find_eol(Eol::CrLfStrict), Some((2, 2)));
        assert_eq!(buf.read_line(Eol::CrLfStrict).unwrap(), "ab");
        assert_eq!(buf, b"cd"[..]);

        let mut buf = bytewise(b"\r\r\n");
        assert_eq!(buf.read_line(Eol::CrLfStrict).unwrap(), "\r");
        assert!(buf.is_empty());
    }

    #[test]
    fn eol_any() {
        let mut buf = Buffer::from(&b"a\r\n\n\rb\rc\nd\r"[..]);
        assert_eq!(buf.find_eol(Eol::Any), Some((1, 4)));
        assert_eq!(buf.read_line(Eol::Any).unwrap(), "a");
        assert_eq!(buf.read_line(Eol::Any).unwrap(), "b");
        assert_eq!(buf.read_line(Eol::Any).unwrap(), "c");
        // A single CR at the end is already a terminator.
        assert_eq!(buf.read_line(Eol::Any).unwrap(), "d");
        assert!(buf.is_empty());
        assert_eq!(buf.read_line(Eol::Any), None);
    }

    #[test]
    fn eol_any_run_split_across_chunks() {
        let mut buf = chunked(&[b"ab\r", b"\n", b"\r\n", b"\ncd\n"]);
        assert_eq!(buf.find_eol(Eol::Any), Some((2, 5)));
        assert_eq!(buf.read_line(Eol::Any).unwrap(), "ab");
        assert_eq!(buf, b"cd\n"[..]);

        let mut buf = bytewise(b"x\n\r\n\ry");
        assert_eq!(buf.read_line(Eol::Any).unwrap(), "x");
        assert_eq!(buf, b"y"[..]);
    }

    #[test]
    fn read_line_in_one_chunk_is_zero_copy() {
        let chunk = Bytes::from(b"first\r\nsecond\r\n".to_vec());
        let mut buf = Buffer::from(chunk.clone());
        let first = buf.read_line(Eol::CrLf).unwrap();
        assert_eq!(first, "first");
        assert_eq!(first.as_ptr(), chunk.as_ptr());
        let second = buf.read_line(Eol::CrLf).unwrap();
        assert_eq!(second, "second");
        assert_eq!(second.as_ptr(), chunk[7..].as_ptr());
        assert!(buf.is_empty());
        assert_eq!(buf.chunk_count(), 0);
    }

    #[test]
    fn read_line_across_chunks_copies_once() {
        let mut buf = chunked(&[b"hel", b"lo", b" world\nnext"]);
        assert_eq!(buf.read_line(Eol::Lf).unwrap(), "hello world");
        assert_eq!(buf, b"next"[..]);
        check_invariants(&buf);
    }

    #[test]
    fn debug_shows_shape_not_contents() {
        let buf = chunked(&[b"secret", b"data"]);
        let debug = format!("{buf:?}");
        assert_eq!(debug, "Buffer { len: 10, chunks: 2 }");
    }

    #[test]
    fn conversions() {
        let v = b"vec".to_vec();
        let ptr = v.as_ptr();
        let buf = Buffer::from(v);
        assert_eq!(buf.front_chunk().unwrap().as_ptr(), ptr);
        assert_eq!(buf, b"vec"[..]);

        assert_eq!(Buffer::from(&b"slice"[..]), b"slice"[..]);
        assert_eq!(Buffer::from(Bytes::new()).chunk_count(), 0);
        assert_eq!(Buffer::from(BytesMut::from(&b"mut"[..])), b"mut"[..]);

        let single = Bytes::from_static(b"single");
        let out = Bytes::from(Buffer::from(single.clone()));
        assert_eq!(out.as_ptr(), single.as_ptr());
        assert_eq!(Bytes::from(chunked(&[b"a", b"b"])), "ab");
    }

    #[test]
    fn equality_ignores_chunking() {
        let a = chunked(&[b"ab", b"cde"]);
        let b = chunked(&[b"a", b"bcd", b"e"]);
        assert_eq!(a, b);
        assert_eq!(a, bytewise(b"abcde"));
        assert_ne!(a, chunked(&[b"ab", b"cdf"]));
        assert_ne!(a, chunked(&[b"ab", b"cd"]));
        assert_eq!(a, &b"abcde"[..]);
        assert_eq!(a, b"abcde".to_vec());
        assert_ne!(a, b"abcdf"[..]);
        assert_eq!(Buffer::new(), Buffer::new());
    }

    #[test]
    fn clone_shares_chunks() {
        let a = chunked(&[b"ab", b"cd"]);
        let mut b = a.clone();
        assert_eq!(
            a.front_chunk().unwrap().as_ptr(),
            b.front_chunk().unwrap().as_ptr()
        );
        b.drain(3);
        assert_eq!(a, b"abcd"[..]);
        assert_eq!(b, b"d"[..]);
    }

    #[test]
    fn io_read_and_write() {
        let mut buf = Buffer::new();
        buf.write_all(b"hello ").unwrap();
        write!(buf, "{}", 42).unwrap();
        let n = buf
            .write_vectored(&[IoSlice::new(b" a"), IoSlice::new(b"b")])
            .unwrap();
        assert_eq!(n, 3);
        buf.flush().unwrap();

        let mut out = String::new();
        buf.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello 42 ab");
        assert!(buf.is_empty());
        assert_eq!(Read::read(&mut buf, &mut [0; 4]).unwrap(), 0);
    }

    #[test]
    fn buf_trait() {
        let mut buf = chunked(&[&[0, 1], &[2, 3, 4], b"xyz"]);
        assert_eq!(buf.remaining(), 8);
        assert_eq!(Buf::chunk(&buf), &[0, 1]);
        assert_eq!(buf.get_u32(), 0x0001_0203);
        assert_eq!(buf.get_u8(), 4);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(buf.chunks_vectored(&mut slices), 1);
        assert_eq!(buf.copy_to_bytes(2), "xy");
        Buf::advance(&mut buf, 1);
        assert!(!buf.has_remaining());
        assert_eq!(Buf::chunk(&buf), b"");
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        const ALPHABET: &[u8] = b"ab\r\n\0x";

        #[derive(Debug, Clone)]
        enum Needle {
            /// Taken from the current contents so searches usually hit.
            FromContent {
                offset: usize,
                len: usize,
            },
            Random(Vec<u8>),
        }

        #[derive(Debug, Clone)]
        enum Op {
            /// Pieces appended in order; `true` pushes, `false` copies.
            Append(Vec<(Vec<u8>, bool)>),
            Read(usize),
            Drain(usize),
            SplitTo(usize),
            Contiguous(usize),
            Search {
                start: usize,
                needle: Needle,
            },
            FindByte(u8),
            Get(usize),
            CopyOutFrom(usize, usize),
            ReadLine(Eol),
            FindEol(Eol),
            FindEolFrom(Eol, usize),
            FindEitherFrom(u8, u8, usize),
            ChunksFrom(usize),
            FillIoSlices(usize),
            PopFrontChunk,
        }

        fn byte() -> impl Strategy<Value = u8> {
            prop::sample::select(ALPHABET)
        }

        fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(byte(), 0..=max)
        }

        fn eol() -> impl Strategy<Value = Eol> {
            prop_oneof![
                Just(Eol::Lf),
                Just(Eol::CrLf),
                Just(Eol::CrLfStrict),
                Just(Eol::Nul),
                Just(Eol::Any),
            ]
        }

        fn needle() -> impl Strategy<Value = Needle> {
            prop_oneof![
                3 => (any::<usize>(), 0..8usize)
                    .prop_map(|(offset, len)| Needle::FromContent { offset, len }),
                1 => bytes(7).prop_map(Needle::Random),
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => prop::collection::vec((bytes(12), prop::bool::weighted(0.7)), 1..5).prop_map(Op::Append),
                1 => (0..24usize).prop_map(Op::Read),
                1 => any::<usize>().prop_map(Op::Drain),
                1 => any::<usize>().prop_map(Op::SplitTo),
                1 => any::<usize>().prop_map(Op::Contiguous),
                4 => (any::<usize>(), needle())
                    .prop_map(|(start, needle)| Op::Search { start, needle }),
                1 => byte().prop_map(Op::FindByte),
                1 => any::<usize>().prop_map(Op::Get),
                1 => (any::<usize>(), 0..24usize).prop_map(|(o, n)| Op::CopyOutFrom(o, n)),
                3 => eol().prop_map(Op::ReadLine),
                1 => eol().prop_map(Op::FindEol),
                2 => (eol(), any::<usize>()).prop_map(|(e, s)| Op::FindEolFrom(e, s)),
                1 => (byte(), byte(), any::<usize>()).prop_map(|(a, b, s)| Op::FindEitherFrom(a, b, s)),
                1 => any::<usize>().prop_map(Op::ChunksFrom),
                1 => (0..6usize).prop_map(Op::FillIoSlices),
                1 => Just(Op::PopFrontChunk),
            ]
        }

        /// Picks a value in `0..=max`, so clamped sizes cover both ends.
        fn clamp(seed: usize, max: usize) -> usize {
            seed % (max + 1)
        }

        /// Splits `data` into chunks at the given (reduced) cut points.
        fn chunked_at(data: &[u8], cuts: &[usize]) -> Buffer {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut buf = Buffer::new();
            for w in cuts.windows(2) {
                buf.push(Bytes::copy_from_slice(&data[w[0]..w[1]]));
            }
            buf
        }

        fn model_search(model: &[u8], start: usize, needle: &[u8]) -> Option<usize> {
            if start > model.len() {
                return None;
            }
            (start..=model.len().checked_sub(needle.len())?)
                .find(|&i| &model[i..i + needle.len()] == needle)
        }

        fn model_find_eol(model: &[u8], eol: Eol) -> Option<(usize, usize)> {
            let pos = |f: &dyn Fn(u8) -> bool| model.iter().position(|&b| f(b));
            match eol {
                Eol::Lf => pos(&|b| b == b'\n').map(|i| (i, 1)),
                Eol::Nul => pos(&|b| b == 0).map(|i| (i, 1)),
                Eol::CrLfStrict => model.windows(2).position(|w| w == b"\r\n").map(|i| (i, 2)),
                Eol::CrLf => pos(&|b| b == b'\n').map(|i| {
                    if i > 0 && model[i - 1] == b'\r' {
                        (i - 1, 2)
                    } else {
                        (i, 1)
                    }
                }),
                Eol::Any => {
                    let is_eol = |b: u8| b == b'\r' || b == b'\n';
                    let i = pos(&is_eol)?;
                    let run = model[i..].iter().take_while(|&&b| is_eol(b)).count();
                    Some((i, run))
                }
            }
        }

        fn apply(buf: &mut Buffer, model: &mut Vec<u8>, op: &Op) {
            let len = model.len();
            match op {
                Op::Append(pieces) => {
                    for (piece, push) in pieces {
                        if *push {
                            buf.push(Bytes::copy_from_slice(piece));
                        } else {
                            buf.extend_from_slice(piece);
                        }
                        model.extend_from_slice(piece);
                    }
                }
                Op::Read(n) => {
                    let mut dst = vec![0u8; *n];
                    let got = buf.read(&mut dst);
                    let want = (*n).min(len);
                    assert_eq!(got, want);
                    assert_eq!(&dst[..got], &model[..want]);
                    model.drain(..want);
                }
                Op::Drain(seed) => {
                    let n = clamp(*seed, len);
                    buf.drain(n);
                    model.drain(..n);
                }
                Op::SplitTo(seed) => {
                    let n = clamp(*seed, len);
                    let front_len = buf.front_chunk().map_or(0, Bytes::len);
                    let front_ptr = buf.front_chunk().map(|c| c.as_ptr());
                    let got = buf.split_to(n);
                    assert_eq!(got, model[..n]);
                    if n > 0 && n <= front_len {
                        assert_eq!(Some(got.as_ptr()), front_ptr, "split_to copied");
                    }
                    model.drain(..n);
                }
                Op::Contiguous(seed) => {
                    let n = clamp(*seed, len);
                    assert_eq!(buf.contiguous(n), &model[..n]);
                    if n > 0 {
                        assert!(buf.front_chunk().unwrap().len() >= n);
                    }
                }
                Op::Search { start, needle } => {
                    let needle = match needle {
                        Needle::FromContent { offset, len: n } if len > 0 => {
                            let from = offset % len;
                            model[from..(from + n).min(len)].to_vec()
                        }
                        Needle::FromContent { len: n, .. } => vec![b'a'; *n],
                        Needle::Random(bytes) => bytes.clone(),
                    };
                    // Mostly start near the front so matches are likely, but
                    // also probe past the end.
                    let start = if start % 4 == 0 {
                        0
                    } else {
                        clamp(*start, len + 1)
                    };
                    assert_eq!(
                        buf.search_from(start, &needle),
                        model_search(model, start, &needle),
                        "search_from({start}, {needle:?})"
                    );
                    assert_eq!(buf.search(&needle), model_search(model, 0, &needle));
                }
                Op::FindByte(b) => {
                    assert_eq!(buf.find_byte(*b), model.iter().position(|x| x == b));
                }
                Op::Get(seed) => {
                    let i = clamp(*seed, len);
                    assert_eq!(buf.get(i), model.get(i).copied());
                }
                Op::CopyOutFrom(seed, n) => {
                    let offset = clamp(*seed, len + 1);
                    let mut dst = vec![0u8; *n];
                    let got = buf.copy_out_from(offset, &mut dst);
                    let want = &model[offset.min(len)..];
                    let want = &want[..want.len().min(*n)];
                    assert_eq!(&dst[..got], want);
                }
                Op::ReadLine(eol) => match model_find_eol(model, *eol) {
                    Some((line, term)) => {
                        let got = buf.read_line(*eol).expect("line expected");
                        assert_eq!(got, model[..line]);
                        model.drain(..line + term);
                    }
                    None => assert_eq!(buf.read_line(*eol), None),
                },
                Op::FindEol(eol) => {
                    assert_eq!(buf.find_eol(*eol), model_find_eol(model, *eol));
                }
                Op::FindEolFrom(eol, seed) => {
                    // Resume from the longest prefix without a line end, as
                    // a decoder does, or from any point the caller knows
                    // holds none.
                    let start = clamp(*seed, len);
                    if model_find_eol(&model[..start], *eol).is_none() {
                        assert_eq!(
                            buf.find_eol_from(start, *eol),
                            model_find_eol(model, *eol),
                            "find_eol_from({start}, {eol:?})"
                        );
                    }
                    assert_eq!(buf.find_eol_from(len + 1, *eol), None);
                }
                Op::FindEitherFrom(a, b, seed) => {
                    let start = clamp(*seed, len + 1);
                    let want = model
                        .get(start..)
                        .and_then(|rest| rest.iter().position(|x| x == a || x == b))
                        .map(|at| start + at);
                    assert_eq!(buf.find_either_from(start, *a, *b), want);
                }
                Op::ChunksFrom(seed) => {
                    let start = clamp(*seed, len + 1);
                    let slices: Vec<&[u8]> = buf.chunks_from(start).collect();
                    assert!(slices.iter().all(|s| !s.is_empty()));
                    assert_eq!(slices.concat(), model.get(start..).unwrap_or_default());
                }
                Op::FillIoSlices(n) => {
                    let mut slices = vec![IoSlice::new(&[]); *n];
                    let filled = buf.fill_io_slices(&mut slices);
                    assert_eq!(filled, (*n).min(buf.chunk_count()));
                    let joined: Vec<u8> = slices[..filled]
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect();
                    assert!(slices[..filled].iter().all(|s| !s.is_empty()));
                    assert_eq!(joined, model[..joined.len()]);
                }
                Op::PopFrontChunk => match buf.pop_front_chunk() {
                    Some(chunk) => {
                        assert_eq!(chunk, model[..chunk.len()]);
                        model.drain(..chunk.len());
                    }
                    None => assert!(model.is_empty()),
                },
            }
        }

        proptest! {
            #[test]
            fn matches_vec_model(ops in prop::collection::vec(op(), 1..48)) {
                let mut buf = Buffer::new();
                let mut model = Vec::new();
                for op in &ops {
                    apply(&mut buf, &mut model, op);
                    check_invariants(&buf);
                    prop_assert_eq!(buf.len(), model.len());
                    prop_assert_eq!(buf.to_vec(), model.clone());
                }
            }

            #[test]
            fn search_any_chunking(
                data in bytes(64),
                cuts in prop::collection::vec(any::<usize>(), 0..16),
                needles in prop::collection::vec((any::<usize>(), 1..10usize), 1..8),
            ) {
                let buf = chunked_at(&data, &cuts);
                for (offset, n) in needles {
                    let needle = if data.is_empty() {
                        b"ab".to_vec()
                    } else {
                        let from = offset % data.len();
                        data[from..(from + n).min(data.len())].to_vec()
                    };
                    for start in [0, offset % (data.len() + 1)] {
                        prop_assert_eq!(
                            buf.search_from(start, &needle),
                            model_search(&data, start, &needle)
                        );
                    }
                }
            }

            #[test]
            fn read_line_any_chunking(
                data in bytes(48),
                cuts in prop::collection::vec(any::<usize>(), 0..24),
                eols in prop::collection::vec(eol(), 1..12),
            ) {
                let mut buf = chunked_at(&data, &cuts);
                let mut model = data.clone();
                for eol in eols {
                    let want = model_find_eol(&model, eol);
                    prop_assert_eq!(buf.find_eol(eol), want);
                    let got = buf.read_line(eol);
                    match want {
                        Some((line, term)) => {
                            prop_assert_eq!(got, Some(Bytes::copy_from_slice(&model[..line])));
                            model.drain(..line + term);
                        }
                        None => prop_assert_eq!(got, None),
                    }
                    prop_assert_eq!(buf.to_vec(), model.clone());
                }
            }
        }
    }
}
