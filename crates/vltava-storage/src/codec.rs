//! The record-batch codecs (Kafka's compression.type ids 0-4), for the few places that look
//! inside batches: the log cleaner and the broker's record checks. Decompression is bounded, so
//! a small batch that inflates enormously (a compression bomb) is refused instead of exhausting
//! memory. Compression reuses the `kafka-protocol` crate's compressors (Kafka's framings).

use std::io::Read;

use bytes::BytesMut;
use kafka_protocol::compression::Compressor;

pub const CODEC_NONE: i16 = 0;
pub const CODEC_GZIP: i16 = 1;
pub const CODEC_SNAPPY: i16 = 2;
pub const CODEC_LZ4: i16 = 3;
pub const CODEC_ZSTD: i16 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown compression codec {0}")]
    Unknown(i16),
    #[error("records inflate beyond {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    #[error("cannot decompress records: {0}")]
    Corrupt(String),
}

/// xerial snappy-java's stream header, which Kafka's Java client writes.
const SNAPPY_XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const SNAPPY_XERIAL_HEADER_BYTES: usize = 16;

fn read_bounded(mut r: impl Read, limit_bytes: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    r.by_ref()
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if out.len() > limit_bytes {
        return Err(CodecError::TooLarge { limit_bytes });
    }
    Ok(out)
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit_bytes: usize) -> Result<(), CodecError> {
    let n = snap::raw::decompress_len(block).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if out.len() + n > limit_bytes {
        return Err(CodecError::TooLarge { limit_bytes });
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    Ok(())
}

fn snappy(data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    if !data.starts_with(SNAPPY_XERIAL_MAGIC) {
        snappy_block(data, &mut out, limit_bytes)?;
        return Ok(out);
    }
    let mut rest = data
        .get(SNAPPY_XERIAL_HEADER_BYTES..)
        .ok_or_else(|| CodecError::Corrupt("truncated snappy stream header".into()))?;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(CodecError::Corrupt("truncated snappy block length".into()));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| CodecError::Corrupt("truncated snappy block".into()))?;
        snappy_block(block, &mut out, limit_bytes)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Decompresses the records section of a batch written with `codec`, refusing to produce more
/// than `limit_bytes`.
pub fn decompress(codec: i16, data: &[u8], limit_bytes: usize) -> Result<Vec<u8>, CodecError> {
    match codec {
        CODEC_NONE => {
            if data.len() > limit_bytes {
                return Err(CodecError::TooLarge { limit_bytes });
            }
            Ok(data.to_vec())
        }
        CODEC_GZIP => read_bounded(flate2::read::MultiGzDecoder::new(data), limit_bytes),
        CODEC_SNAPPY => snappy(data, limit_bytes),
        CODEC_LZ4 => {
            let d = lz4::Decoder::new(data).map_err(|e| CodecError::Corrupt(e.to_string()))?;
            read_bounded(d, limit_bytes)
        }
        CODEC_ZSTD => {
            let d = zstd::stream::read::Decoder::new(data)
                .map_err(|e| CodecError::Corrupt(e.to_string()))?;
            read_bounded(d, limit_bytes)
        }
        other => Err(CodecError::Unknown(other)),
    }
}

/// Compresses a records section with `codec`, in the framing Kafka clients read, at the codec's
/// default level.
pub fn compress(codec: i16, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    compress_at(codec, raw, None)
}

/// Compresses a records section with `codec` at `level` (Kafka's `compression.gzip.level`,
/// `compression.lz4.level`, `compression.zstd.level`; `None` or gzip's -1 for the default;
/// snappy has no levels). The framings are Kafka's: a gzip stream, an LZ4 frame of independent
/// blocks, a zstd frame, xerial-framed snappy.
pub fn compress_at(codec: i16, raw: &[u8], level: Option<i32>) -> Result<Vec<u8>, CodecError> {
    use kafka_protocol::compression as c;
    use std::io::Write;
    fn with<C: Compressor<BytesMut>>(raw: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut out = BytesMut::new();
        C::compress(&mut out, |b: &mut C::BufMut| {
            bytes::BufMut::put_slice(b, raw);
            Ok(())
        })
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
        Ok(out.to_vec())
    }
    let io_err = |e: std::io::Error| CodecError::Corrupt(e.to_string());
    match (codec, level) {
        (CODEC_NONE, _) => Ok(raw.to_vec()),
        (CODEC_GZIP, Some(l)) if (1..=9).contains(&l) => {
            let mut e =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(l as u32));
            e.write_all(raw).map_err(io_err)?;
            e.finish().map_err(io_err)
        }
        (CODEC_GZIP, _) => with::<c::Gzip>(raw),
        (CODEC_SNAPPY, _) => with::<c::Snappy>(raw),
        (CODEC_LZ4, Some(l)) => {
            let mut e = lz4::EncoderBuilder::new()
                .level(l.clamp(1, 17) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(io_err)?;
            e.write_all(raw).map_err(io_err)?;
            let (out, result) = e.finish();
            result.map_err(io_err)?;
            Ok(out)
        }
        (CODEC_LZ4, None) => with::<c::Lz4>(raw),
        (CODEC_ZSTD, Some(l)) => zstd::stream::encode_all(raw, l).map_err(io_err),
        (CODEC_ZSTD, None) => with::<c::Zstd>(raw),
        (other, _) => Err(CodecError::Unknown(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_is_bounded() {
        let raw: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in 0..=4 {
            let packed = compress(codec, &raw).unwrap();
            assert_eq!(
                decompress(codec, &packed, raw.len()).unwrap(),
                raw,
                "codec {codec}"
            );
            assert!(matches!(
                decompress(codec, &packed, raw.len() - 1),
                Err(CodecError::TooLarge { .. })
            ));
        }
        assert!(matches!(compress(5, &raw), Err(CodecError::Unknown(5))));
        assert!(decompress(CODEC_GZIP, b"not gzip", 100).is_err());
        assert!(decompress(CODEC_ZSTD, b"not zstd", 100).is_err());
    }
}
