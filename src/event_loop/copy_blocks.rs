//! The loop's output blocks: where the bytes of a write that the kernel did
//! not take at once are copied to wait for the loop, for every connection
//! of the loop, from whichever thread writes.
//!
//! A copy goes into the room of the current block and is split off as a
//! `Bytes` slice of it. A block whose room runs out is *retired*, and
//! reused whole (`BytesMut::try_reclaim`) once every slice cut from it has
//! been sent and dropped. Without this, every buffered write allocated a
//! fresh `Bytes` that the allocator gave back to the kernel once sent, so
//! the next one faulted its pages in (and the kernel zeroed them) again:
//! about 1,900 minor faults per GiB sent through `write_all(&[u8])`, where
//! tokio, which never copies, takes about 15. At most [`MAX_RETIRED`]
//! blocks wait, shared by the loop's connections, so an idle connection
//! holds no output memory and a slow peer cannot make the pool grow.

use bytes::{Bytes, BytesMut};

#[cfg(test)]
use super::blocks::MAX_RETIRED;
use super::blocks::{Retired, BLOCK_SIZE};

/// Copies smaller than this coalesce in the output buffer instead (a run of
/// small writes becomes one chunk there).
pub(crate) const MIN_BLOCK_COPY: usize = 4 * 1024;

/// The loop's output blocks.
#[derive(Default)]
pub(crate) struct CopyBlocks {
    /// Empty, with the block's room as spare capacity (or no block yet).
    current: BytesMut,
    retired: Retired,
}

impl CopyBlocks {
    /// A copy of `data` in one of the blocks (its own allocation if it is
    /// larger than a block).
    pub(crate) fn copy(&mut self, data: &[u8]) -> Bytes {
        if data.len() > BLOCK_SIZE {
            return Bytes::copy_from_slice(data);
        }
        if self.current.capacity() < data.len() {
            let old = std::mem::take(&mut self.current);
            self.current = self.retired.next(old);
        }
        self.current.extend_from_slice(data);
        self.current.split().freeze()
    }

    /// How many blocks the pool holds (the current one included).
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.retired.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_hold_their_bytes_and_share_a_block() {
        let mut blocks = CopyBlocks::default();
        let a = blocks.copy(&[1u8; 5000]);
        let b = blocks.copy(&[2u8; 7000]);
        assert_eq!(&a[..], &[1u8; 5000][..]);
        assert_eq!(&b[..], &[2u8; 7000][..]);
        assert_eq!(blocks.blocks(), 1);
        assert_eq!(b.as_ptr(), a[a.len()..].as_ptr(), "cut from one block");
    }

    #[test]
    fn used_up_blocks_are_reused_once_their_copies_are_dropped() {
        let mut blocks = CopyBlocks::default();
        let data = vec![9u8; 60 * 1024];
        let held: Vec<Bytes> = (0..8).map(|_| blocks.copy(&data)).collect();
        let allocated = blocks.blocks();
        assert!(allocated >= 4, "{allocated} blocks for 480 KiB held");
        drop(held);
        for _ in 0..64 {
            drop(blocks.copy(&data));
        }
        assert!(blocks.blocks() <= allocated, "no new block was needed");
    }

    #[test]
    fn copies_held_for_ever_never_make_the_pool_grow_past_its_bound() {
        let mut blocks = CopyBlocks::default();
        let data = vec![3u8; 100 * 1024];
        let held: Vec<Bytes> = (0..MAX_RETIRED * 4).map(|_| blocks.copy(&data)).collect();
        assert!(blocks.blocks() <= MAX_RETIRED + 1);
        assert!(held.iter().all(|copy| copy[..] == data[..]));
    }

    #[test]
    fn a_copy_larger_than_a_block_gets_its_own_allocation() {
        let mut blocks = CopyBlocks::default();
        let data = vec![4u8; BLOCK_SIZE + 1];
        assert_eq!(&blocks.copy(&data)[..], &data[..]);
        assert_eq!(blocks.blocks(), 0);
    }
}
