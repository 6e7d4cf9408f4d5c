//! Bytes of Raft log entries, snapshots and Raft messages: a one-byte format tag, then postcard.
//!
//! Earlier versions wrote JSON, where a byte array is a list of numbers (a 1 MiB value became ~3.6 MiB on disk and
//! on the wire). JSON never starts with the tag byte, so everything without it is read as JSON: an upgraded member
//! starts on its old log and snapshot, and answers an older peer's JSON message in JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// First byte of everything this version writes; postcard follows. JSON starts with `{`, `[`, `"`, a digit, `-`,
/// a letter or whitespace, never with a control byte.
const POSTCARD_TAG: u8 = 0x01;

/// How a stored value or message is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Tag byte + postcard: what this version writes.
    Postcard,
    /// Untagged JSON: what earlier versions wrote (read, and used to answer a JSON request).
    Json,
}

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode as {format:?}: {message}")]
    Encode { format: Format, message: String },
    #[error("cannot decode {len} bytes as {format:?}: {message}")]
    Decode {
        format: Format,
        len: usize,
        message: String,
    },
}

/// Encodes `value` in the current format (tag + postcard).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_as(Format::Postcard, value)
}

/// Encodes `value` in `format` (JSON only to answer a peer that spoke JSON).
pub fn encode_as<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<Vec<u8>, CodecError> {
    let encoded = match format {
        Format::Postcard => to_tagged_postcard(value),
        Format::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
    };
    encoded.map_err(|message| CodecError::Encode { format, message })
}

/// Sizes first, then writes into a buffer of exactly that size: growing a vector through a 1 MiB value would copy
/// it again and again.
fn to_tagged_postcard<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let len = encoded_len(value).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; len];
    buf[0] = POSTCARD_TAG;
    let written = postcard::to_slice(value, &mut buf[1..])
        .map_err(|e| e.to_string())?
        .len();
    buf.truncate(written + 1);
    Ok(buf)
}

/// Bytes `encode(value)` returns, without building them.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    postcard::serialize_with_flavor::<T, _, usize>(value, postcard::ser_flavors::Size::default())
        .map(|n| n + 1)
        .map_err(|e| CodecError::Encode {
            format: Format::Postcard,
            message: e.to_string(),
        })
}

/// Decodes bytes in either format.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_with_format(bytes).map(|(value, _)| value)
}

/// Decodes bytes in either format and tells which one it was.
pub fn decode_with_format<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, Format), CodecError> {
    let fail = |format, message: String| CodecError::Decode {
        format,
        len: bytes.len(),
        message,
    };
    match bytes.split_first() {
        Some((&POSTCARD_TAG, body)) => {
            let (value, rest) = postcard::take_from_bytes(body).map_err(|e| fail(Format::Postcard, e.to_string()))?;
            // Trailing bytes mean the writer and reader disagree on the type: refuse rather than guess.
            if !rest.is_empty() {
                return Err(fail(Format::Postcard, format!("{} trailing bytes", rest.len())));
            }
            Ok((value, Format::Postcard))
        }
        _ => serde_json::from_slice(bytes)
            .map(|value| (value, Format::Json))
            .map_err(|e| fail(Format::Json, e.to_string())),
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
