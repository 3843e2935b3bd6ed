//! Content codings (RFC 9110 §8.4): undoing and applying `gzip`, `deflate`, `br` and `zstd`.
//!
//! Captures disagree on what a body is: `af record` keeps the bytes as they went over the wire
//! (still compressed), HAR and proxymock keep the decoded content beside the original
//! `Content-Encoding` header ([`crate::Body::decoded`]). Whoever replays or exports a body must
//! make the bytes and the header agree again; these are the tools for it.

use std::io::{Read, Write};

/// One content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (and the legacy `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped per the RFC; raw deflate, which some servers send, is read too.
    Deflate,
    /// `br` (Brotli).
    Br,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// The coding a `Content-Encoding` token names; `None` for `identity` and unknown ones.
    pub fn parse(token: &str) -> Result<Option<Self>, String> {
        match token.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(None),
            "gzip" | "x-gzip" => Ok(Some(Self::Gzip)),
            "deflate" => Ok(Some(Self::Deflate)),
            "br" => Ok(Some(Self::Br)),
            "zstd" => Ok(Some(Self::Zstd)),
            other => Err(format!("content coding {other:?} is not one af knows")),
        }
    }

    /// The token, as `Content-Encoding` and `Accept-Encoding` spell it.
    pub fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Br => "br",
            Self::Zstd => "zstd",
        }
    }
}

/// The codings of a `Content-Encoding` value, in the order they were applied.
pub fn codings(content_encoding: &str) -> Result<Vec<Coding>, String> {
    let mut out = Vec::new();
    for t in content_encoding.split(',') {
        if let Some(c) = Coding::parse(t)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// Undoes `codings` (last applied first).
pub fn decode(codings: &[Coding], bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut cur = bytes.to_vec();
    for c in codings.iter().rev() {
        cur =
            decode_one(*c, &cur).map_err(|e| format!("{} body does not decode: {e}", c.token()))?;
    }
    Ok(cur)
}

fn decode_one(c: Coding, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match c {
        Coding::Gzip => {
            flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
        }
        Coding::Deflate => {
            if flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out).is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(bytes).read_to_end(&mut out)?;
            }
        }
        Coding::Br => {
            brotli::Decompressor::new(bytes, 64 * 1024).read_to_end(&mut out)?;
        }
        Coding::Zstd => {
            zstd::stream::read::Decoder::new(bytes)?.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// Applies `codings` in order.
pub fn encode(codings: &[Coding], bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut cur = bytes.to_vec();
    for c in codings {
        cur =
            encode_one(*c, &cur).map_err(|e| format!("cannot {}-encode a body: {e}", c.token()))?;
    }
    Ok(cur)
}

fn encode_one(c: Coding, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    Ok(match c {
        Coding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(bytes)?;
            w.finish()?
        }
        Coding::Deflate => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(bytes)?;
            w.finish()?
        }
        Coding::Br => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
                w.write_all(bytes)?;
                w.flush()?;
            }
            out
        }
        Coding::Zstd => zstd::stream::encode_all(bytes, 3)?,
    })
}

/// Does an `Accept-Encoding` value accept `coding`? Absent means any coding (RFC 9110
/// §12.5.3), a `q=0` refuses it, `*` stands for codings not listed.
pub fn accepts(accept_encoding: Option<&str>, coding: Coding) -> bool {
    let Some(v) = accept_encoding else { return true };
    let mut star = None;
    for item in v.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .next()
            .unwrap_or(1.0);
        if name == "*" {
            star = Some(q > 0.0);
        } else if Coding::parse(&name).ok().flatten() == Some(coding) {
            return q > 0.0;
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coding_round_trips_and_stacks() {
        let text = b"{\"fact\":\"cats sleep 70% of their lives\"}".repeat(20);
        for c in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
            let enc = encode(&[c], &text).expect("encodes");
            assert_ne!(enc, text, "{c:?} changed nothing");
            assert_eq!(decode(&[c], &enc).expect("decodes"), text, "{c:?}");
        }
        let both = codings("gzip, br").expect("known");
        assert_eq!(both, [Coding::Gzip, Coding::Br]);
        let enc = encode(&both, &text).expect("encodes");
        assert_eq!(decode(&both, &enc).expect("decodes"), text);
        assert!(codings("compress").is_err());
        assert_eq!(codings("identity").expect("known"), []);
    }

    #[test]
    fn raw_deflate_is_read_too_and_garbage_is_an_error() {
        let mut w = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(b"hello").expect("write");
        let raw = w.finish().expect("finish");
        assert_eq!(decode(&[Coding::Deflate], &raw).expect("raw deflate"), b"hello");
        let err = decode(&[Coding::Gzip], b"not gzip at all").expect_err("garbage");
        assert!(err.contains("gzip"), "{err}");
    }

    #[test]
    fn accept_encoding_rules() {
        assert!(accepts(None, Coding::Br));
        assert!(accepts(Some("gzip, deflate, br"), Coding::Br));
        assert!(!accepts(Some("gzip, deflate"), Coding::Br));
        assert!(!accepts(Some("gzip;q=0, *"), Coding::Gzip));
        assert!(accepts(Some("identity, *;q=0.5"), Coding::Zstd));
        assert!(!accepts(Some("identity"), Coding::Gzip));
    }
}
