//! The client's first PostgreSQL protocol message (pure): SSLRequest, GSSENCRequest, StartupMessage, CancelRequest,
//! or the first bytes of a direct TLS handshake. The edge reads it before it dials a backend, so garbage, absurd
//! lengths and silent sockets never cost a backend process.

/// Request codes of the untyped messages (protocol.html, "Message Formats").
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// The protocol major version of StartupMessage (3.0 up to PostgreSQL 17, 3.2 from 18).
const PROTOCOL_MAJOR: u32 = 3;
/// PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH): longer startup packets are refused by the server anyway.
pub const MAX_STARTUP_LEN: usize = 10_000;
/// A cancel key is 4 bytes up to protocol 3.1 and at most 256 from 3.2 (PostgreSQL 18).
pub const MAX_CANCEL_KEY: usize = 256;
/// Every message starts with a 4-byte length and a 4-byte code; a TLS record header fits in it too.
pub const PREFIX_LEN: usize = 8;

/// A backend's cancel key (BackendKeyData), as a CancelRequest carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: u32,
    pub secret: Vec<u8>,
}

/// What the client opened with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// SSLRequest: the backend answers 'S' (TLS follows) or 'N'.
    Ssl,
    /// GSSENCRequest: the backend answers 'G' (GSSAPI encryption follows) or 'N'.
    Gss,
    /// StartupMessage of protocol 3.`minor`: a plaintext session.
    Startup { minor: u16 },
    /// CancelRequest: not a session; the edge delivers it to the backend holding `key`.
    Cancel(CancelKey),
    /// A TLS ClientHello sent without SSLRequest (PostgreSQL 17's `sslnegotiation=direct`): only the prefix is read,
    /// the rest is the backend's business.
    DirectTls,
}

/// Why the first bytes are not a PostgreSQL client's opening.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("length {len} is out of range for {what}")]
    Length { len: u32, what: &'static str },
    #[error("unknown request code {major}.{minor}")]
    Code { major: u16, minor: u16 },
    #[error("the startup message does not end with a NUL byte")]
    Unterminated,
    #[error("{got} bytes where the length prefix says {want}")]
    Truncated { got: usize, want: usize },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// How many bytes the whole message has, from its 8-byte prefix: checks the code and that the length fits it.
pub fn message_len(prefix: &[u8; PREFIX_LEN]) -> Result<usize, HelloError> {
    // A TLS handshake record (content type 22, version 3.x); as a length it would be ~370 MB, so never ambiguous.
    if prefix[0] == 0x16 && prefix[1] == 0x03 {
        return Ok(PREFIX_LEN);
    }
    let (len, code) = (be32(&prefix[..4]), be32(&prefix[4..]));
    let (fits, what) = match code {
        SSL_REQUEST => (len == 8, "SSLRequest"),
        GSSENC_REQUEST => (len == 8, "GSSENCRequest"),
        CANCEL_REQUEST => ((16..=12 + MAX_CANCEL_KEY as u32).contains(&len), "CancelRequest"),
        _ if code >> 16 == PROTOCOL_MAJOR => ((9..=MAX_STARTUP_LEN as u32).contains(&len), "StartupMessage"),
        _ => {
            return Err(HelloError::Code {
                major: (code >> 16) as u16,
                minor: code as u16,
            })
        }
    };
    match fits {
        true => Ok(len as usize),
        false => Err(HelloError::Length { len, what }),
    }
}

/// Parses a whole first message (`message_len` bytes).
pub fn parse(msg: &[u8]) -> Result<Hello, HelloError> {
    let prefix: &[u8; PREFIX_LEN] =
        msg.get(..PREFIX_LEN)
            .and_then(|p| p.try_into().ok())
            .ok_or(HelloError::Truncated {
                got: msg.len(),
                want: PREFIX_LEN,
            })?;
    let want = message_len(prefix)?;
    if msg.len() != want {
        return Err(HelloError::Truncated { got: msg.len(), want });
    }
    if want == PREFIX_LEN && prefix[0] == 0x16 {
        return Ok(Hello::DirectTls);
    }
    Ok(match be32(&msg[4..8]) {
        SSL_REQUEST => Hello::Ssl,
        GSSENC_REQUEST => Hello::Gss,
        CANCEL_REQUEST => Hello::Cancel(CancelKey {
            pid: be32(&msg[8..12]),
            secret: msg[12..].to_vec(),
        }),
        code => {
            if msg.last() != Some(&0) {
                return Err(HelloError::Unterminated);
            }
            Hello::Startup { minor: code as u16 }
        }
    })
}

/// The CancelRequest that carries `key` (the bytes a client sends).
pub fn cancel_request(key: &CancelKey) -> Vec<u8> {
    let mut msg = Vec::with_capacity(12 + key.secret.len());
    msg.extend_from_slice(&((12 + key.secret.len()) as u32).to_be_bytes());
    msg.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    msg.extend_from_slice(&key.pid.to_be_bytes());
    msg.extend_from_slice(&key.secret);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(code: u32, body: &[u8]) -> Vec<u8> {
        let mut m = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn with_len(len: u32, code: u32) -> [u8; 8] {
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&len.to_be_bytes());
        p[4..].copy_from_slice(&code.to_be_bytes());
        p
    }

    #[test]
    fn parses_every_opening() {
        let startup = msg(196_608, b"user\0postgres\0database\0postgres\0\0");
        let cancel = msg(CANCEL_REQUEST, &[0, 0, 0x30, 0x39, 1, 2, 3, 4]);
        let long_key = msg(CANCEL_REQUEST, &[[0u8, 0, 0, 7].as_slice(), &[9u8; 32]].concat());
        let tls = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01];
        let cases: &[(&[u8], Result<Hello, HelloError>)] = &[
            (&msg(SSL_REQUEST, b""), Ok(Hello::Ssl)),
            (&msg(GSSENC_REQUEST, b""), Ok(Hello::Gss)),
            (&startup, Ok(Hello::Startup { minor: 0 })),
            (&msg(196_610, b"user\0u\0\0"), Ok(Hello::Startup { minor: 2 })),
            (
                &cancel,
                Ok(Hello::Cancel(CancelKey {
                    pid: 12345,
                    secret: vec![1, 2, 3, 4],
                })),
            ),
            (
                &long_key,
                Ok(Hello::Cancel(CancelKey {
                    pid: 7,
                    secret: vec![9; 32],
                })),
            ),
            (&tls, Ok(Hello::DirectTls)),
            (&msg(196_608, b"user\0u\0"), Ok(Hello::Startup { minor: 0 })),
            (&msg(196_608, b"user\0u"), Err(HelloError::Unterminated)),
            (&startup[..20], Err(HelloError::Truncated { got: 20, want: 41 })),
            (&startup[..5], Err(HelloError::Truncated { got: 5, want: 8 })),
            (
                &msg(SSL_REQUEST, b"x"),
                Err(HelloError::Length {
                    len: 9,
                    what: "SSLRequest",
                }),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(&parse(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn rejects_garbage_and_absurd_lengths() {
        let cases: &[([u8; 8], Result<usize, HelloError>)] = &[
            (with_len(8, SSL_REQUEST), Ok(8)),
            (with_len(16, CANCEL_REQUEST), Ok(16)),
            (with_len(268, CANCEL_REQUEST), Ok(268)),
            (with_len(10_000, 196_608), Ok(10_000)),
            (
                *b"GET / HT",
                Err(HelloError::Code {
                    major: 0x2F20,
                    minor: 0x4854,
                }),
            ),
            (*b"\0\0\0\0\0\0\0\0", Err(HelloError::Code { major: 0, minor: 0 })),
            // Protocol 2 is gone since PostgreSQL 14.
            (with_len(296, 0x0002_0000), Err(HelloError::Code { major: 2, minor: 0 })),
            (
                with_len(8, 1234 << 16 | 5681),
                Err(HelloError::Code {
                    major: 1234,
                    minor: 5681,
                }),
            ),
            (
                with_len(16, SSL_REQUEST),
                Err(HelloError::Length {
                    len: 16,
                    what: "SSLRequest",
                }),
            ),
            (
                with_len(12, CANCEL_REQUEST),
                Err(HelloError::Length {
                    len: 12,
                    what: "CancelRequest",
                }),
            ),
            (
                with_len(269, CANCEL_REQUEST),
                Err(HelloError::Length {
                    len: 269,
                    what: "CancelRequest",
                }),
            ),
            (
                with_len(10_001, 196_608),
                Err(HelloError::Length {
                    len: 10_001,
                    what: "StartupMessage",
                }),
            ),
            (
                with_len(0x7FFF_FFFF, 196_608),
                Err(HelloError::Length {
                    len: 0x7FFF_FFFF,
                    what: "StartupMessage",
                }),
            ),
            (
                with_len(8, 196_608),
                Err(HelloError::Length {
                    len: 8,
                    what: "StartupMessage",
                }),
            ),
        ];
        for (prefix, want) in cases {
            assert_eq!(&message_len(prefix), want, "{prefix:?}");
        }
    }

    #[test]
    fn a_cancel_request_round_trips() {
        for secret in [vec![1, 2, 3, 4], vec![7; 256]] {
            let key = CancelKey { pid: 4242, secret };
            assert_eq!(parse(&cancel_request(&key)), Ok(Hello::Cancel(key)));
        }
    }
}
