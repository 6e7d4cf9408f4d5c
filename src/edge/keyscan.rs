//! Finds BackendKeyData in a plaintext session's first backend messages (pure), so a later CancelRequest with that
//! key can be sent to the backend that issued it. Fed the backend-to-client bytes chunk by chunk, as they are
//! copied; it stops looking at ReadyForQuery, an error, anything odd, or after a bounded number of bytes.

use super::hello::{CancelKey, MAX_CANCEL_KEY};

/// Startup traffic (authentication, ParameterStatus, NoticeResponse) before BackendKeyData is a few KiB at most.
const BUDGET: usize = 64 * 1024;

/// What the scan found so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Not yet: feed more bytes.
    More,
    /// The session's key (scanning is over).
    Found(CancelKey),
    /// No key will come, or the stream is not what was expected (scanning is over).
    Done,
}

/// Walks message headers (type byte + 4-byte length) and keeps only the body of a `K` message.
#[derive(Clone, Debug, Default)]
pub struct KeyScanner {
    header: Vec<u8>,
    /// Body bytes of the current message still to come.
    body_left: usize,
    /// Whether the current message is BackendKeyData (its body is kept).
    key_body: Option<Vec<u8>>,
    seen: usize,
}

impl KeyScanner {
    pub fn new() -> KeyScanner {
        KeyScanner::default()
    }

    /// Consumes the next chunk of the backend's stream.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Scan {
        self.seen += chunk.len();
        while !chunk.is_empty() {
            if self.body_left == 0 {
                let take = (5 - self.header.len()).min(chunk.len());
                self.header.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.header.len() < 5 {
                    break;
                }
                let kind = self.header[0];
                let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]) as usize;
                self.header.clear();
                if !(4..=BUDGET).contains(&len) {
                    return Scan::Done;
                }
                match kind {
                    b'K' if (4 + 8..=4 + 4 + MAX_CANCEL_KEY).contains(&len) => {
                        self.key_body = Some(Vec::with_capacity(len - 4))
                    }
                    // ReadyForQuery comes after the key; an error ends the startup.
                    b'K' | b'Z' | b'E' => return Scan::Done,
                    _ => self.key_body = None,
                }
                self.body_left = len - 4;
                if self.body_left == 0 {
                    continue;
                }
            }
            let take = self.body_left.min(chunk.len());
            if let Some(body) = &mut self.key_body {
                body.extend_from_slice(&chunk[..take]);
            }
            self.body_left -= take;
            chunk = &chunk[take..];
            if self.body_left == 0 {
                if let Some(body) = self.key_body.take() {
                    return Scan::Found(CancelKey {
                        pid: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        secret: body[4..].to_vec(),
                    });
                }
            }
        }
        if self.seen > BUDGET {
            return Scan::Done;
        }
        Scan::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&((4 + body.len()) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn key_msg(pid: u32, secret: &[u8]) -> Vec<u8> {
        m(b'K', &[pid.to_be_bytes().as_slice(), secret].concat())
    }

    /// The scan's result over `stream` cut into chunks of `size` bytes.
    fn scan(stream: &[u8], size: usize) -> Scan {
        let mut s = KeyScanner::new();
        for chunk in stream.chunks(size) {
            match s.feed(chunk) {
                Scan::More => {}
                done => return done,
            }
        }
        Scan::More
    }

    #[test]
    fn finds_the_key_however_the_stream_is_cut() {
        let auth_ok = m(b'R', &0u32.to_be_bytes());
        let sasl = m(b'R', &[&10u32.to_be_bytes()[..], b"SCRAM-SHA-256\0\0"].concat());
        let param = m(b'S', b"server_version\x0015.8\0");
        let ready = m(b'Z', b"I");
        let key = CancelKey {
            pid: 4321,
            secret: vec![0xde, 0xad, 0xbe, 0xef],
        };
        let long = CancelKey {
            pid: 9,
            secret: vec![5; 32],
        };
        let cases: Vec<(Vec<u8>, Scan)> = vec![
            (
                [
                    auth_ok.clone(),
                    param.clone(),
                    key_msg(4321, &key.secret),
                    ready.clone(),
                ]
                .concat(),
                Scan::Found(key.clone()),
            ),
            (
                [sasl.clone(), auth_ok.clone(), key_msg(9, &long.secret)].concat(),
                Scan::Found(long),
            ),
            // No key before ReadyForQuery, or an error: nothing to wait for.
            (
                [auth_ok.clone(), ready.clone(), key_msg(1, &[1; 4])].concat(),
                Scan::Done,
            ),
            ([m(b'E', b"SFATAL\0\0"), key_msg(1, &[1; 4])].concat(), Scan::Done),
            // A key message of an impossible size, an absurd length: stop.
            ([auth_ok.clone(), m(b'K', &[0; 6])].concat(), Scan::Done),
            (vec![b'S', 0x7f, 0, 0, 0], Scan::Done),
            (vec![b'S', 0, 0, 0, 3], Scan::Done),
            // Not all there yet.
            ([auth_ok.clone(), param.clone()].concat(), Scan::More),
        ];
        for (stream, want) in &cases {
            for size in [1, 2, 3, 5, 7, 64, stream.len().max(1)] {
                assert_eq!(&scan(stream, size), want, "chunks of {size}: {stream:?}");
            }
        }
    }

    #[test]
    fn gives_up_after_its_budget() {
        let notice = m(b'N', &vec![b'x'; 1000]);
        let stream = notice.repeat(70);
        assert_eq!(scan(&stream, 4096), Scan::Done);
    }
}
