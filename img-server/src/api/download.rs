//! Serving one artifact file: `ETag` (its sha256), `If-None-Match`, `Last-Modified`, and one
//! byte range per RFC 9110 §14 (a last byte past the end, even one too big for u64, is the
//! end; 416 only when the range starts at or past the end; a malformed `Range`, several
//! ranges, or an `If-Range` that does not match get the whole file). The body is streamed in
//! chunks from the already opened file, never read whole.

use super::error::ApiError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;
use std::ops::RangeInclusive;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const CHUNK: usize = 64 * 1024;

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    /// No range, or one to ignore: the whole file (200).
    Whole,
    /// These bytes (206).
    Part(RangeInclusive<u64>),
    /// A range that starts at or past the end (416).
    Unsatisfiable,
}

/// A run of digits as a number; `None` for no digits or anything else, `Some(u64::MAX)` for
/// digits beyond u64 (a position past any file).
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

pub fn parse_range(header: &str, len: u64) -> Wanted {
    let Some((unit, set)) = header.trim().split_once('=') else { return Wanted::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return Wanted::Whole };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last N bytes.
        return match position(last) {
            None => Wanted::Whole,
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part(len.saturating_sub(n)..=len - 1),
        };
    }
    let Some(start) = position(first) else { return Wanted::Whole };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match position(last) {
            Some(end) if end >= start => end,
            _ => return Wanted::Whole,
        }
    };
    if start >= len {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part(start..=end.min(len - 1))
}

/// The response for `file` (opened by the caller, a regular file) named `name`.
pub async fn serve(req: &HttpRequest, file: std::fs::File, name: &str, sha256: &str) -> Result<HttpResponse, ApiError> {
    let meta = file.metadata().map_err(|e| ApiError::Internal(format!("artifact `{name}`: {e}")))?;
    let len = meta.len();
    let modified = meta.modified().ok().map(|t| header::HttpDate::from(t).to_string());
    let etag = if sha256.is_empty() {
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        format!("W/\"{len:x}-{:x}\"", mtime.map(|d| d.as_secs()).unwrap_or(0))
    } else {
        format!("\"{sha256}\"")
    };
    let given = |h: header::HeaderName| req.headers().get(h).and_then(|v| v.to_str().ok()).map(str::trim);
    if given(header::IF_NONE_MATCH).is_some_and(|v| v == "*" || v.split(',').any(|t| t.trim() == etag)) {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    // If-Range: a strong ETag or the exact Last-Modified date, else the whole file.
    let range_applies = match given(header::IF_RANGE) {
        None => true,
        Some(v) => (v == etag && !etag.starts_with("W/")) || modified.as_deref() == Some(v),
    };
    let wanted = match given(header::RANGE) {
        Some(r) if range_applies => parse_range(r, len),
        _ => Wanted::Whole,
    };

    let mut resp = match &wanted {
        Wanted::Whole => HttpResponse::Ok(),
        Wanted::Part(_) => HttpResponse::PartialContent(),
        Wanted::Unsatisfiable => HttpResponse::RangeNotSatisfiable(),
    };
    resp.insert_header((header::ACCEPT_RANGES, "bytes")).insert_header((header::ETAG, etag));
    if let Some(m) = &modified {
        resp.insert_header((header::LAST_MODIFIED, m.as_str()));
    }
    if !sha256.is_empty() {
        resp.insert_header(("X-Checksum-Sha256", sha256));
    }
    let range = match wanted {
        Wanted::Unsatisfiable => {
            resp.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
            return Ok(resp.json(serde_json::json!({
                "error": "range_not_satisfiable",
                "detail": format!("the range starts at or past the end of `{name}` ({len} bytes)"),
            })));
        }
        Wanted::Part(r) => {
            resp.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{len}", r.start(), r.end())));
            r
        }
        Wanted::Whole if len == 0 => return Ok(finish(resp, name).body(Vec::<u8>::new())),
        Wanted::Whole => 0..=len - 1,
    };
    let (start, count) = (*range.start(), range.end() - range.start() + 1);
    let mut f = tokio::fs::File::from_std(file);
    f.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| ApiError::Internal(format!("artifact `{name}`: {e}")))?;
    let chunks = stream::unfold((f, count), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
        match f.read(&mut buf).await {
            // Shorter than it was: end the body (the length sent tells the client).
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(actix_web::web::Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    let mut resp = finish(resp, name);
    Ok(resp.body(actix_web::body::SizedStream::new(count, chunks)))
}

fn finish(mut resp: actix_web::HttpResponseBuilder, name: &str) -> actix_web::HttpResponseBuilder {
    let disposition = header::ContentDisposition::attachment(name.to_owned());
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")))
        .insert_header((header::CONTENT_DISPOSITION, disposition));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let part = |r: RangeInclusive<u64>| Wanted::Part(r);
        assert_eq!(parse_range("bytes=0-99", 1000), part(0..=99));
        assert_eq!(parse_range("bytes=0-99999999999999999999", 1000), part(0..=999), "a huge end is the end");
        assert_eq!(parse_range("bytes=10-", 1000), part(10..=999));
        assert_eq!(parse_range("bytes=-100", 1000), part(900..=999));
        assert_eq!(parse_range("bytes=-5000", 1000), part(0..=999), "a suffix longer than the file");
        assert_eq!(parse_range("BYTES = 5 - 9", 1000), part(5..=9));
        assert_eq!(parse_range("bytes=999-2000", 1000), part(999..=999));
        assert_eq!(parse_range("bytes=1000-", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=99999999999999999999-", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Wanted::Unsatisfiable);
        for ignored in
            ["bytes=9-5", "bytes=a-b", "bytes=", "bytes=-", "items=0-5", "bytes=0-1,5-6", "0-5", "bytes=+1-2"]
        {
            assert_eq!(parse_range(ignored, 1000), Wanted::Whole, "{ignored}");
        }
    }
}
