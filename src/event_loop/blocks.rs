//! The loop's read blocks: one block that every connection of the loop
//! reads into, in turn, and the used-up blocks waiting to be reused.
//!
//! A read goes into the spare capacity of the current block. What a read
//! pass got is then either split off and frozen (a `Bytes` slice of the
//! block, no copy) or, when it is small, copied into a `Bytes` of its own
//! size so that it pins no block and the block's room is used again at
//! once. So an idle connection holds no read memory at all, a small
//! message costs its own size, and bulk reads cost no copy.
//!
//! A block whose room runs out is *retired*: it waits until every chunk cut
//! from it has been dropped, and is then reclaimed whole
//! (`BytesMut::try_reclaim`) instead of a new allocation — whose pages the
//! kernel would have to fault in (and zero) again, the cost that made bulk
//! reads slow when the allocator trimmed or unmapped freed blocks. At most
//! [`MAX_RETIRED`] blocks wait: a slow consumer holding chunks makes older
//! ones leave the pool (they are freed when their chunks are), never the
//! pool grow.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;

use bytes::{Bytes, BytesMut};

use super::sys::read_into_spare;

/// The size of a block.
pub(super) const BLOCK_SIZE: usize = 128 * 1024;

/// A read pass smaller than this is copied out of the block.
const SMALL_READ: usize = 2 * 1024;

/// The least room a block must have for a read to go into it.
const MIN_ROOM: usize = 16 * 1024;

/// How many used-up blocks wait to be reused at most.
pub(super) const MAX_RETIRED: usize = 16;

/// The loop's read blocks.
#[derive(Default)]
pub(crate) struct ReadBlocks {
    /// `len()` is what the pass in progress has read; the rest is room.
    current: BytesMut,
    retired: Retired,
    /// Whether the pass in progress had to move on to another block.
    pass_spilled: bool,
}

impl ReadBlocks {
    /// Reads at most `want` bytes from `stream` into the current block;
    /// returns (read, asked). When the block has too little room, what this
    /// pass read so far goes to `done` and the read goes into another block.
    pub(crate) fn read(
        &mut self,
        stream: impl AsFd,
        want: usize,
        done: &mut Vec<Bytes>,
    ) -> io::Result<(usize, usize)> {
        let room = self.current.capacity() - self.current.len();
        if room < want.min(MIN_ROOM) {
            self.replace_block(done);
        }
        let asked = (self.current.capacity() - self.current.len()).min(want);
        let n = read_into_spare(stream, &mut self.current, asked)?;
        Ok((n, asked))
    }

    /// Ends a read pass: what it read goes to `done`, copied out when small.
    pub(crate) fn finish(&mut self, done: &mut Vec<Bytes>) {
        let len = self.current.len();
        if len > 0 {
            if len < SMALL_READ && !self.pass_spilled {
                // Its own small allocation; the block's room is reused.
                done.push(Bytes::copy_from_slice(&self.current));
                self.current.clear();
            } else {
                done.push(self.current.split().freeze());
            }
        }
        self.pass_spilled = false;
    }

    /// Retires the current block and makes another current: a reclaimed
    /// one if any is free again, else a new one.
    fn replace_block(&mut self, done: &mut Vec<Bytes>) {
        if !self.current.is_empty() {
            done.push(self.current.split().freeze());
            self.pass_spilled = true;
        }
        let old = std::mem::take(&mut self.current);
        self.current = self.retired.next(old);
    }

    /// How many blocks the pool holds (the current one included).
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.retired.count()
    }
}

/// Used-up blocks, waiting until every chunk cut from them has been
/// dropped to be reused whole; shared by the read and the output blocks.
#[derive(Default)]
pub(super) struct Retired {
    blocks: VecDeque<BytesMut>,
    /// Whether a block has been handed out: from then on the caller's
    /// current handle is a block, even used up (no room left, but a share
    /// of the allocation, through which the block is reclaimed).
    has_block: bool,
}

impl Retired {
    /// Retires `current` and returns the next block: a reclaimed one if any
    /// is free again, else a new one.
    pub(super) fn next(&mut self, current: BytesMut) -> BytesMut {
        if std::mem::replace(&mut self.has_block, true) {
            if self.blocks.len() == MAX_RETIRED {
                // Still held by a slow consumer: let it go.
                self.blocks.pop_front();
            }
            self.blocks.push_back(current);
        }
        let free = self
            .blocks
            .iter_mut()
            .position(|block| block.try_reclaim(BLOCK_SIZE));
        match free {
            Some(at) => self.blocks.remove(at).unwrap_or_default(),
            None => BytesMut::with_capacity(BLOCK_SIZE),
        }
    }

    /// How many blocks there are (the caller's current one included).
    #[cfg(test)]
    pub(super) fn count(&self) -> usize {
        self.blocks.len() + usize::from(self.has_block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (reader, _) = listener.accept().unwrap();
        reader.set_nonblocking(true).unwrap();
        (writer, reader)
    }

    fn read_all(blocks: &mut ReadBlocks, reader: &TcpStream, len: usize) -> Vec<Bytes> {
        let mut done = Vec::new();
        let mut got = 0;
        while got < len {
            match blocks.read(reader, len - got, &mut done) {
                Ok((n, _)) => got += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(err) => panic!("{err}"),
            }
        }
        blocks.finish(&mut done);
        done
    }

    #[test]
    fn a_small_read_is_copied_out_and_the_block_reused() {
        let (mut writer, reader) = pair();
        let mut blocks = ReadBlocks::default();
        writer.write_all(b"hello").unwrap();
        let chunks = read_all(&mut blocks, &reader, 5);
        assert_eq!(chunks, [Bytes::from_static(b"hello")]);
        assert_eq!(blocks.current.len(), 0, "the block keeps all its room");
        let room = blocks.current.capacity();
        writer.write_all(b"again").unwrap();
        let chunks = read_all(&mut blocks, &reader, 5);
        assert_eq!(chunks, [Bytes::from_static(b"again")]);
        assert_eq!(blocks.current.capacity(), room);
    }

    #[test]
    fn used_up_blocks_are_reclaimed_once_their_chunks_are_dropped() {
        let (mut writer, reader) = pair();
        let mut blocks = ReadBlocks::default();
        let data = vec![7u8; 64 * 1024];
        let mut held = Vec::new();
        for _ in 0..8 {
            writer.write_all(&data).unwrap();
            held.extend(read_all(&mut blocks, &reader, data.len()));
        }
        let allocated = blocks.blocks();
        assert!(allocated >= 4, "{allocated} blocks for 512 KiB held");
        // Dropped by the consumer: the same blocks serve the next reads.
        drop(held);
        for _ in 0..32 {
            writer.write_all(&data).unwrap();
            drop(read_all(&mut blocks, &reader, data.len()));
        }
        assert!(blocks.blocks() <= allocated, "no new block was needed");
    }

    #[test]
    fn a_slow_consumer_never_makes_the_pool_grow_past_its_bound() {
        let (mut writer, reader) = pair();
        let mut blocks = ReadBlocks::default();
        let data = vec![1u8; 64 * 1024];
        let mut held = Vec::new();
        for _ in 0..(MAX_RETIRED * 4) {
            writer.write_all(&data).unwrap();
            held.extend(read_all(&mut blocks, &reader, data.len()));
        }
        assert!(blocks.blocks() <= MAX_RETIRED + 1);
        let total: usize = held.iter().map(Bytes::len).sum();
        assert_eq!(total, data.len() * MAX_RETIRED * 4, "every byte delivered");
    }
}
