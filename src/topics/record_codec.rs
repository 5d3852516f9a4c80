//! The binary form of a topic record, for stores that keep records as opaque byte blobs
//! (the C ABI's host-supplied store, `lc_topic_create_with_store`).
//!
//! A blob is versioned and self-describing: every value carries its type tag, every
//! string and byte string its length, and the whole blob ends with a CRC-32 of what comes
//! before it, so a store that hands back damaged or foreign bytes gets a typed
//! [`RecordDecodeError`], never a wrong record and never a panic. Layout of version 1
//! (integers marked *varint* are unsigned LEB128; signed integers are zigzag-encoded
//! first):
//!
//! ```text
//! magic      'L' 'C'
//! version    1 byte (1)
//! seq        varint
//! timestamp  varint (ms)
//! key        0 (none) | 1 value
//! payload    0 bytes | 1 change
//!   bytes:   varint length, the bytes
//!   change:  namespace str, table str, change type byte, source change type byte,
//!            owner (0 | 1 str), columns (varint count, strs), row, old row (0 | 1 row)
//!   row:     varint count, values (as many as the columns)
//! crc32      4 bytes, little-endian, over everything before it (IEEE polynomial)
//!
//! str        varint length, UTF-8 bytes
//! value      tag byte: 0 NULL, 1 false, 2 true, 3 integer (zigzag varint),
//!            4 float (the 8 bytes of its bit pattern, little-endian: NaN payloads
//!            survive), 5 text (str), 6 bytes (varint length, bytes)
//! ```
//!
//! The partition and offset of a message are not in the blob: the store knows them.

use crate::sync::DataArc;
use crate::topics::log::{RowChange, TopicPayload, TopicRecord};
use crate::types::change::ChangeType;
use crate::types::ids::{SeqId, TableId, UserId};
use crate::types::value::{Row, Value};

/// The version of the blob layout [`encode_record`] writes.
pub const RECORD_FORMAT_VERSION: u8 = 1;

const MAGIC: [u8; 2] = *b"LC";
/// Magic, version: what precedes the fields.
const HEADER_LEN: usize = 3;
const CRC_LEN: usize = 4;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_TEXT: u8 = 5;
const TAG_BYTES: u8 = 6;

const PAYLOAD_BYTES: u8 = 0;
const PAYLOAD_CHANGE: u8 = 1;

/// Why a blob could not be decoded into a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordDecodeError {
    /// The blob ends before the field at byte `at` is complete.
    Truncated {
        /// Where the incomplete field starts.
        at: usize,
    },
    /// The blob does not begin with the record magic: it is not a livecore record.
    BadMagic,
    /// The blob is of a layout version this library does not know.
    UnsupportedVersion(u8),
    /// The checksum does not match the content: the blob was damaged.
    Checksum {
        /// The checksum stored in the blob.
        stored: u32,
        /// The checksum of the content.
        computed: u32,
    },
    /// A tag byte (value type, payload kind, change type, presence flag) has no meaning.
    InvalidTag {
        /// What the tag was for.
        what: &'static str,
        /// The byte found.
        tag: u8,
        /// Where.
        at: usize,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8 {
        /// Where the string starts.
        at: usize,
    },
    /// A varint is longer than 64 bits allow.
    VarintOverflow {
        /// Where it starts.
        at: usize,
    },
    /// A length or count is larger than the rest of the blob could hold.
    LengthTooLarge {
        /// Where it starts.
        at: usize,
        /// The length read.
        len: u64,
    },
    /// A row's length differs from the number of columns.
    RowArity {
        /// The columns.
        columns: usize,
        /// The row's values.
        values: usize,
    },
    /// Bytes follow the last field.
    TrailingBytes {
        /// Where they start.
        at: usize,
    },
}

impl std::fmt::Display for RecordDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordDecodeError::Truncated { at } => {
                write!(f, "the record is truncated (at byte {at})")
            }
            RecordDecodeError::BadMagic => f.write_str("the blob is not a livecore record"),
            RecordDecodeError::UnsupportedVersion(version) => {
                write!(f, "unsupported record layout version {version}")
            }
            RecordDecodeError::Checksum { stored, computed } => write!(
                f,
                "the record is corrupt: checksum 0x{computed:08x} does not match the stored 0x{stored:08x}"
            ),
            RecordDecodeError::InvalidTag { what, tag, at } => {
                write!(f, "invalid {what} tag {tag} at byte {at}")
            }
            RecordDecodeError::InvalidUtf8 { at } => {
                write!(f, "the string at byte {at} is not valid UTF-8")
            }
            RecordDecodeError::VarintOverflow { at } => {
                write!(f, "the integer at byte {at} overflows 64 bits")
            }
            RecordDecodeError::LengthTooLarge { at, len } => write!(
                f,
                "the length {len} at byte {at} is larger than the rest of the record"
            ),
            RecordDecodeError::RowArity { columns, values } => write!(
                f,
                "a row has {values} values for {columns} columns"
            ),
            RecordDecodeError::TrailingBytes { at } => {
                write!(f, "unexpected bytes after the record (at byte {at})")
            }
        }
    }
}

impl std::error::Error for RecordDecodeError {}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), the checksum every blob ends with.
/// crc32fast computes this same CRC (with a SIMD kernel where the CPU has one), so blobs
/// written by the former table-driven code still verify.
fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Appends the blob of `record` to `out`.
pub fn encode_record(record: &TopicRecord, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(RECORD_FORMAT_VERSION);
    put_varint(out, record.seq.0);
    put_varint(out, record.timestamp_ms);
    match &record.key {
        None => out.push(0),
        Some(key) => {
            out.push(1);
            put_value(out, key);
        }
    }
    match &record.payload {
        TopicPayload::Bytes(bytes) => {
            out.push(PAYLOAD_BYTES);
            put_bytes(out, bytes);
        }
        TopicPayload::Change(change) => {
            out.push(PAYLOAD_CHANGE);
            put_bytes(out, change.table_id.namespace().as_bytes());
            put_bytes(out, change.table_id.name().as_bytes());
            out.push(change.change_type as u8);
            out.push(change.source_type as u8);
            match &change.owner {
                None => out.push(0),
                Some(owner) => {
                    out.push(1);
                    put_bytes(out, owner.as_str().as_bytes());
                }
            }
            put_varint(out, change.columns.len() as u64);
            for column in change.columns.iter() {
                put_bytes(out, column.as_bytes());
            }
            put_row(out, &change.row);
            match &change.old_row {
                None => out.push(0),
                Some(row) => {
                    out.push(1);
                    put_row(out, row);
                }
            }
        }
    }
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The blob of `record`, as a new vector.
#[cfg(test)]
pub fn encode_record_to_vec(record: &TopicRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_record(record, &mut out);
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_row(out: &mut Vec<u8>, row: &Row) {
    put_varint(out, row.values().len() as u64);
    for value in row.values() {
        put_value(out, value);
    }
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Int(int) => {
            out.push(TAG_INT);
            put_varint(out, ((*int << 1) ^ (*int >> 63)) as u64);
        }
        Value::Float(float) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&float.to_bits().to_le_bytes());
        }
        Value::Text(text) => {
            out.push(TAG_TEXT);
            put_bytes(out, text.as_bytes());
        }
        Value::Bytes(bytes) => {
            out.push(TAG_BYTES);
            put_bytes(out, bytes);
        }
    }
}

/// Decodes a blob written by [`encode_record`] (of any version this library knows).
pub fn decode_record(blob: &[u8]) -> Result<TopicRecord, RecordDecodeError> {
    if blob.len() < MAGIC.len() || blob[..MAGIC.len()] != MAGIC {
        return Err(if MAGIC.starts_with(blob) {
            RecordDecodeError::Truncated { at: 0 }
        } else {
            RecordDecodeError::BadMagic
        });
    }
    let Some(&version) = blob.get(MAGIC.len()) else {
        return Err(RecordDecodeError::Truncated { at: MAGIC.len() });
    };
    if version != RECORD_FORMAT_VERSION {
        return Err(RecordDecodeError::UnsupportedVersion(version));
    }
    if blob.len() < HEADER_LEN + CRC_LEN {
        return Err(RecordDecodeError::Truncated { at: HEADER_LEN });
    }
    let (content, stored) = blob.split_at(blob.len() - CRC_LEN);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let computed = crc32(content);
    if stored != computed {
        return Err(RecordDecodeError::Checksum { stored, computed });
    }
    let mut reader = Reader {
        bytes: content,
        at: HEADER_LEN,
    };
    let record = reader.record()?;
    if reader.at != content.len() {
        return Err(RecordDecodeError::TrailingBytes { at: reader.at });
    }
    Ok(record)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, RecordDecodeError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(RecordDecodeError::Truncated { at: self.at })?;
        self.at += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&[u8], RecordDecodeError> {
        if len > self.remaining() {
            return Err(RecordDecodeError::Truncated { at: self.at });
        }
        let taken = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, RecordDecodeError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self
                .byte()
                .map_err(|_| RecordDecodeError::Truncated { at: start })?;
            let bits = u64::from(byte & 0x7F);
            // The tenth byte may only carry the top bit.
            if shift == 63 && bits > 1 {
                return Err(RecordDecodeError::VarintOverflow { at: start });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordDecodeError::VarintOverflow { at: start })
    }

    /// A length or count of items taking at least one byte each: never more than what is
    /// left, so a damaged length cannot make the decoder allocate.
    fn len(&mut self) -> Result<usize, RecordDecodeError> {
        let at = self.at;
        let len = self.varint()?;
        if len > self.remaining() as u64 {
            return Err(RecordDecodeError::LengthTooLarge { at, len });
        }
        Ok(len as usize)
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, RecordDecodeError> {
        let at = self.at;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(RecordDecodeError::InvalidTag { what, tag, at }),
        }
    }

    fn bytes(&mut self) -> Result<DataArc<[u8]>, RecordDecodeError> {
        let len = self.len()?;
        Ok(DataArc::from(self.take(len)?))
    }

    fn str(&mut self) -> Result<DataArc<str>, RecordDecodeError> {
        let at = self.at;
        let len = self.len()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(DataArc::from)
            .map_err(|_| RecordDecodeError::InvalidUtf8 { at })
    }

    fn change_type(&mut self) -> Result<ChangeType, RecordDecodeError> {
        let at = self.at;
        match self.byte()? {
            0 => Ok(ChangeType::Insert),
            1 => Ok(ChangeType::Update),
            2 => Ok(ChangeType::Delete),
            tag => Err(RecordDecodeError::InvalidTag {
                what: "change type",
                tag,
                at,
            }),
        }
    }

    fn value(&mut self) -> Result<Value, RecordDecodeError> {
        let at = self.at;
        Ok(match self.byte()? {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_INT => {
                let zigzag = self.varint()?;
                Value::Int(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
            }
            TAG_FLOAT => {
                let bytes = self.take(8)?;
                let mut bits = [0u8; 8];
                bits.copy_from_slice(bytes);
                Value::Float(f64::from_bits(u64::from_le_bytes(bits)))
            }
            TAG_TEXT => Value::Text(self.str()?),
            TAG_BYTES => Value::Bytes(self.bytes()?),
            tag => {
                return Err(RecordDecodeError::InvalidTag {
                    what: "value type",
                    tag,
                    at,
                })
            }
        })
    }

    fn row(&mut self, columns: usize) -> Result<Row, RecordDecodeError> {
        let count = self.len()?;
        if count != columns {
            return Err(RecordDecodeError::RowArity {
                columns,
                values: count,
            });
        }
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(self.value()?);
        }
        Ok(Row::new(values))
    }

    fn record(&mut self) -> Result<TopicRecord, RecordDecodeError> {
        let seq = SeqId(self.varint()?);
        let timestamp_ms = self.varint()?;
        let key = if self.flag("key presence")? {
            Some(self.value()?)
        } else {
            None
        };
        let at = self.at;
        let payload = match self.byte()? {
            PAYLOAD_BYTES => TopicPayload::Bytes(self.bytes()?),
            PAYLOAD_CHANGE => {
                let namespace = self.str()?;
                let name = self.str()?;
                let change_type = self.change_type()?;
                let source_type = self.change_type()?;
                let owner = if self.flag("owner presence")? {
                    Some(UserId::new(self.str()?))
                } else {
                    None
                };
                let count = self.len()?;
                let mut columns = Vec::with_capacity(count);
                for _ in 0..count {
                    columns.push(self.str()?);
                }
                let row = self.row(count)?;
                let old_row = if self.flag("old row presence")? {
                    Some(self.row(count)?)
                } else {
                    None
                };
                TopicPayload::Change(RowChange {
                    table_id: TableId::new(namespace, name),
                    change_type,
                    source_type,
                    owner,
                    columns: columns.into(),
                    row,
                    old_row,
                })
            }
            tag => {
                return Err(RecordDecodeError::InvalidTag {
                    what: "payload kind",
                    tag,
                    at,
                })
            }
        };
        Ok(TopicRecord {
            seq,
            timestamp_ms,
            key,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(0),
            Value::Int(-1),
            Value::Int(1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(0.0),
            Value::Float(-0.0),
            Value::Float(1.5),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::MIN_POSITIVE),
            Value::Float(f64::NAN),
            Value::text(""),
            Value::text("héllo \0 wörld"),
            Value::Bytes(DataArc::from(&[][..])),
            Value::Bytes(DataArc::from(&[0u8, 255, 7][..])),
        ]
    }

    fn change_record(old: bool, owner: bool) -> TopicRecord {
        let values = all_values();
        let columns: Vec<DataArc<str>> = (0..values.len())
            .map(|index| DataArc::from(format!("c{index}").as_str()))
            .collect();
        let mut reversed = values.clone();
        reversed.reverse();
        TopicRecord {
            seq: SeqId(u64::MAX),
            timestamp_ms: 1_700_000_000_123,
            key: Some(Value::Int(i64::MIN)),
            payload: TopicPayload::Change(RowChange {
                table_id: TableId::new("chat", "messages"),
                change_type: ChangeType::Insert,
                source_type: if old {
                    ChangeType::Update
                } else {
                    ChangeType::Delete
                },
                owner: owner.then(|| UserId::from("alice")),
                columns: columns.into(),
                row: Row::new(values),
                old_row: old.then(|| Row::new(reversed)),
            }),
        }
    }

    fn bytes_record(payload: &[u8], key: Option<Value>) -> TopicRecord {
        TopicRecord {
            seq: SeqId(0),
            timestamp_ms: 0,
            key,
            payload: TopicPayload::Bytes(DataArc::from(payload)),
        }
    }

    /// Bit-exact equality (NaN equals itself, -0.0 differs from 0.0).
    fn same_value(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            _ => a == b && std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    fn same_row(a: &Row, b: &Row) -> bool {
        a.values().len() == b.values().len()
            && a.values()
                .iter()
                .zip(b.values())
                .all(|(x, y)| same_value(x, y))
    }

    fn assert_round_trip(record: &TopicRecord) {
        let blob = encode_record_to_vec(record);
        let decoded = decode_record(&blob).expect("a fresh blob decodes");
        assert_eq!(decoded.seq, record.seq);
        assert_eq!(decoded.timestamp_ms, record.timestamp_ms);
        match (&decoded.key, &record.key) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!(same_value(a, b), "{a:?} vs {b:?}"),
            other => panic!("keys differ: {other:?}"),
        }
        match (&decoded.payload, &record.payload) {
            (TopicPayload::Bytes(a), TopicPayload::Bytes(b)) => assert_eq!(a, b),
            (TopicPayload::Change(a), TopicPayload::Change(b)) => {
                assert_eq!(a.table_id, b.table_id);
                assert_eq!(a.change_type, b.change_type);
                assert_eq!(a.source_type, b.source_type);
                assert_eq!(a.owner, b.owner);
                assert_eq!(a.columns, b.columns);
                assert!(same_row(&a.row, &b.row));
                match (&a.old_row, &b.old_row) {
                    (None, None) => {}
                    (Some(x), Some(y)) => assert!(same_row(x, y)),
                    other => panic!("old rows differ: {other:?}"),
                }
            }
            other => panic!("payloads differ: {other:?}"),
        }
    }

    #[test]
    fn every_value_type_round_trips_in_rows_and_keys() {
        assert_round_trip(&change_record(true, true));
        assert_round_trip(&change_record(false, false));
        for key in all_values() {
            assert_round_trip(&bytes_record(b"payload", Some(key)));
        }
        assert_round_trip(&bytes_record(b"", None));
        assert_round_trip(&bytes_record(&[0u8; 300], None));
    }

    #[test]
    fn nan_payload_bits_and_integer_extremes_are_exact() {
        let nan = f64::from_bits(0x7FF8_0000_DEAD_BEEF);
        let record = bytes_record(b"", Some(Value::Float(nan)));
        let decoded = decode_record(&encode_record_to_vec(&record)).unwrap();
        let Some(Value::Float(back)) = decoded.key else {
            panic!("not a float")
        };
        assert_eq!(back.to_bits(), nan.to_bits());
        for int in [i64::MIN, i64::MIN + 1, -64, 63, 64, i64::MAX - 1, i64::MAX] {
            let record = bytes_record(b"", Some(Value::Int(int)));
            let decoded = decode_record(&encode_record_to_vec(&record)).unwrap();
            assert_eq!(decoded.key, Some(Value::Int(int)));
        }
    }

    #[test]
    fn the_blob_starts_with_magic_and_version() {
        let blob = encode_record_to_vec(&bytes_record(b"x", None));
        assert_eq!(&blob[..3], b"LC\x01");
    }

    #[test]
    fn every_truncation_is_refused_with_a_typed_error() {
        let blob = encode_record_to_vec(&change_record(true, true));
        for len in 0..blob.len() {
            let error = decode_record(&blob[..len]).expect_err("a truncated blob");
            assert!(
                matches!(
                    error,
                    RecordDecodeError::Truncated { .. } | RecordDecodeError::Checksum { .. }
                ),
                "cut at {len}: {error:?}"
            );
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let blob = encode_record_to_vec(&change_record(true, false));
        for index in 0..blob.len() {
            for bit in 0..8 {
                let mut damaged = blob.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    decode_record(&damaged).is_err(),
                    "bit {bit} of byte {index} flipped went unnoticed"
                );
            }
        }
    }

    #[test]
    fn foreign_and_future_blobs_are_refused() {
        assert_eq!(decode_record(b"{}"), Err(RecordDecodeError::BadMagic));
        assert_eq!(
            decode_record(b"LC\x02rest-of-it"),
            Err(RecordDecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_record(b"L"),
            Err(RecordDecodeError::Truncated { at: 0 })
        );
    }

    #[test]
    fn checksum_is_the_ieee_crc32() {
        // The standard check value of CRC-32/ISO-HDLC: a different polynomial, reflection
        // or final XOR would change the format and fail here.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // The bitwise definition, on bytes of every value, agrees with the library.
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut reference = u32::MAX;
        for byte in &bytes {
            reference ^= u32::from(*byte);
            for _ in 0..8 {
                reference = if reference & 1 != 0 {
                    (reference >> 1) ^ 0xEDB8_8320
                } else {
                    reference >> 1
                };
            }
        }
        assert_eq!(crc32(&bytes), !reference);
    }

    /// A blob with a valid checksum over `content` (header included).
    fn sealed(content: &[u8]) -> Vec<u8> {
        let mut blob = content.to_vec();
        blob.extend_from_slice(&crc32(content).to_le_bytes());
        blob
    }

    #[test]
    fn well_sealed_garbage_is_refused_by_structure() {
        // Truncated inside the fields, checksum right.
        let mut content = b"LC\x01".to_vec();
        content.push(5); // seq
        assert!(matches!(
            decode_record(&sealed(&content)),
            Err(RecordDecodeError::Truncated { .. })
        ));
        // A key whose value tag is unknown.
        let bad_tag = sealed(b"LC\x01\x05\x00\x01\x09");
        assert!(matches!(
            decode_record(&bad_tag),
            Err(RecordDecodeError::InvalidTag {
                what: "value type",
                tag: 9,
                ..
            })
        ));
        // A payload length far beyond the blob.
        let huge = sealed(b"LC\x01\x05\x00\x00\x00\xff\xff\xff\xff\x0f");
        assert!(matches!(
            decode_record(&huge),
            Err(RecordDecodeError::LengthTooLarge { .. })
        ));
        // A varint of eleven bytes.
        let long = sealed(b"LC\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
        assert!(matches!(
            decode_record(&long),
            Err(RecordDecodeError::VarintOverflow { .. })
        ));
        // Text that is not UTF-8.
        let text = sealed(b"LC\x01\x05\x00\x01\x05\x02\xff\xfe\x00\x00");
        assert!(matches!(
            decode_record(&text),
            Err(RecordDecodeError::InvalidUtf8 { .. })
        ));
        // Bytes after the last field.
        let mut trailing = encode_record_to_vec(&bytes_record(b"x", None));
        trailing.truncate(trailing.len() - 4);
        trailing.push(0);
        assert!(matches!(
            decode_record(&sealed(&trailing)),
            Err(RecordDecodeError::TrailingBytes { .. })
        ));
        // A row with fewer values than columns.
        let mut arity = b"LC\x01\x01\x00\x00\x01".to_vec();
        arity.extend_from_slice(b"\x01n\x01t\x00\x00\x00\x02\x01a\x01b\x01\x00\x00");
        assert!(matches!(
            decode_record(&sealed(&arity)),
            Err(RecordDecodeError::RowArity {
                columns: 2,
                values: 1
            })
        ));
    }
}
