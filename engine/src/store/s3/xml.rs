//! Decoding the XML bodies S3 answers with: listings, multipart upload ids
//! and error codes. Bytes from the network: every malformed body is an
//! error (or an empty code), never a panic (fuzzed: see fuzz/).

use super::super::{ListPage, ObjectMeta, StoreError, StoreResult};

/// A ListObjectsV2 reply as one page; keys are URL-decoded if the server
/// says it encoded them.
pub fn list_page(prefix: &str, body: &[u8]) -> StoreResult<ListPage> {
    let text = String::from_utf8_lossy(body);
    let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&text)
        .map_err(|e| StoreError::Unavailable(format!("{prefix}: bad listing reply: {e}")))?;
    let url_encoded = parsed.encoding_type.as_deref() == Some("url");
    let mut objects = Vec::with_capacity(parsed.contents.len());
    for item in parsed.contents {
        let key = if url_encoded {
            percent_encoding::percent_decode_str(&item.key.replace('+', " "))
                .decode_utf8()
                .map_err(|e| StoreError::Unavailable(format!("listed key: {e}")))?
                .into_owned()
        } else {
            item.key
        };
        objects.push(ObjectMeta {
            key,
            size: item.size.unwrap_or(0),
        });
    }
    let truncated = parsed.next_continuation_token.is_some();
    let next = if truncated {
        objects.last().map(|o| o.key.clone())
    } else {
        None
    };
    Ok(ListPage { objects, next })
}

/// The upload id in a CreateMultipartUpload reply.
pub fn upload_id(key: &str, body: &[u8]) -> StoreResult<String> {
    let text = String::from_utf8_lossy(body);
    let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(&text).map_err(|e| {
        StoreError::Unavailable(format!("{key}: bad CreateMultipartUpload reply: {e}"))
    })?;
    Ok(parsed.upload_id().to_string())
}

/// `Code: Message` of an S3 error body, or what of it there is.
pub fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(text[start..end].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => String::new(),
    }
}
