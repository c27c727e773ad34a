//! See woodpecker_engine::fuzz_targets::s3_xml. Built with `--cfg fuzzing`,
//! checksums are not checked, so the checks behind them are reached.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| woodpecker_engine::fuzz_targets::s3_xml(data));
