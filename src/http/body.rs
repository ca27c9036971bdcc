//! The body size limit and the body timeout every request passes before a
//! handler reads it.

use std::time::Duration;

use poem::http::{HeaderValue, header};
use poem::{Body, Request};
use tokio::io::AsyncReadExt;

use super::error::{ApiError, ErrorCode};
use super::server::ConnectionHandle;

/// Reads the body through the limit, whatever the headers say: at most
/// `max + 1` bytes are ever buffered, and more is `413`. HTTP/1.1 with a
/// `Content-Length` over the limit is refused before reading; chunked
/// HTTP/1.1 and HTTP/2 (whose bodies carry no length at all) are cut at
/// the limit. A body that has not fully arrived within `timeout` closes
/// the connection (a client trickling a body holds nothing for long).
///
/// A request with an empty body and no `Content-Type` is treated as an
/// empty JSON body: an optional body may be left out (`curl -X POST` on
/// logout), and a missing required one is a `400` naming what is missing,
/// not a `415`.
pub async fn limit_body(mut req: Request, max: usize, timeout: Duration) -> poem::Result<Request> {
    let too_large = || {
        poem::Error::from(ApiError::new(
            ErrorCode::PayloadTooLarge,
            "Request body too large",
        ))
    };
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(len) => Some(
            len.to_str()
                .ok()
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or_else(|| {
                    poem::Error::from(ApiError::new(
                        ErrorCode::ValidationFailed,
                        "Invalid Content-Length",
                    ))
                })?,
        ),
    };
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let limit = max as u64 + 1;
    let capacity = declared.map_or(0, |len| len.min(limit)) as usize;
    let reader = req.take_body().into_async_read().take(limit);
    let read = async move {
        let mut buf = Vec::with_capacity(capacity);
        let mut reader = reader;
        reader.read_to_end(&mut buf).await.map(|_| buf)
    };
    let buf = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(buf)) => buf,
        Ok(Err(_)) => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "Could not read the request body",
            )
            .into());
        }
        Err(_) => {
            if let Some(connection) = req.extensions().get::<ConnectionHandle>() {
                connection.close();
            }
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "The request body did not arrive in time",
            )
            .into());
        }
    };
    if buf.len() > max {
        return Err(too_large());
    }
    if buf.is_empty() && !req.headers().contains_key(header::CONTENT_TYPE) {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    req.set_body(Body::from(buf));
    Ok(req)
}
