//! Who is asking, and may they: every request carries a bearer token (an
//! `Authorization` header, or the session a sign-in made from one), which
//! the API server itself vouches for with a TokenReview — cluster users and
//! ServiceAccount tokens alike. What a person may see or do is asked of the
//! API server too (a SubjectAccessReview of that person for the very read
//! or write), so the console never grants more than RBAC does. Tokens are
//! never kept, shown or logged: a session holds the identity the review
//! returned, and expires with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use rand::RngCore;

/// How long a sign-in lasts.
pub const SESSION: Duration = Duration::from_secs(8 * 3600);

/// The session cookie's name.
pub const COOKIE: &str = "homeostat_session";

/// A person the API server authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user: String,
    pub groups: Vec<String>,
}

/// What a request is asking to read or do, as RBAC names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub verb: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    /// `None`: every namespace.
    pub namespace: Option<String>,
}

impl Access {
    pub fn homeostat(verb: &'static str, resource: &'static str, namespace: Option<&str>) -> Self {
        Self {
            verb,
            resource,
            subresource: None,
            namespace: namespace.map(str::to_owned),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the API server did not accept this token")]
    NotAuthenticated,
    #[error("cannot ask the API server: {0}")]
    Api(#[from] kube::Error),
}

/// Asks the API server who `token` belongs to.
pub async fn review_token(client: &Client, token: &str) -> Result<Person, AuthError> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = reviewed.status.unwrap_or_default();
    let user = status.user.unwrap_or_default();
    match (status.authenticated, user.username) {
        (Some(true), Some(name)) if !name.is_empty() => Ok(Person {
            user: name,
            groups: user.groups.unwrap_or_default(),
        }),
        _ => Err(AuthError::NotAuthenticated),
    }
}

/// Whether RBAC lets `person` do `access`.
pub async fn allowed(client: &Client, person: &Person, access: &Access) -> Result<bool, AuthError> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(person.user.clone()),
            groups: Some(person.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(homeostat_api::GROUP.to_owned()),
                resource: Some(access.resource.to_owned()),
                subresource: access.subresource.map(str::to_owned),
                verb: Some(access.verb.to_owned()),
                namespace: access.namespace.clone(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviewed = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(reviewed.status.is_some_and(|s| s.allowed))
}

/// 32 random bytes, hex: a session id or a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signed-in person, and the token their forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub person: Person,
    pub csrf: String,
    expires: Instant,
}

/// Sign-ins, in memory: a restarted console asks people to sign in again.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `person`; returns its id.
    pub fn start(&self, person: Person) -> String {
        let id = random_token();
        let session = Session {
            person,
            csrf: random_token(),
            expires: Instant::now() + SESSION,
        };
        if let Ok(mut sessions) = self.by_id.lock() {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            sessions.insert(id.clone(), session);
        }
        id
    }

    /// The live session `id`, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let sessions = self.by_id.lock().ok()?;
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn end(&self, id: &str) {
        if let Ok(mut sessions) = self.by_id.lock() {
            sessions.remove(id);
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Person {
        Person {
            user: "alice".into(),
            groups: vec!["oncall".into()],
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::default();
        let id = sessions.start(alice());
        let session = sessions.get(&id).expect("live");
        assert_eq!(session.person, alice());
        assert_eq!(session.csrf.len(), 64);
        assert!(sessions.get("not-an-id").is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn cookies_and_secrets_are_read_exactly() {
        let header = "theme=dark; homeostat_session=abc123; other=x";
        assert_eq!(cookie(header, COOKIE), Some("abc123"));
        assert_eq!(cookie(header, "homeostat"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
