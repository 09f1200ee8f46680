//! Azure Blob Storage, emulated by azurite (`tests/emulators.sh` starts it and creates the
//! `escher-conformance` container; its URI and key arrive in `.emulators/env`).

use crate::emulator;

/// The variable holding the azblob store URI of the emulator's container.
pub const STORE_VAR: &str = "ESCHER_TEST_AZBLOB_URI";

/// The azblob store in azurite's shared container, or `None` after a notice saying `what`
/// is skipped (see [`emulator::var`]). Give each test a folder of its own in it with
/// [`emulator::sub_store`].
pub fn blob_store(what: &str) -> Option<String> {
    emulator::var(
        STORE_VAR,
        &format!("{what} runs under `make test`, which starts azurite"),
    )
}
