//! What the campaign writes: every entry names its writer process and
//! sequence number in a property, and its payload follows from them, so
//! the checker can tell each stored entry's origin and check its bytes.

use bytes::Bytes;

pub const ORIGIN: &[u8] = b"origin";

/// Who appended an entry: a writer process (unique over a run) and its
/// sequence number, counted per log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub writer: u64,
    pub seq: u64,
}

impl Origin {
    pub fn property(&self) -> (Bytes, Bytes) {
        (
            Bytes::from_static(ORIGIN),
            Bytes::from(format!("{}:{}", self.writer, self.seq)),
        )
    }

    pub fn parse(value: &[u8]) -> Option<Origin> {
        let text = std::str::from_utf8(value).ok()?;
        let (writer, seq) = text.split_once(':')?;
        Some(Origin {
            writer: writer.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The origin named by an entry's properties.
    pub fn of(properties: &[(impl AsRef<[u8]>, impl AsRef<[u8]>)]) -> Option<Origin> {
        let (_, value) = properties.iter().find(|(k, _)| k.as_ref() == ORIGIN)?;
        Origin::parse(value.as_ref())
    }
}

/// The payload of `origin`'s entry in log `log`: 1 to 1,200 bytes.
pub fn payload(log: usize, origin: Origin) -> Bytes {
    let seed = (log as u64) << 56 ^ origin.writer << 32 ^ origin.seq;
    let mut rng = fastrand::Rng::with_seed(seed);
    let len = 1 + (origin.seq as usize * 37 + origin.writer as usize * 11) % 1200;
    let mut bytes = format!("L{log}W{}S{}:", origin.writer, origin.seq).into_bytes();
    bytes.extend((0..len).map(|_| rng.u8(..)));
    Bytes::from(bytes)
}
