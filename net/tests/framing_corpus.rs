//! The entry framing's fuzz corpus (fuzz/corpus/entry_framing/, grown by
//! `cargo fuzz`, checked in) replayed through the fuzz target's checks in a
//! normal build.

use std::path::Path;

#[test]
fn the_corpus_keeps_every_property() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/entry_framing");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| woodpecker_net::framing::fuzz::check(&data));
        assert!(outcome.is_ok(), "{} breaks a property", path.display());
        inputs += 1;
    }
    assert!(inputs >= 100, "{inputs} inputs in {}", dir.display());
}
