//! Orders in PostgreSQL, with the requests and idempotency keys that created
//! them and the saga's log. Every replica of `orders` reads and writes the
//! same rows, so an order is found, and a key is honoured, whichever replica
//! is asked.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::CreateOrderRequest;
use super::outbox::OutboxSignal;
use crate::db::{new_id, parse_id, parse_state, state_text};
use crate::error::ApiError;
use crate::services::Line;
use crate::services::notifications::OrderEventKind;
use crate::services::tax::Quote;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// The saga is running.
    Pending,
    Confirmed,
    Rejected,
    Shipped,
    Returned,
}

impl OrderState {
    pub fn is_terminal_for_saga(self) -> bool {
        !matches!(self, OrderState::Pending)
    }

    /// The event that tells the world an order reached this state.
    pub fn event(self) -> OrderEventKind {
        match self {
            OrderState::Pending => OrderEventKind::Created,
            OrderState::Confirmed => OrderEventKind::Confirmed,
            OrderState::Rejected => OrderEventKind::Rejected,
            OrderState::Shipped => OrderEventKind::Shipped,
            OrderState::Returned => OrderEventKind::Returned,
        }
    }
}

/// The call a pending order's saga makes next; `Settle` while it finds out
/// what its callees hold and undoes or finishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Reserve,
    Price,
    Authorize,
    Route,
    Capture,
    Commit,
    Settle,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub state: OrderState,
    /// Why the order was rejected, e.g. `payment_declined: …`.
    pub reason: Option<String>,
    pub lines: Vec<Line>,
    pub region: String,
    pub quote: Option<Quote>,
    /// The payment provider used: payment-primary or payment-secondary.
    pub payment_provider: Option<String>,
    pub authorization_id: Option<String>,
    pub reservation_id: Option<String>,
    pub shipment_id: Option<String>,
    /// The saga's next call; meaningful while the order is pending.
    pub step: Step,
    /// Saga steps done and compensations run, in order.
    pub saga_log: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, PartialEq)]
pub enum Admission {
    /// A new order was stored and its saga must run.
    New(Order),
    /// The key was used before with the same request: here is that order.
    Replay(Order),
    /// The key was used before with a different request.
    KeyReused,
}

/// What a retry with a known key gets: the first order when the request is
/// the same, a refusal when it is not.
pub fn replay(
    first_request: &serde_json::Value,
    request: &serde_json::Value,
    first: Order,
) -> Admission {
    if first_request == request {
        Admission::Replay(first)
    } else {
        Admission::KeyReused
    }
}

/// A fact the saga learned, stored on the order with its log entry.
#[derive(Debug, Clone, Copy)]
pub enum Fact<'a> {
    Reserved { reservation_id: &'a str },
    Priced { quote: &'a Quote },
    ProviderChosen { provider: &'a str },
    Authorized { authorization_id: &'a str },
    Routed { shipment_id: &'a str },
    Captured { authorization_id: &'a str },
}

/// The log half of a fact's statement.
macro_rules! log_entry {
    () => {
        "INSERT INTO saga_log (order_id, entry) SELECT $1, $3::text WHERE $3::text IS NOT NULL"
    };
}

impl Fact<'_> {
    /// The statement that stores the fact, the saga's next step and the log
    /// entry in one round trip ($1 the order, $2 the value, $3 the entry or
    /// NULL): the next call is on disk before it goes out.
    fn statement(&self) -> &'static str {
        match self {
            Fact::Reserved { .. } => concat!(
                "WITH fact AS (UPDATE orders SET reservation_id = $2, step = 'price', updated_at = now() WHERE id = $1) ",
                log_entry!()
            ),
            Fact::Priced { .. } => concat!(
                "WITH fact AS (UPDATE orders SET quote = $2, step = 'authorize', updated_at = now() WHERE id = $1) ",
                log_entry!()
            ),
            // The provider is on disk before it is called, so a saga that
            // loses its answer knows whom to ask.
            Fact::ProviderChosen { .. } => concat!(
                "WITH fact AS (UPDATE orders SET payment_provider = $2, updated_at = now() WHERE id = $1) ",
                log_entry!()
            ),
            Fact::Authorized { .. } => concat!(
                "WITH fact AS (UPDATE orders SET authorization_id = $2, step = 'route', updated_at = now() WHERE id = $1) ",
                log_entry!()
            ),
            Fact::Routed { .. } => concat!(
                "WITH fact AS (UPDATE orders SET shipment_id = $2, step = 'capture', updated_at = now() WHERE id = $1) ",
                log_entry!()
            ),
            Fact::Captured { .. } => concat!(
                "WITH fact AS (UPDATE orders SET step = 'commit', updated_at = now() WHERE id = $1 AND authorization_id = $2) ",
                log_entry!()
            ),
        }
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: uuid::Uuid,
    customer_id: String,
    state: String,
    reason: Option<String>,
    lines: Json<Vec<Line>>,
    region: String,
    quote: Option<Json<Quote>>,
    payment_provider: Option<String>,
    authorization_id: Option<String>,
    reservation_id: Option<String>,
    shipment_id: Option<String>,
    step: String,
    saga_log: Vec<String>,
    created_at: String,
}

impl OrderRow {
    fn into_order(self) -> Result<Order, ApiError> {
        Ok(Order {
            id: self.id.to_string(),
            customer_id: self.customer_id,
            state: parse_state(&self.state)?,
            reason: self.reason,
            lines: self.lines.0,
            region: self.region,
            quote: self.quote.map(|q| q.0),
            payment_provider: self.payment_provider,
            authorization_id: self.authorization_id,
            reservation_id: self.reservation_id,
            shipment_id: self.shipment_id,
            step: parse_state(&self.step)?,
            saga_log: self.saga_log,
            created_at: self.created_at,
        })
    }
}

macro_rules! select_order {
    () => {
        r#"
    SELECT o.id, o.customer_id, o.state, o.reason, o.lines, o.region, o.quote,
           o.payment_provider, o.authorization_id, o.reservation_id, o.shipment_id, o.step,
           coalesce((SELECT array_agg(l.entry ORDER BY l.id) FROM saga_log l WHERE l.order_id = o.id),
                    '{}') AS saga_log,
           to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at
    FROM orders o"#
    };
}

/// Stores an order and its first event ($1 id … $7 created_at, $8 event id,
/// $9 event kind, $10 the saga's lease in seconds): the order exists exactly
/// when its event is in the outbox.
const INSERT_ORDER: &str = "
    WITH created AS (
        INSERT INTO orders (id, customer_id, state, lines, region, request, created_at, lease_until)
        VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, now() + make_interval(secs => $10))
        RETURNING id
    )
    INSERT INTO outbox (event_id, order_id, kind) SELECT $8, id, $9 FROM created";

/// How long a pending order belongs to the saga driving it. Longer than the
/// saga's deadline and its settling; after it, any replica may settle it.
pub const SAGA_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
pub struct OrderStore {
    pool: PgPool,
    /// Told after every commit that put an event in the outbox.
    outbox: OutboxSignal,
}

impl OrderStore {
    pub fn new(pool: PgPool, outbox: OutboxSignal) -> Self {
        Self { pool, outbox }
    }

    /// Stores `order` unless `key` was used before (by any replica).
    pub async fn admit(
        &self,
        order: Order,
        key: Option<&str>,
        request: &CreateOrderRequest,
    ) -> Result<Admission, ApiError> {
        let request = serde_json::to_value(request)
            .map_err(|e| ApiError::unprocessable("invalid_body", e.to_string()))?;
        if let Some(key) = key
            && let Some(admission) = self.by_key(key, &request).await?
        {
            return Ok(admission);
        }
        let insert = sqlx::query(INSERT_ORDER)
            .bind(parse_id(&order.id, "order")?)
            .bind(&order.customer_id)
            .bind(state_text(order.state))
            .bind(Json(&order.lines))
            .bind(&order.region)
            .bind(Json(&request))
            .bind(&order.created_at)
            .bind(new_id())
            .bind(state_text(order.state.event()))
            .bind(SAGA_LEASE.as_secs_f64());
        let Some(key) = key else {
            insert.execute(&self.pool).await?;
            self.outbox.notify();
            return Ok(Admission::New(order));
        };
        let mut tx = self.pool.begin().await?;
        insert.execute(&mut *tx).await?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (key, order_id) VALUES ($1, $2)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(parse_id(&order.id, "order")?)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Another replica took the key since we looked.
            tx.rollback().await?;
            return self.by_key(key, &request).await?.ok_or_else(|| {
                ApiError::unavailable("the idempotency key's order vanished; retry")
            });
        }
        tx.commit().await?;
        self.outbox.notify();
        Ok(Admission::New(order))
    }

    async fn by_key(
        &self,
        key: &str,
        request: &serde_json::Value,
    ) -> Result<Option<Admission>, ApiError> {
        let first: Option<(uuid::Uuid, Json<serde_json::Value>)> = sqlx::query_as(
            "SELECT o.id, o.request FROM idempotency_keys k JOIN orders o ON o.id = k.order_id
             WHERE k.key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, first_request)) = first else {
            return Ok(None);
        };
        let order = self
            .get(&id.to_string())
            .await?
            .ok_or_else(|| ApiError::unavailable("the idempotency key's order vanished; retry"))?;
        Ok(Some(replay(&first_request.0, request, order)))
    }

    pub async fn get(&self, id: &str) -> Result<Option<Order>, ApiError> {
        let Ok(uuid) = uuid::Uuid::parse_str(id) else {
            return Ok(None);
        };
        sqlx::query_as::<_, OrderRow>(concat!(select_order!(), " WHERE o.id = $1"))
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?
            .map(OrderRow::into_order)
            .transpose()
    }

    /// Appends to the saga's log.
    pub async fn log(&self, id: &str, entry: &str) -> Result<(), ApiError> {
        sqlx::query("INSERT INTO saga_log (order_id, entry) VALUES ($1, $2)")
            .bind(parse_id(id, "order")?)
            .bind(entry)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores what the saga learned and its log entry, in one statement.
    pub async fn record(
        &self,
        id: &str,
        fact: Fact<'_>,
        entry: Option<&str>,
    ) -> Result<(), ApiError> {
        let query = sqlx::query(fact.statement()).bind(parse_id(id, "order")?);
        let query = match fact {
            Fact::Priced { quote } => query.bind(Json(quote)),
            Fact::Reserved {
                reservation_id: value,
            }
            | Fact::ProviderChosen { provider: value }
            | Fact::Authorized {
                authorization_id: value,
            }
            | Fact::Routed { shipment_id: value }
            | Fact::Captured {
                authorization_id: value,
            } => query.bind(value),
        };
        query.bind(entry).execute(&self.pool).await?;
        Ok(())
    }

    /// Marks the saga as settling after `cause`, renews its lease for the
    /// settling, and returns the cause to give if the order is rejected: the
    /// first one recorded, so a settling taken over after a crash still
    /// says why the saga stopped.
    pub async fn settling(&self, id: &str, cause: &str) -> Result<String, ApiError> {
        let first: Option<String> = sqlx::query_scalar(concat!(
            "WITH fact AS (UPDATE orders SET step = 'settle', lease_until = now() + make_interval(secs => $2),
                               settle_cause = coalesce(settle_cause, $3), updated_at = now()
                           WHERE id = $1 AND state = 'pending'
                           RETURNING settle_cause),
                  logged AS (INSERT INTO saga_log (order_id, entry) VALUES ($1, 'settling after ' || $3)) ",
            "SELECT settle_cause FROM fact"
        ))
        .bind(parse_id(id, "order")?)
        .bind(SAGA_LEASE.as_secs_f64())
        .bind(cause)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok(first.unwrap_or_else(|| cause.to_owned()))
    }

    /// Takes up to `limit` pending orders whose saga's lease ran out (its
    /// replica died or gave up) and leases them to the caller; another
    /// replica asking at the same time gets others.
    pub async fn claim_abandoned(&self, limit: i64) -> Result<Vec<String>, ApiError> {
        let ids: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "UPDATE orders SET lease_until = now() + make_interval(secs => $2)
             WHERE id IN (SELECT id FROM orders
                          WHERE state = 'pending' AND lease_until < now()
                          ORDER BY lease_until LIMIT $1
                          FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(limit)
        .bind(SAGA_LEASE.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id.to_string()).collect())
    }

    /// Marks up to `limit` orders confirmed at least `delay` ago shipped,
    /// each with its event; returns how many. Kept in the database, so a
    /// restart between confirmation and dispatch ships them all the same.
    pub async fn ship_due(&self, delay: std::time::Duration, limit: i64) -> Result<u64, ApiError> {
        let shipped = sqlx::query(
            "WITH moved AS (
                 UPDATE orders SET state = 'shipped', updated_at = now()
                 WHERE id IN (SELECT id FROM orders
                              WHERE state = 'confirmed'
                                AND updated_at <= now() - make_interval(secs => $1)
                              ORDER BY updated_at LIMIT $2
                              FOR UPDATE SKIP LOCKED)
                 RETURNING id
             )
             INSERT INTO outbox (event_id, order_id, kind) SELECT gen_random_uuid(), id, 'shipped' FROM moved",
        )
        .bind(delay.as_secs_f64())
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if shipped > 0 {
            self.outbox.notify();
        }
        Ok(shipped)
    }

    /// Moves the order to `state` when it is in one of `from`, and puts the
    /// event of that state in the outbox in the same statement; returns the
    /// order as it is afterwards (`None` when there is no such order).
    pub async fn transition(
        &self,
        id: &str,
        from: &[OrderState],
        state: OrderState,
        reason: Option<&str>,
    ) -> Result<Option<Order>, ApiError> {
        let from: Vec<String> = from.iter().map(|s| state_text(*s)).collect();
        let moved = sqlx::query(
            "WITH moved AS (
                 UPDATE orders SET state = $3, reason = coalesce($4, reason), updated_at = now()
                 WHERE id = $1 AND state = ANY($2)
                 RETURNING id
             )
             INSERT INTO outbox (event_id, order_id, kind, detail)
             SELECT $5, id, $6, $4 FROM moved",
        )
        .bind(parse_id(id, "order")?)
        .bind(&from)
        .bind(state_text(state))
        .bind(reason)
        .bind(new_id())
        .bind(state_text(state.event()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if moved > 0 {
            self.outbox.notify();
        }
        self.get(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(id: &str) -> Order {
        Order {
            id: id.to_owned(),
            customer_id: "c".into(),
            state: OrderState::Pending,
            reason: None,
            lines: vec![],
            region: "EAST".into(),
            quote: None,
            payment_provider: None,
            authorization_id: None,
            reservation_id: None,
            shipment_id: None,
            step: Step::Reserve,
            saga_log: vec![],
            created_at: String::new(),
        }
    }

    #[test]
    fn same_key_and_request_replays_the_order() {
        let request = json!({"customer_id": "c", "promo_code": null});
        assert_eq!(
            replay(&request, &request.clone(), order("o1")),
            Admission::Replay(order("o1"))
        );
    }

    #[test]
    fn same_key_with_another_request_is_refused() {
        assert_eq!(
            replay(
                &json!({"customer_id": "c"}),
                &json!({"customer_id": "d"}),
                order("o1")
            ),
            Admission::KeyReused
        );
    }
}
