//! What a flood datagram carries: its flow's number, its sequence number
//! within the flow, and a filler that depends on both, so a reply is checked
//! whole (content, flow, order) and not just counted.

/// Flow number (4 bytes) and sequence number (8 bytes), big-endian.
pub const HEADER: usize = 12;

/// Fills `datagram` (at least `HEADER` bytes) for datagram `seq` of `flow`.
pub fn write(datagram: &mut [u8], flow: u32, seq: u64) {
    datagram[..4].copy_from_slice(&flow.to_be_bytes());
    datagram[4..HEADER].copy_from_slice(&seq.to_be_bytes());
    let seed = filler_seed(flow, seq);
    for (i, byte) in datagram[HEADER..].iter_mut().enumerate() {
        *byte = seed.wrapping_add(i as u8);
    }
}

/// The flow and sequence numbers of a datagram `write` made, or `None` if
/// it is too short or its filler does not match (cut or corrupted).
pub fn read(datagram: &[u8]) -> Option<(u32, u64)> {
    if datagram.len() < HEADER {
        return None;
    }
    let flow = u32::from_be_bytes(datagram[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(datagram[4..HEADER].try_into().ok()?);
    let seed = filler_seed(flow, seq);
    let intact =
        datagram[HEADER..].iter().enumerate().all(|(i, &b)| b == seed.wrapping_add(i as u8));
    intact.then_some((flow, seq))
}

fn filler_seed(flow: u32, seq: u64) -> u8 {
    (flow as u8).wrapping_mul(31).wrapping_add(seq as u8)
}
