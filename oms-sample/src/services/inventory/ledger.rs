//! The stock ledger in PostgreSQL. Available units of a SKU = units on hand in
//! every warehouse − units held by reservations, kept per SKU in `sku_totals`
//! and changed only by conditional updates, so concurrent replicas can never
//! hold or ship more than there is. Locks are always taken in the same order
//! (reservation, then `stock` rows, then `sku_totals` rows, each sorted by key),
//! so two transactions never wait on each other in a cycle.

use std::collections::BTreeMap;

use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};

use super::{Allocation, Reservation, ReservationState, StockLevel, StockLevels};
use crate::catalog;
use crate::db::{self, from_bigint, parse_id, parse_state, state_text, to_bigint};
use crate::error::ApiError;
use crate::services::Line;

/// Units per SKU, sorted by SKU (the lock order).
pub fn units_by_sku(lines: &[Line]) -> BTreeMap<&str, u64> {
    let mut units: BTreeMap<&str, u64> = BTreeMap::new();
    for line in lines {
        *units.entry(&line.sku).or_default() += u64::from(line.quantity);
    }
    units
}

/// Units per (SKU, warehouse), sorted (the lock order).
pub fn units_by_place(allocations: &[Allocation]) -> BTreeMap<(&str, &str), u64> {
    let mut units: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in allocations {
        *units.entry((&a.sku, &a.warehouse)).or_default() += u64::from(a.quantity);
    }
    units
}

/// Whether `allocations` ship exactly the reserved `lines`.
pub fn allocations_cover(lines: &[Line], allocations: &[Allocation]) -> bool {
    let mut allocated: BTreeMap<&str, u64> = BTreeMap::new();
    for ((sku, _), units) in units_by_place(allocations) {
        *allocated.entry(sku).or_default() += units;
    }
    allocated == units_by_sku(lines)
}

/// Puts the catalogue's initial stock in place for every (SKU, warehouse)
/// the ledger does not know yet; replicas may run it at once.
pub async fn seed(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut skus = Vec::new();
    let mut warehouses = Vec::new();
    let mut units = Vec::new();
    for product in catalog::PRODUCTS {
        for warehouse in catalog::WAREHOUSES {
            skus.push(product.sku);
            warehouses.push(warehouse.id);
            units.push(
                i64::try_from(catalog::initial_stock(product.sku, warehouse.id)).unwrap_or(0),
            );
        }
    }
    sqlx::query(
        "WITH added AS (
             INSERT INTO stock (sku, warehouse, on_hand)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
             ON CONFLICT (sku, warehouse) DO NOTHING
             RETURNING sku, on_hand)
         INSERT INTO sku_totals (sku, on_hand, held)
         SELECT sku, sum(on_hand), 0 FROM added GROUP BY sku
         ON CONFLICT (sku) DO UPDATE SET on_hand = sku_totals.on_hand + EXCLUDED.on_hand",
    )
    .bind(&skus)
    .bind(&warehouses)
    .bind(&units)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: uuid::Uuid,
    order_id: String,
    lines: Json<Vec<Line>>,
    state: String,
}

impl ReservationRow {
    fn into_reservation(self) -> Result<Reservation, ApiError> {
        Ok(Reservation {
            id: self.id.to_string(),
            order_id: self.order_id,
            lines: self.lines.0,
            state: parse_state(&self.state)?,
        })
    }
}

macro_rules! reservation_columns {
    () => {
        "id, order_id, lines, state"
    };
}

pub async fn by_order(
    executor: impl sqlx::PgExecutor<'_>,
    order_id: &str,
) -> Result<Option<Reservation>, ApiError> {
    sqlx::query_as::<_, ReservationRow>(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(executor)
    .await?
    .map(ReservationRow::into_reservation)
    .transpose()
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Reservation, ApiError> {
    let uuid = parse_id(id, "reservation")?;
    sqlx::query_as::<_, ReservationRow>(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE id = $1"
    ))
    .bind(uuid)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no reservation {id}")))?
    .into_reservation()
}

/// Locks a reservation for a state change.
async fn lock(tx: &mut Transaction<'_, Postgres>, id: &str) -> Result<Reservation, ApiError> {
    let uuid = parse_id(id, "reservation")?;
    sqlx::query_as::<_, ReservationRow>(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE id = $1 FOR UPDATE"
    ))
    .bind(uuid)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no reservation {id}")))?
    .into_reservation()
}

async fn set_state(
    tx: &mut Transaction<'_, Postgres>,
    reservation: &mut Reservation,
    state: ReservationState,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE reservations SET state = $2, updated_at = now() WHERE id = $1")
        .bind(parse_id(&reservation.id, "reservation")?)
        .bind(state_text(state))
        .execute(&mut **tx)
        .await?;
    reservation.state = state;
    Ok(())
}

/// Holds stock for an order, all lines or none. Idempotent per order: the
/// second request (from any replica) gets the first reservation back.
pub async fn reserve(
    pool: &PgPool,
    order_id: &str,
    lines: &[Line],
) -> Result<(Reservation, bool), ApiError> {
    if let Some(existing) = by_order(pool, order_id).await? {
        return Ok((existing, false));
    }
    let mut tx = pool.begin().await?;
    let id = db::new_id();
    let inserted = sqlx::query(
        "INSERT INTO reservations (id, order_id, lines, state) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(id)
    .bind(order_id)
    .bind(Json(lines))
    .bind(state_text(ReservationState::Held))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // Another replica reserved for this order since we looked.
        tx.rollback().await?;
        let existing = by_order(pool, order_id)
            .await?
            .ok_or_else(|| ApiError::unavailable("the order's reservation vanished; retry"))?;
        return Ok((existing, false));
    }
    for (sku, units) in units_by_sku(lines) {
        let units = to_bigint(units, "quantity")?;
        let held = sqlx::query(
            "UPDATE sku_totals SET held = held + $2 WHERE sku = $1 AND on_hand - held >= $2",
        )
        .bind(sku)
        .bind(units)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held == 0 {
            let available: Option<i64> =
                sqlx::query_scalar("SELECT on_hand - held FROM sku_totals WHERE sku = $1")
                    .bind(sku)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.rollback().await?;
            return Err(ApiError::conflict(
                "out_of_stock",
                format!(
                    "{sku}: {units} wanted, {} available",
                    available.unwrap_or(0).max(0)
                ),
            ));
        }
    }
    tx.commit().await?;
    let reservation = Reservation {
        id: id.to_string(),
        order_id: order_id.to_owned(),
        lines: lines.to_vec(),
        state: ReservationState::Held,
    };
    Ok((reservation, true))
}

/// Gives held stock back. Idempotent; a committed reservation cannot be released.
pub async fn release(pool: &PgPool, id: &str) -> Result<Reservation, ApiError> {
    let mut tx = pool.begin().await?;
    let mut reservation = lock(&mut tx, id).await?;
    match reservation.state {
        ReservationState::Released => return Ok(reservation),
        ReservationState::Committed => {
            return Err(ApiError::conflict(
                "already_committed",
                format!("reservation {id} is committed"),
            ));
        }
        ReservationState::Held => {}
    }
    for (sku, units) in units_by_sku(&reservation.lines) {
        sqlx::query("UPDATE sku_totals SET held = held - $2 WHERE sku = $1")
            .bind(sku)
            .bind(to_bigint(units, "quantity")?)
            .execute(&mut *tx)
            .await?;
    }
    set_state(&mut tx, &mut reservation, ReservationState::Released).await?;
    tx.commit().await?;
    Ok(reservation)
}

/// Releases up to 256 reservations held longer than `ttl`, in one
/// statement (reservation rows, then the SKU totals: the order every
/// transaction here locks them in); returns how many.
pub async fn expire(pool: &PgPool, ttl: std::time::Duration) -> Result<u64, ApiError> {
    let expired: i64 = sqlx::query_scalar(
        "WITH expired AS (
             UPDATE reservations SET state = 'released', updated_at = now()
             WHERE id IN (SELECT id FROM reservations
                          WHERE state = 'held' AND created_at < now() - make_interval(secs => $1)
                          ORDER BY created_at LIMIT 256
                          FOR UPDATE SKIP LOCKED)
             RETURNING lines
         ),
         units AS (
             SELECT l->>'sku' AS sku, sum((l->>'quantity')::bigint) AS units
             FROM expired, jsonb_array_elements(expired.lines) l
             GROUP BY 1
         ),
         given_back AS (
             UPDATE sku_totals t SET held = t.held - u.units FROM units u
             WHERE t.sku = u.sku
             RETURNING 1
         )
         SELECT count(*) FROM expired",
    )
    .bind(ttl.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(expired).unwrap_or(0))
}

/// Takes the held units out of the named warehouses. Idempotent.
pub async fn commit(
    pool: &PgPool,
    id: &str,
    allocations: &[Allocation],
) -> Result<Reservation, ApiError> {
    let mut tx = pool.begin().await?;
    let mut reservation = lock(&mut tx, id).await?;
    match reservation.state {
        ReservationState::Committed => return Ok(reservation),
        ReservationState::Released => {
            return Err(ApiError::conflict(
                "already_released",
                format!("reservation {id} was released"),
            ));
        }
        ReservationState::Held => {}
    }
    if !allocations_cover(&reservation.lines, allocations) {
        return Err(ApiError::unprocessable(
            "allocation_mismatch",
            "allocations must cover exactly the reserved units",
        ));
    }
    for ((sku, warehouse), units) in units_by_place(allocations) {
        let taken = sqlx::query(
            "UPDATE stock SET on_hand = on_hand - $3
             WHERE sku = $1 AND warehouse = $2 AND on_hand >= $3",
        )
        .bind(sku)
        .bind(warehouse)
        .bind(to_bigint(units, "quantity")?)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            tx.rollback().await?;
            return Err(ApiError::conflict(
                "allocation_unavailable",
                format!("{warehouse} has fewer than {units} of {sku}"),
            ));
        }
    }
    for (sku, units) in units_by_sku(&reservation.lines) {
        sqlx::query(
            "UPDATE sku_totals SET on_hand = on_hand - $2, held = held - $2 WHERE sku = $1",
        )
        .bind(sku)
        .bind(to_bigint(units, "quantity")?)
        .execute(&mut *tx)
        .await?;
    }
    set_state(&mut tx, &mut reservation, ReservationState::Committed).await?;
    tx.commit().await?;
    Ok(reservation)
}

/// Units on hand per warehouse of the given SKUs.
pub async fn levels(pool: &PgPool, skus: &[String]) -> Result<StockLevels, ApiError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT sku, warehouse, on_hand FROM stock WHERE sku = ANY($1) ORDER BY sku, warehouse",
    )
    .bind(skus)
    .fetch_all(pool)
    .await?;
    Ok(StockLevels {
        levels: rows
            .into_iter()
            .map(|(sku, warehouse, on_hand)| StockLevel {
                sku,
                warehouse,
                on_hand: from_bigint(on_hand),
            })
            .collect(),
    })
}

/// Puts units on hand in `warehouse`; returns how many. With a `restock_id`,
/// a retry of the same restock adds nothing more.
pub async fn restock(
    pool: &PgPool,
    lines: &[Line],
    warehouse: &str,
    restock_id: Option<&str>,
) -> Result<u64, ApiError> {
    let mut total = 0u64;
    for units in units_by_sku(lines).values() {
        total = total
            .checked_add(*units)
            .ok_or_else(|| ApiError::unprocessable("out_of_range", "restocked units overflow"))?;
    }
    let mut tx = pool.begin().await?;
    // Every restock is on the books (the audit's stock balance counts them);
    // one without a name gets one and is never a retry.
    let restock_id = restock_id.map_or_else(|| format!("unnamed-{}", db::new_id()), str::to_owned);
    let first = sqlx::query(
        "INSERT INTO restocks (restock_id, units) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&restock_id)
    .bind(to_bigint(total, "units")?)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if first == 0 {
        tx.rollback().await?;
        return Ok(total);
    }
    for (sku, units) in units_by_sku(lines) {
        let amount = to_bigint(units, "quantity")?;
        sqlx::query(
            "INSERT INTO stock (sku, warehouse, on_hand) VALUES ($1, $2, $3)
             ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = stock.on_hand + EXCLUDED.on_hand",
        )
        .bind(sku)
        .bind(warehouse)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sku_totals (sku, on_hand, held) VALUES ($1, $2, 0)
             ON CONFLICT (sku) DO UPDATE SET on_hand = sku_totals.on_hand + EXCLUDED.on_hand",
        )
        .bind(sku)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> Line {
        Line {
            sku: sku.to_owned(),
            quantity,
        }
    }

    fn allocation(warehouse: &str, sku: &str, quantity: u32) -> Allocation {
        Allocation {
            warehouse: warehouse.to_owned(),
            sku: sku.to_owned(),
            quantity,
        }
    }

    #[test]
    fn repeated_skus_are_summed_and_sorted() {
        let lines = [
            line("SKU-MUG", 2),
            line("SKU-HOODIE", 1),
            line("SKU-MUG", 3),
        ];
        let units = units_by_sku(&lines);
        assert_eq!(
            units.into_iter().collect::<Vec<_>>(),
            vec![("SKU-HOODIE", 1), ("SKU-MUG", 5)]
        );
    }

    #[test]
    fn allocations_must_cover_exactly_the_reserved_units() {
        let lines = [line("SKU-MUG", 3)];
        assert!(allocations_cover(
            &lines,
            &[allocation("WH-NORTH", "SKU-MUG", 3)]
        ));
        assert!(allocations_cover(
            &lines,
            &[
                allocation("WH-NORTH", "SKU-MUG", 1),
                allocation("WH-SOUTH", "SKU-MUG", 2)
            ]
        ));
        assert!(!allocations_cover(
            &lines,
            &[allocation("WH-NORTH", "SKU-MUG", 2)]
        ));
        assert!(!allocations_cover(
            &lines,
            &[
                allocation("WH-NORTH", "SKU-MUG", 3),
                allocation("WH-NORTH", "SKU-POSTER", 1)
            ]
        ));
    }

    #[test]
    fn the_same_place_twice_is_one_lock() {
        let allocations = [
            allocation("WH-NORTH", "SKU-MUG", 1),
            allocation("WH-NORTH", "SKU-MUG", 2),
        ];
        let places = units_by_place(&allocations);
        assert_eq!(places.len(), 1);
        assert_eq!(places[&("SKU-MUG", "WH-NORTH")], 3);
    }
}
