//! A search URL's tail (`Type?query`) through percent-decoding, the result parameters and the query parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway::fuzzing::query(data));
