//! Where a log's objects live in the object store:
//!
//! ```text
//! <prefix>/<log id:020>/<segment id:020>/<fragment index:020>.frag
//! ```
//!
//! Zero-padded decimal, so a listing in key order is fragment order. A
//! segment's objects are found by one paginated listing of its prefix,
//! never by probing fragment by fragment.

use crate::meta::{LogId, SegmentId};
use crate::store::{list_all, validate_key, ObjectStore, StoreError, StoreResult};

const FRAGMENT_SUFFIX: &str = ".frag";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

/// One fragment object found by listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFragment {
    pub index: u64,
    pub key: String,
    pub size: u64,
}

impl Layout {
    pub fn new(prefix: &str) -> StoreResult<Layout> {
        validate_key(prefix)?;
        Ok(Layout {
            prefix: prefix.to_string(),
        })
    }

    /// The prefix every log's objects live under (`<prefix>/`).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    pub fn log_prefix(&self, log: LogId) -> String {
        format!("{}/{log:020}/", self.prefix)
    }

    pub fn segment_prefix(&self, log: LogId, segment: SegmentId) -> String {
        format!("{}/{log:020}/{segment:020}/", self.prefix)
    }

    pub fn fragment_key(&self, log: LogId, segment: SegmentId, index: u64) -> String {
        format!(
            "{}{index:020}{FRAGMENT_SUFFIX}",
            self.segment_prefix(log, segment)
        )
    }

    /// The fragment index of `key`, if it is a fragment key of that segment.
    pub fn parse_fragment_key(&self, log: LogId, segment: SegmentId, key: &str) -> Option<u64> {
        let name = key.strip_prefix(&self.segment_prefix(log, segment))?;
        let digits = name.strip_suffix(FRAGMENT_SUFFIX)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Every fragment object of a segment, in index order.
    pub async fn list_fragments<S: ObjectStore + ?Sized>(
        &self,
        store: &S,
        log: LogId,
        segment: SegmentId,
    ) -> StoreResult<Vec<ListedFragment>> {
        let listed = list_all(store, &self.segment_prefix(log, segment)).await?;
        let mut fragments = Vec::with_capacity(listed.len());
        for object in listed {
            match self.parse_fragment_key(log, segment, &object.key) {
                Some(index) => fragments.push(ListedFragment {
                    index,
                    key: object.key,
                    size: object.size,
                }),
                None => {
                    return Err(StoreError::Invalid(format!(
                        "unexpected object {} in a segment",
                        object.key
                    )))
                }
            }
        }
        fragments.sort_by_key(|f| f.index);
        Ok(fragments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_fragment_order_and_parse_back() {
        let layout = Layout::new("wal").unwrap();
        let a = layout.fragment_key(7, 2, 9);
        let b = layout.fragment_key(7, 2, 10);
        assert_eq!(
            a,
            "wal/00000000000000000007/00000000000000000002/00000000000000000009.frag"
        );
        assert!(a < b);
        assert_eq!(layout.parse_fragment_key(7, 2, &b), Some(10));
        assert_eq!(layout.parse_fragment_key(7, 3, &b), None);
        assert_eq!(layout.parse_fragment_key(7, 2, "wal/x"), None);
        assert!(Layout::new("bad//prefix").is_err());
    }
}
