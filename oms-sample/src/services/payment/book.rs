//! One provider's book in PostgreSQL: authorisations (one per order, created
//! by whichever replica gets the request first) and refunds (one per refund
//! id). Each change locks the authorisation, asks [`super::transitions`] what
//! to do, and writes the answer in the same transaction.

use sqlx::{PgPool, Postgres, Transaction};

use super::transitions::{self, Verdict};
use super::{Authorization, AuthorizationState, AuthorizeRequest};
use crate::db::{self, from_bigint, parse_id, parse_state, state_text, to_bigint};
use crate::error::ApiError;

#[derive(Clone)]
pub struct Book {
    pub provider: &'static str,
    pub pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: uuid::Uuid,
    order_id: String,
    card_token: String,
    amount_cents: i64,
    refunded_cents: i64,
    state: String,
}

macro_rules! columns {
    () => {
        "id, order_id, card_token, amount_cents, refunded_cents, state"
    };
}

/// Voids up to 256 authorisations left uncaptured longer than `ttl`;
/// returns how many. A captured one is never touched.
pub async fn expire(pool: &PgPool, ttl: std::time::Duration) -> Result<u64, ApiError> {
    let expired: i64 = sqlx::query_scalar(
        "WITH expired AS (
             UPDATE authorizations SET state = 'voided', updated_at = now()
             WHERE id IN (SELECT id FROM authorizations
                          WHERE state = 'authorized' AND created_at < now() - make_interval(secs => $1)
                          ORDER BY created_at LIMIT 256
                          FOR UPDATE SKIP LOCKED)
             RETURNING 1
         )
         SELECT count(*) FROM expired",
    )
    .bind(ttl.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(expired).unwrap_or(0))
}

impl Book {
    fn authorization(&self, row: Row) -> Result<Authorization, ApiError> {
        Ok(Authorization {
            id: row.id.to_string(),
            card_token: row.card_token,
            order_id: row.order_id,
            provider: self.provider.to_owned(),
            amount_cents: from_bigint(row.amount_cents),
            refunded_cents: from_bigint(row.refunded_cents),
            state: parse_state(&row.state)?,
        })
    }

    pub async fn by_order(&self, order_id: &str) -> Result<Option<Authorization>, ApiError> {
        sqlx::query_as::<_, Row>(concat!(
            "SELECT ",
            columns!(),
            " FROM authorizations WHERE order_id = $1"
        ))
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| self.authorization(row))
        .transpose()
    }

    pub async fn get(&self, id: &str) -> Result<Authorization, ApiError> {
        let row = sqlx::query_as::<_, Row>(concat!(
            "SELECT ",
            columns!(),
            " FROM authorizations WHERE id = $1"
        ))
        .bind(parse_id(id, "authorization")?)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authorization {id}")))?;
        self.authorization(row)
    }

    async fn lock(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        id: &str,
    ) -> Result<Authorization, ApiError> {
        let row = sqlx::query_as::<_, Row>(concat!(
            "SELECT ",
            columns!(),
            " FROM authorizations WHERE id = $1 FOR UPDATE"
        ))
        .bind(parse_id(id, "authorization")?)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authorization {id}")))?;
        self.authorization(row)
    }

    /// Authorises once per order: a repeated request, from any replica, gets
    /// the first authorisation back (`false`).
    pub async fn authorize(
        &self,
        request: &AuthorizeRequest,
    ) -> Result<(Authorization, bool), ApiError> {
        transitions::check_authorize(request, self.provider)?;
        if let Some(existing) = self.by_order(&request.order_id).await? {
            return Ok((existing, false));
        }
        let inserted = sqlx::query_as::<_, Row>(concat!(
            "INSERT INTO authorizations (id, order_id, card_token, amount_cents, state)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (order_id) DO NOTHING
             RETURNING ",
            columns!(),
            ""
        ))
        .bind(db::new_id())
        .bind(&request.order_id)
        .bind(&request.card_token)
        .bind(to_bigint(request.amount_cents, "amount_cents")?)
        .bind(state_text(AuthorizationState::Authorized))
        .fetch_optional(&self.pool)
        .await?;
        match inserted {
            Some(row) => Ok((self.authorization(row)?, true)),
            // Another replica authorised this order since we looked.
            None => self
                .by_order(&request.order_id)
                .await?
                .map(|existing| (existing, false))
                .ok_or_else(|| ApiError::unavailable("the order's authorisation vanished; retry")),
        }
    }

    /// Applies a state change that `decide` allows.
    async fn transition(
        &self,
        id: &str,
        decide: impl FnOnce(&Authorization) -> Result<Verdict, ApiError>,
    ) -> Result<Authorization, ApiError> {
        let mut tx = self.pool.begin().await?;
        let mut auth = self.lock(&mut tx, id).await?;
        if let Verdict::Move(state) = decide(&auth)? {
            sqlx::query("UPDATE authorizations SET state = $2, updated_at = now() WHERE id = $1")
                .bind(parse_id(id, "authorization")?)
                .bind(state_text(state))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            auth.state = state;
        }
        Ok(auth)
    }

    pub async fn capture(&self, id: &str) -> Result<Authorization, ApiError> {
        let provider = self.provider;
        self.transition(id, |a| {
            transitions::capture(a.state, &a.card_token, provider)
        })
        .await
    }

    pub async fn void(&self, id: &str) -> Result<Authorization, ApiError> {
        self.transition(id, |a| transitions::void(a.state)).await
    }

    /// Refunds `amount_cents`. With a `refund_id`, a retry of the same refund
    /// (same id, same amount) answers without refunding again.
    pub async fn refund(
        &self,
        id: &str,
        amount_cents: u64,
        refund_id: Option<&str>,
    ) -> Result<Authorization, ApiError> {
        let mut tx = self.pool.begin().await?;
        let mut auth = self.lock(&mut tx, id).await?;
        let uuid = parse_id(id, "authorization")?;
        if let Some(refund_id) = refund_id {
            let previous: Option<(uuid::Uuid, i64)> = sqlx::query_as(
                "SELECT authorization_id, amount_cents FROM refunds WHERE refund_id = $1",
            )
            .bind(refund_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((authorization, amount)) = previous {
                if authorization != uuid || from_bigint(amount) != amount_cents {
                    return Err(ApiError::unprocessable(
                        "refund_id_reused",
                        format!("refund {refund_id} was made for another amount or payment"),
                    ));
                }
                return Ok(auth);
            }
        }
        let refunded = transitions::refund(
            auth.state,
            auth.amount_cents,
            auth.refunded_cents,
            amount_cents,
        )?;
        sqlx::query(
            "UPDATE authorizations SET refunded_cents = $2, state = $3, updated_at = now()
             WHERE id = $1",
        )
        .bind(uuid)
        .bind(to_bigint(refunded, "refunded_cents")?)
        .bind(state_text(AuthorizationState::Refunded))
        .execute(&mut *tx)
        .await?;
        if let Some(refund_id) = refund_id {
            sqlx::query(
                "INSERT INTO refunds (refund_id, authorization_id, amount_cents) VALUES ($1, $2, $3)",
            )
            .bind(refund_id)
            .bind(uuid)
            .bind(to_bigint(amount_cents, "amount_cents")?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        auth.refunded_cents = refunded;
        auth.state = AuthorizationState::Refunded;
        Ok(auth)
    }

    /// Records a heartbeat (a write, committed like an authorisation) and
    /// counts the authorisations neither captured nor voided yet.
    pub async fn heartbeat(&self) -> Result<(u64, u64), ApiError> {
        let (beats, open): (i64, i64) = sqlx::query_as(
            "WITH beat AS (
                 UPDATE heartbeat SET beats = beats + 1, beat_at = now() RETURNING beats
             )
             SELECT (SELECT beats FROM beat),
                    (SELECT count(*) FROM authorizations WHERE state = 'authorized')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((from_bigint(beats), from_bigint(open)))
    }
}
