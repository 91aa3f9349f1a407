//! A TLS ClientHello, as a client sends it first, for the tests of routing by server name
//! (`sni=`). The library's own unit tests (src/net/sni.rs) include this file too, so that
//! there is one builder and the library need not export a test helper.

/// A minimal, valid ClientHello record asking for `name` (or none), with a few other
/// extensions around it.
pub fn client_hello(name: Option<&str>) -> Vec<u8> {
    let mut extensions = Vec::new();
    // supported_versions (43): TLS 1.3 and 1.2, as a real client sends it.
    extensions.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    if let Some(name) = name {
        let name = name.as_bytes();
        let entry_len = 3 + name.len();
        extensions.extend_from_slice(&[0x00, 0x00]); // server_name
        extensions.extend_from_slice(&((entry_len + 2) as u16).to_be_bytes());
        extensions.extend_from_slice(&(entry_len as u16).to_be_bytes());
        extensions.push(0); // host_name
        extensions.extend_from_slice(&(name.len() as u16).to_be_bytes());
        extensions.extend_from_slice(name);
    }
    // signature_algorithms (13): ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256.
    extensions.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04]);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(32);
    body.extend_from_slice(&[0x11; 32]); // legacy_session_id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]); // two cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}
