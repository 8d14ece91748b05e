//! PostgreSQL: each stateful service owns one schema, created and migrated
//! when the service starts, and reaches it through a pool whose connections
//! have that schema as their `search_path`.

pub mod local;

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::error::ApiError;

/// Connections each service's pool may open.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// How long a request waits for a free connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// No statement may run longer: a stuck lock fails the request instead of hanging it.
const STATEMENT_TIMEOUT_MS: &str = "5000";
/// Advisory lock that serialises schema creation and migration across replicas.
const MIGRATION_LOCK: i64 = 0x686f_6d65_6f73_7461; // "homeosta"

static ORDERS: Migrator = sqlx::migrate!("migrations/orders");
static INVENTORY: Migrator = sqlx::migrate!("migrations/inventory");
static PAYMENT: Migrator = sqlx::migrate!("migrations/payment");
static FULFILLMENT: Migrator = sqlx::migrate!("migrations/fulfillment");
static RETURNS: Migrator = sqlx::migrate!("migrations/returns");
static NOTIFICATIONS: Migrator = sqlx::migrate!("migrations/notifications");

/// A service that keeps state, and so owns a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Orders,
    Inventory,
    PaymentPrimary,
    PaymentSecondary,
    Fulfillment,
    Returns,
    Notifications,
}

impl Store {
    /// The store of the OMS service called `service`; `None` for stateless ones (tax).
    pub fn of_service(service: &str) -> Option<Self> {
        Some(match service {
            "orders" => Self::Orders,
            "inventory" => Self::Inventory,
            "payment-primary" => Self::PaymentPrimary,
            "payment-secondary" => Self::PaymentSecondary,
            "fulfillment" => Self::Fulfillment,
            "returns" => Self::Returns,
            "notifications" => Self::Notifications,
            _ => return None,
        })
    }

    /// The schema: a plain identifier, safe to write into DDL.
    pub fn schema(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Inventory => "inventory",
            Self::PaymentPrimary => "payment_primary",
            Self::PaymentSecondary => "payment_secondary",
            Self::Fulfillment => "fulfillment",
            Self::Returns => "returns",
            Self::Notifications => "notifications",
        }
    }

    /// Both payment providers run the same migrations, each in its own schema.
    fn migrator(self) -> &'static Migrator {
        match self {
            Self::Orders => &ORDERS,
            Self::Inventory => &INVENTORY,
            Self::PaymentPrimary | Self::PaymentSecondary => &PAYMENT,
            Self::Fulfillment => &FULFILLMENT,
            Self::Returns => &RETURNS,
            Self::Notifications => &NOTIFICATIONS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot prepare schema {schema}: {source}")]
    Schema {
        schema: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot seed the stock ledger: {0}")]
    Seed(#[source] sqlx::Error),
    #[error("cannot migrate schema {schema}: {source}")]
    Migrate {
        schema: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// Where the database is and how many connections a service may hold.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
}

impl DatabaseConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    fn options(&self) -> Result<PgConnectOptions, DbError> {
        self.url.parse().map_err(DbError::Url)
    }

    /// Creates and migrates `store`'s schema (one replica at a time), then
    /// opens its pool.
    pub async fn open(&self, store: Store) -> Result<PgPool, DbError> {
        let options = self.options()?;
        let schema = store.schema();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(DbError::Connect)?;
        let ddl = |source| DbError::Schema { schema, source };
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut conn)
            .await
            .map_err(ddl)?;
        // `schema` is one of the fixed identifiers of `Store::schema`, never input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
        )))
        .execute(&mut conn)
        .await
        .map_err(ddl)?;
        store
            .migrator()
            .run(&mut conn)
            .await
            .map_err(|source| DbError::Migrate { schema, source })?;
        // Closing the session releases the lock.
        conn.close().await.map_err(ddl)?;

        PgPoolOptions::new()
            .max_connections(self.pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before every use: a dead connection fails its query,
            // the request is answered 503 and the pool replaces it.
            .test_before_acquire(false)
            .connect_with(options.options([
                ("search_path", schema),
                ("statement_timeout", STATEMENT_TIMEOUT_MS),
            ]))
            .await
            .map_err(DbError::Connect)
    }

    /// A pool that connects on first use; for building a service's router
    /// when only its OpenAPI document is wanted.
    pub fn lazy(&self, store: Store) -> Result<PgPool, DbError> {
        Ok(PgPoolOptions::new()
            .max_connections(self.pool_size.max(1))
            .connect_lazy_with(self.options()?.options([("search_path", store.schema())])))
    }
}

/// Money and stock are `u64` in the API and `bigint` in the database: a value
/// that does not fit is refused, never wrapped.
pub fn to_bigint(value: u64, what: &'static str) -> Result<i64, ApiError> {
    i64::try_from(value).map_err(|_| {
        ApiError::unprocessable("out_of_range", format!("{what} {value} is too large"))
    })
}

/// A `bigint` column the schema keeps non-negative (CHECK constraints).
pub fn from_bigint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Ids are UUIDs; a malformed one names nothing, so it is "not found".
pub fn parse_id(id: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("no {what} {id}")))
}

/// A new globally unique, time-ordered id.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// A state enum as the text its column holds: the same snake_case name as in
/// the API, so there is one spelling of each state.
pub fn state_text<T: serde::Serialize + std::fmt::Debug>(state: T) -> String {
    match serde_json::to_value(&state) {
        Ok(serde_json::Value::String(text)) => text,
        _ => format!("{state:?}").to_lowercase(),
    }
}

/// Reads a state column back; a value the schema's CHECK would not allow is
/// a broken invariant, answered 500 rather than guessed at.
pub fn parse_state<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt_state",
            format!("unknown state {text:?} in the database"),
        )
    })
}

/// Any database failure is the service being unavailable for now: the
/// transaction was rolled back, so the caller may retry.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        tracing::error!(error = %err, "database call failed");
        ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the service's database did not answer; retry later",
        )
    }
}
