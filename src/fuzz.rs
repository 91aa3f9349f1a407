//! For the crate's own tests: the small generator the bounded fuzz loops draw from, and
//! the byte mutation the binary parsers' loops share. No crate, and a fixed seed repeats
//! exactly, so a failing case can be replayed.

/// xorshift64: small, deterministic, good enough to pick and mutate test inputs.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Mutates `bytes` by one to `most` random edits, each at a random place: a byte
    /// replaced, a byte inserted, a byte removed, or the rest cut off. Between them they
    /// reach short reads, stray bytes and lengths that disagree with the data, which is what
    /// a parser of untrusted bytes must survive.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>, most: usize) {
        for _ in 0..1 + self.below(most) {
            let at = self.below(bytes.len() + 1);
            match self.below(4) {
                0 if at < bytes.len() => bytes[at] = self.next() as u8,
                1 => bytes.insert(at, self.next() as u8),
                2 if at < bytes.len() => drop(bytes.remove(at)),
                _ => bytes.truncate(at),
            }
        }
    }
}
