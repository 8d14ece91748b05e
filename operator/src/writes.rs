//! How the operator writes to the API server: every patch asks for strict
//! field validation, so a field the server does not know (a misspelling, a
//! field in the wrong place, a newer API's field on an older cluster) fails
//! the write with the field's name instead of being dropped in silence.

use kube::api::PatchParams;

/// A JSON or merge patch.
pub fn patch() -> PatchParams {
    PatchParams::default().validation_strict()
}

/// A server-side apply as `manager`, taking over fields it lists.
pub fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force().validation_strict()
}
