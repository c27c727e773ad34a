//! See woodpecker_engine::fuzz_targets::fragment. Built with `--cfg fuzzing`,
//! checksums are not checked, so the checks behind them are reached.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| woodpecker_engine::fuzz_targets::fragment(data));
