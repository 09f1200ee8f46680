//! Google Cloud Storage, emulated by fake-gcs-server (`tests/emulators.sh` starts it and
//! creates the `escher-conformance` bucket; its URI arrives in `.emulators/env`).

use crate::emulator;

/// The variable holding the gcs store URI of the emulator's bucket.
pub const STORE_VAR: &str = "ESCHER_TEST_GCS_URI";

/// The gcs store in fake-gcs-server's shared bucket, or `None` after a notice saying `what`
/// is skipped (see [`emulator::var`]). Give each test a folder of its own in it with
/// [`emulator::sub_store`].
pub fn gcs_store(what: &str) -> Option<String> {
    emulator::var(
        STORE_VAR,
        &format!("{what} runs under `make test`, which starts fake-gcs-server"),
    )
}

/// Whether the store enforces `ifGenerationMatch`: fake-gcs-server does not, and
/// `tests/emulators.sh` says so with `ESCHER_TEST_GCS_CONDITIONS=skip`; real GCS does.
pub fn enforces_conditions() -> bool {
    std::env::var("ESCHER_TEST_GCS_CONDITIONS").as_deref() != Ok("skip")
}
