//! Request bodies read up to a limit. Beyond it the rest of the body is read and dropped, up to
//! [`MAX_DRAINED_BYTES`] more, before the 413 is answered: closing a connection with unread
//! bytes in its receive buffer makes the kernel send a reset, and a client still sending its
//! body would see "connection reset" instead of the answer.

use axum::body::{Body, Bytes, HttpBody as _};
use http_body_util::BodyExt as _;

/// Most bytes read and dropped past the limit before giving up on the client (the connection is
/// then closed without an answer it can read).
pub const MAX_DRAINED_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The client's body could not be read (disconnect, bad chunking).
    Read(String),
}

/// Reads `body` if it holds at most `max_bytes`.
pub async fn read_limited(mut body: Body, max_bytes: usize) -> Result<Bytes, BodyError> {
    let hint = body.size_hint();
    let declared_bytes = usize::try_from(hint.lower()).unwrap_or(usize::MAX);
    if declared_bytes > max_bytes.saturating_add(MAX_DRAINED_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(declared_bytes.min(max_bytes));
    let mut received_bytes = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            // Over the limit already: the answer is 413 whatever else went wrong.
            Err(_) if received_bytes > max_bytes => return Err(BodyError::TooLarge),
            Err(e) => return Err(BodyError::Read(e.to_string())),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received_bytes = received_bytes.saturating_add(data.len());
        if received_bytes > max_bytes.saturating_add(MAX_DRAINED_BYTES) {
            return Err(BodyError::TooLarge);
        }
        if received_bytes <= max_bytes {
            buf.extend_from_slice(&data);
        }
    }
    if received_bytes > max_bytes {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_read_longer_ones_refused() {
        let ok = read_limited(Body::from(vec![b'a'; 10]), 10).await;
        assert_eq!(ok.as_deref(), Ok(&[b'a'; 10][..]));
        assert_eq!(
            read_limited(Body::from(vec![b'a'; 11]), 10).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read_limited(Body::from(vec![0u8; MAX_DRAINED_BYTES + 11]), 10).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read_limited(Body::empty(), 10).await.as_deref(),
            Ok(&[][..])
        );
    }
}
