//! `oms audit`: whether the OMS's books balance, read from every service's
//! schema in the OMS database. Each rule is one query that counts what breaks
//! it; each balance compares two sums kept by different services. Made for a
//! system at rest (after a drill or a load test): an order younger than the
//! grace time may still be in its saga, and an event younger than it may
//! still be on its way, so neither counts against the books.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::catalog;

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// What was counted or compared.
    pub detail: String,
}

/// Every check, and whether all passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Audit {
    pub fn new(checks: Vec<Check>) -> Self {
        Self {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }
    }

    /// One line per check, failures first, for a terminal.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .chain(self.checks.iter().filter(|c| c.passed))
            .map(|c| {
                let verdict = if c.passed { "ok  " } else { "FAIL" };
                format!("{verdict} {}: {}", c.name, c.detail)
            })
            .collect();
        lines.push(if self.passed {
            "the books balance".to_owned()
        } else {
            "the books do NOT balance".to_owned()
        });
        lines.join("\n")
    }
}

/// A rule: the query counts the rows that break it.
struct Rule {
    name: &'static str,
    query: &'static str,
    /// The query spares what is younger than the grace time ($1, seconds).
    graced: bool,
}

/// Authorisations of both providers.
macro_rules! authorizations {
    () => {
        "(SELECT order_id, state, amount_cents, refunded_cents FROM payment_primary.authorizations
          UNION ALL
          SELECT order_id, state, amount_cents, refunded_cents FROM payment_secondary.authorizations)"
    };
}

const RULES: &[Rule] = &[
    Rule {
        name: "every order settled (pending only within the grace time)",
        query: "SELECT count(*) FROM orders.orders
                WHERE state = 'pending' AND created_at < now() - make_interval(secs => $1)",
        graced: true,
    },
    Rule {
        name: "every confirmed, shipped or returned order has its total captured",
        query: concat!(
            "SELECT count(*) FROM orders.orders o
             WHERE o.state IN ('confirmed', 'shipped', 'returned') AND NOT EXISTS (
                 SELECT 1 FROM ",
            authorizations!(),
            " a WHERE a.order_id = o.id::text AND a.state IN ('captured', 'refunded')
                  AND a.amount_cents = (o.quote->>'total_cents')::bigint)"
        ),
        graced: false,
    },
    Rule {
        name: "no rejected order holds or keeps money",
        query: concat!(
            "SELECT count(*) FROM orders.orders o JOIN ",
            authorizations!(),
            " a ON a.order_id = o.id::text
             WHERE o.state = 'rejected'
               AND (a.state = 'authorized' OR (a.state = 'captured' AND a.refunded_cents < a.amount_cents))"
        ),
        graced: false,
    },
    Rule {
        name: "no money held or taken for no order",
        query: concat!(
            "SELECT count(*) FROM ",
            authorizations!(),
            " a WHERE a.state IN ('authorized', 'captured')
               AND NOT EXISTS (SELECT 1 FROM orders.orders o WHERE o.id::text = a.order_id)"
        ),
        graced: false,
    },
    Rule {
        name: "every confirmed, shipped or returned order has its stock committed",
        query: "SELECT count(*) FROM orders.orders o
                WHERE o.state IN ('confirmed', 'shipped', 'returned') AND NOT EXISTS (
                    SELECT 1 FROM inventory.reservations r
                    WHERE r.order_id = o.id::text AND r.state = 'committed')",
        graced: false,
    },
    Rule {
        name: "no rejected order holds or takes stock",
        query: "SELECT count(*) FROM orders.orders o
                JOIN inventory.reservations r ON r.order_id = o.id::text
                WHERE o.state = 'rejected' AND r.state <> 'released'",
        graced: false,
    },
    Rule {
        name: "no stock held or taken for no order",
        query: "SELECT count(*) FROM inventory.reservations r
                WHERE r.state <> 'released'
                  AND NOT EXISTS (SELECT 1 FROM orders.orders o WHERE o.id::text = r.order_id)",
        graced: false,
    },
    Rule {
        name: "held stock per SKU is what the held reservations hold",
        query: "SELECT count(*) FROM inventory.sku_totals t
                WHERE t.held <> coalesce(
                    (SELECT sum((l->>'quantity')::bigint)
                     FROM inventory.reservations r, jsonb_array_elements(r.lines) l
                     WHERE r.state = 'held' AND l->>'sku' = t.sku), 0)",
        graced: false,
    },
    Rule {
        name: "stock per SKU is the sum of its warehouses",
        query: "SELECT count(*) FROM inventory.sku_totals t
                WHERE t.on_hand <> coalesce(
                    (SELECT sum(s.on_hand) FROM inventory.stock s WHERE s.sku = t.sku), 0)",
        graced: false,
    },
    Rule {
        name: "no rejected order has a shipment planned",
        query: "SELECT count(*) FROM orders.orders o
                JOIN fulfillment.shipments s ON s.order_id = o.id::text
                WHERE o.state = 'rejected' AND s.state = 'planned'",
        graced: false,
    },
    Rule {
        name: "every order event delivered (beyond the grace time)",
        query: "SELECT count(*) FROM orders.outbox o
                WHERE o.at < now() - make_interval(secs => $1) AND NOT EXISTS (
                    SELECT 1 FROM notifications.events e WHERE e.event_id = o.event_id::text)",
        graced: true,
    },
    Rule {
        name: "no order event applied twice",
        query: "SELECT count(*) FROM (
                    SELECT order_id, kind FROM notifications.events
                    GROUP BY order_id, kind HAVING count(*) > 1) twice",
        graced: false,
    },
    Rule {
        name: "every returned order has its refund recorded",
        query: "SELECT count(*) FROM orders.orders o
                WHERE o.state = 'returned' AND NOT EXISTS (
                    SELECT 1 FROM returns.returns r
                    WHERE r.order_id = o.id::text AND r.state = 'refunded')",
        graced: false,
    },
    Rule {
        name: "every refunded return's order is returned (beyond the grace time)",
        query: "SELECT count(*) FROM returns.returns r
                JOIN orders.orders o ON o.id::text = r.order_id
                WHERE r.state = 'refunded' AND o.state <> 'returned'
                  AND r.created_at < now() - make_interval(secs => $1)",
        graced: true,
    },
    Rule {
        name: "no return asked for is left unfinished (beyond the grace time)",
        query: "SELECT count(*) FROM orders.orders
                WHERE return_request IS NOT NULL
                  AND return_due < now() - make_interval(secs => $1)",
        graced: true,
    },
    Rule {
        name: "no return stuck between claim and refund",
        query: "SELECT count(*) FROM returns.returns
                WHERE state = 'requested' AND created_at < now() - make_interval(secs => $1)",
        graced: true,
    },
];

/// Money kept by the providers (captured minus refunded) against what the
/// orders say was sold (totals of confirmed, shipped and returned orders)
/// minus what returns refunded.
const MONEY: &str = concat!(
    "SELECT
        (SELECT coalesce(sum(amount_cents - refunded_cents), 0)::bigint FROM ",
    authorizations!(),
    " a WHERE a.state IN ('captured', 'refunded')),
        (SELECT coalesce(sum((quote->>'total_cents')::bigint), 0)::bigint FROM orders.orders
         WHERE state IN ('confirmed', 'shipped', 'returned'))
        - (SELECT coalesce(sum(refund_cents), 0)::bigint FROM returns.returns WHERE state = 'refunded')"
);

/// Units on hand now, units committed to orders, and units restocked.
const STOCK: &str = "SELECT
    (SELECT coalesce(sum(on_hand), 0)::bigint FROM inventory.stock),
    (SELECT coalesce(sum((l->>'quantity')::bigint), 0)::bigint
     FROM inventory.reservations r, jsonb_array_elements(r.lines) l WHERE r.state = 'committed'),
    (SELECT coalesce(sum(units), 0)::bigint FROM inventory.restocks)";

/// Units the ledger starts with: the catalogue's initial stock.
fn initial_units() -> i128 {
    catalog::PRODUCTS
        .iter()
        .flat_map(|p| {
            catalog::WAREHOUSES
                .iter()
                .map(move |w| i128::from(catalog::initial_stock(p.sku, w.id)))
        })
        .sum()
}

/// The money balance from its two sides.
pub fn money_check(kept_cents: i64, sold_minus_returned_cents: i64) -> Check {
    Check {
        name: "money kept by the providers = sold − returned",
        passed: kept_cents == sold_minus_returned_cents,
        detail: format!(
            "providers keep {kept_cents} cents; orders sold minus returns refunded {sold_minus_returned_cents}"
        ),
    }
}

/// The stock balance: what is on hand is what was there, less what left
/// with orders, plus what came back.
pub fn stock_check(initial: i128, on_hand: i64, committed: i64, restocked: i64) -> Check {
    let expected = initial - i128::from(committed) + i128::from(restocked);
    Check {
        name: "stock conserved: on hand = initial − committed + restocked",
        passed: i128::from(on_hand) == expected,
        detail: format!(
            "on hand {on_hand}; initial {initial} − committed {committed} + restocked {restocked} = {expected}"
        ),
    }
}

/// Runs every check against the OMS database behind `pool`.
pub async fn run(pool: &PgPool, grace: Duration) -> Result<Audit, sqlx::Error> {
    let grace_seconds = grace.as_secs_f64();
    let mut checks = Vec::new();
    for rule in RULES {
        let query = sqlx::query_scalar(rule.query);
        let query = if rule.graced {
            query.bind(grace_seconds)
        } else {
            query
        };
        let broken: i64 = query.fetch_one(pool).await?;
        checks.push(Check {
            name: rule.name,
            passed: broken == 0,
            detail: format!("{broken} breaking it"),
        });
    }
    let (kept, sold): (i64, i64) = sqlx::query_as(MONEY).fetch_one(pool).await?;
    checks.push(money_check(kept, sold));
    let (on_hand, committed, restocked): (i64, i64, i64) =
        sqlx::query_as(STOCK).fetch_one(pool).await?;
    checks.push(stock_check(initial_units(), on_hand, committed, restocked));
    Ok(Audit::new(checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_balances_only_to_the_cent() {
        assert!(money_check(10_000, 10_000).passed);
        assert!(!money_check(10_000, 9_999).passed);
    }

    #[test]
    fn stock_balances_what_left_and_came_back() {
        assert!(stock_check(100, 97, 5, 2).passed);
        assert!(!stock_check(100, 98, 5, 2).passed);
        // Far beyond i64 on the way, exact all the same.
        assert!(stock_check(i128::from(i64::MAX) + 5, i64::MAX, 5, 0).passed);
    }

    #[test]
    fn an_audit_fails_when_one_check_does_and_shows_it_first() {
        let audit = Audit::new(vec![money_check(1, 1), stock_check(10, 9, 0, 0)]);
        assert!(!audit.passed);
        assert!(
            audit.render().starts_with("FAIL stock conserved"),
            "{}",
            audit.render()
        );
        assert!(audit.render().ends_with("the books do NOT balance"));
    }
}
