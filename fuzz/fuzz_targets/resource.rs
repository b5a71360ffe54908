//! A request body (JSON or XML) through the resource parser, its checks, the entity mapping and back, the stored encoding and XML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway::fuzzing::resource(data));
