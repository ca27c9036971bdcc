//! The body size limit every request passes before a handler reads it.

use poem::http::{HeaderValue, header};
use poem::{Body, Request};
use tokio::io::AsyncReadExt;

use super::error::{ApiError, ErrorCode};

/// Refuses bodies over `max` bytes with `413` before reading them whole:
/// by `Content-Length` when given, else by reading at most `max + 1` bytes
/// of a chunked body.
///
/// A request with no body and no `Content-Type` is treated as an empty JSON
/// body: an optional body may be left out (`curl -X POST` on logout), and a
/// missing required one is a `400` naming what is missing, not a `415`.
pub async fn limit_body(mut req: Request, max: usize) -> poem::Result<Request> {
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_none_or(|len| len.as_bytes() == b"0");
    if empty && !chunked && !req.headers().contains_key(header::CONTENT_TYPE) {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let too_large = || {
        poem::Error::from(ApiError::new(
            ErrorCode::PayloadTooLarge,
            "Request body too large",
        ))
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| {
                poem::Error::from(ApiError::new(
                    ErrorCode::ValidationFailed,
                    "Invalid Content-Length",
                ))
            })?;
        return if len > max as u64 {
            Err(too_large())
        } else {
            Ok(req)
        };
    }
    if chunked {
        let mut buf = Vec::new();
        let mut reader = req.take_body().into_async_read().take(max as u64 + 1);
        reader.read_to_end(&mut buf).await.map_err(|_| {
            poem::Error::from(ApiError::new(
                ErrorCode::ValidationFailed,
                "Could not read the request body",
            ))
        })?;
        if buf.len() > max {
            return Err(too_large());
        }
        req.set_body(Body::from(buf));
    }
    Ok(req)
}
