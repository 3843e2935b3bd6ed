//! Bearer-token auth for the API and the intake, compared in constant time (`subtle`): the
//! time a comparison takes must not tell an attacker how many leading bytes were right.

use subtle::ConstantTimeEq as _;

/// Whether an `authorization` header value carries `token` (always true without a token: then
/// the server listens on loopback only, which `start` enforces).
pub fn allowed(token: Option<&str>, header: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let Some(given) =
        header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
    else {
        return false;
    };
    given.trim().as_bytes().ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_exact_token_passes() {
        assert!(super::allowed(None, None));
        assert!(super::allowed(Some("s3cret"), Some("Bearer s3cret")));
        assert!(!super::allowed(Some("s3cret"), Some("Bearer s3cre")));
        assert!(!super::allowed(Some("s3cret"), Some("Bearer s3cret2")));
        assert!(!super::allowed(Some("s3cret"), Some("s3cret")));
        assert!(!super::allowed(Some("s3cret"), None));
    }
}
