//! The one frame around every message this crate stores: magic `LN`, the format version,
//! the kind, the body, and a CRC-32 (IEEE, crc32fast) of everything before it, as
//! livecore's topic record codec frames its blobs.
//!
//! The frame is this crate's own rather than borrowed from `livecore::topics::record_codec`:
//! there it is inline in the topic record decoder, under the topic record's magic and
//! error type, and exposing it would make a topics API of what is a few lines here.

use super::CodecError;

/// The layout version this crate writes.
pub const FORMAT_VERSION: u8 = 1;

const MAGIC: [u8; 2] = *b"LN";
/// Magic, version, kind.
const HEADER_LEN: usize = MAGIC.len() + 2;
const CRC_LEN: usize = 4;

/// A new message of `kind`: its header written, the body to follow.
pub(super) fn begin(kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(kind);
    out
}

/// Ends a message begun with [`begin`]: appends the checksum.
pub(super) fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A checked frame.
pub(super) struct Opened<'a> {
    /// The message without its checksum (header included: offsets count from its start).
    pub content: &'a [u8],
    /// Where the body starts in `content`.
    pub body_at: usize,
    /// The kind byte.
    pub kind: u8,
}

/// Checks magic, version and checksum.
pub(super) fn open(bytes: &[u8]) -> Result<Opened<'_>, CodecError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let Some(&version) = bytes.get(MAGIC.len()) else {
        return Err(CodecError::Truncated { at: MAGIC.len() });
    };
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(CodecError::Truncated {
            at: MAGIC.len() + 1,
        });
    }
    let (content, crc) = bytes.split_at(bytes.len() - CRC_LEN);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32fast::hash(content);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    Ok(Opened {
        content,
        body_at: HEADER_LEN,
        kind: content[HEADER_LEN - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_the_ieee_crc32_of_what_precedes_it() {
        let sealed = seal(begin(7));
        assert_eq!(&sealed[..HEADER_LEN], b"LN\x01\x07");
        let crc = u32::from_le_bytes(sealed[HEADER_LEN..].try_into().unwrap());
        // The standard check value of CRC-32/ISO-HDLC is over "123456789"; here the
        // header is checked the same way against crc32fast.
        assert_eq!(crc, crc32fast::hash(b"LN\x01\x07"));
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let opened = open(&sealed).unwrap();
        assert_eq!(
            (opened.kind, opened.body_at, opened.content.len()),
            (7, 4, 4)
        );
    }

    #[test]
    fn short_foreign_and_future_frames_are_typed_errors() {
        assert_eq!(open(b"L").err(), Some(CodecError::BadMagic));
        assert_eq!(open(b"LN").err(), Some(CodecError::Truncated { at: 2 }));
        assert_eq!(
            open(b"LN\x02\x01\0\0\0\0").err(),
            Some(CodecError::UnsupportedVersion(2))
        );
        assert_eq!(
            open(b"LN\x01\x01").err(),
            Some(CodecError::Truncated { at: 3 })
        );
    }
}
