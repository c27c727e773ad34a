//! The service's entry framing: `woodpecker_net::framing::fuzz::check`
//! says what is checked (the normal test suite replays the corpus too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| woodpecker_net::framing::fuzz::check(data));
