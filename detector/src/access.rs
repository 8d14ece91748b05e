//! How the detector reaches a metrics source that wants more than a URL:
//! headers (a tenant), a bearer token (a gateway, kube-rbac-proxy) and a
//! private CA (an HTTPS endpoint). Thanos, Mimir and VictoriaMetrics
//! gateways want one or more of these.

use std::path::{Path, PathBuf};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// What every query carries, and which servers it trusts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceAccess {
    /// Sent with every query, e.g. Mimir's `X-Scope-OrgID`.
    pub headers: Vec<(String, String)>,
    /// A file holding a bearer token. Read for every query, not once: a
    /// mounted Secret or a projected ServiceAccount token is replaced in
    /// place when it rotates.
    pub bearer_token_file: Option<PathBuf>,
    /// PEM certificates trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// Why the source cannot be reached as configured.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccessError {
    #[error("header {name:?}: invalid {what}")]
    Header { name: String, what: &'static str },
    #[error("bearer token file {path}: {reason}")]
    Token { path: PathBuf, reason: String },
    #[error("CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
}

impl SourceAccess {
    /// The fixed headers, checked once at start.
    pub fn header_map(&self) -> Result<HeaderMap, AccessError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let bad = |what| AccessError::Header {
                name: name.clone(),
                what,
            };
            let mut value = HeaderValue::from_str(value).map_err(|_| bad("value"))?;
            value.set_sensitive(true);
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("name"))?,
                value,
            );
        }
        Ok(map)
    }

    /// `Authorization: Bearer …` as the token file says now; `None` without
    /// a token file.
    pub fn authorization(&self) -> Result<Option<HeaderValue>, AccessError> {
        let Some(path) = &self.bearer_token_file else {
            return Ok(None);
        };
        let bad = |reason: String| AccessError::Token {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        bearer(&text).map(Some).map_err(bad)
    }

    /// The extra roots to trust (none without a CA file).
    pub fn roots(&self) -> Result<Vec<reqwest::Certificate>, AccessError> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        read_roots(path)
    }
}

/// The header for `token` as a file holds it (a trailing newline is not
/// part of it).
fn bearer(text: &str) -> Result<HeaderValue, String> {
    let token = text.trim();
    if token.is_empty() {
        return Err("is empty".to_owned());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "holds characters a header cannot carry".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

fn read_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, AccessError> {
    let bad = |reason: String| AccessError::Ca {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".to_owned()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_gives_a_sensitive_bearer_header_without_its_newline() {
        let value = bearer("s3cr3t\n").expect("token");
        assert_eq!(value.to_str().expect("ok"), "Bearer s3cr3t");
        assert!(value.is_sensitive());
    }

    #[test]
    fn an_empty_or_unsendable_token_is_refused_with_the_reason() {
        assert_eq!(bearer(" \n").expect_err("refused"), "is empty");
        assert!(
            bearer("a\u{7f}b")
                .expect_err("refused")
                .contains("cannot carry")
        );
    }

    #[test]
    fn the_token_is_read_again_for_every_query() {
        let dir = tempfile::tempdir().expect("ok");
        let path = dir.path().join("token");
        let access = SourceAccess {
            bearer_token_file: Some(path.clone()),
            ..SourceAccess::default()
        };
        std::fs::write(&path, "first").expect("ok");
        assert_eq!(
            access.authorization().expect("ok").expect("ok"),
            "Bearer first"
        );
        std::fs::write(&path, "second\n").expect("ok");
        assert_eq!(
            access.authorization().expect("ok").expect("ok"),
            "Bearer second"
        );
        std::fs::remove_file(&path).expect("ok");
        let error = access.authorization().expect_err("refused");
        assert!(
            error.to_string().starts_with("bearer token file "),
            "{error}"
        );
    }

    #[test]
    fn no_token_file_sends_no_authorization() {
        assert_eq!(SourceAccess::default().authorization(), Ok(None));
    }

    #[test]
    fn a_bad_header_or_ca_file_is_named() {
        let access = SourceAccess {
            headers: vec![("X Bad".into(), "v".into())],
            ..SourceAccess::default()
        };
        assert_eq!(
            access.header_map().expect_err("refused").to_string(),
            r#"header "X Bad": invalid name"#
        );
        let dir = tempfile::tempdir().expect("ok");
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "not a certificate").expect("ok");
        let access = SourceAccess {
            ca_file: Some(path),
            ..SourceAccess::default()
        };
        let error = access.roots().expect_err("refused").to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }
}
