//! A batch or transaction Bundle through everything the gateway does before it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway::fuzzing::bundle(data));
