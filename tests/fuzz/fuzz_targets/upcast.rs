//! Fuzz target `upcast`: see domain/tests/fuzz_checks/mod.rs for what it checks.
#![no_main]

#[path = "../../../domain/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::upcast(data));
