//! The deterministic byte stream of the bulk workloads, and its checker.
//!
//! Senders repeat one pseudo-random block; a receiver compares each chunk it
//! reads with the block at the matching offset. A memory compare is as cheap
//! as the copy that produced the chunk, so checking every byte does not become
//! the thing being measured. The block length is prime, so a relay that loses
//! or repeats one of its copy buffers (always a power of two in size) shifts
//! the stream and the shift is caught.

use std::sync::OnceLock;

/// Length of the repeated block: the largest prime below 64 KiB.
pub const BLOCK_LEN: usize = 65_521;

/// The block every bulk sender repeats, built once per process.
pub fn block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        // xorshift64 with a fixed seed: the same bytes in every process, so the
        // sender and the checker need not share anything but this function.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..BLOCK_LEN)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    })
}

/// Checks a received stream against the repeated block, chunk by chunk.
pub struct PatternCheck {
    position: u64,
    first_mismatch: Option<u64>,
}

impl PatternCheck {
    /// A checker expecting the stream from its first byte.
    pub fn new() -> PatternCheck {
        PatternCheck { position: 0, first_mismatch: None }
    }

    /// Checks the next bytes of the stream and remembers the first offset
    /// that differs from the pattern.
    pub fn feed(&mut self, mut received: &[u8]) {
        let block = block();
        while !received.is_empty() {
            let offset = (self.position % BLOCK_LEN as u64) as usize;
            let len = received.len().min(BLOCK_LEN - offset);
            let (head, rest) = received.split_at(len);
            let expected = &block[offset..offset + len];
            if self.first_mismatch.is_none() && head != expected {
                let index =
                    head.iter().zip(expected).position(|(got, want)| got != want).unwrap_or(0);
                self.first_mismatch = Some(self.position + index as u64);
            }
            self.position += len as u64;
            received = rest;
        }
    }

    /// How many bytes have been fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.position
    }

    /// The stream offset of the first wrong byte, if any.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_mismatch
    }
}
