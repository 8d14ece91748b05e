//! Settling a saga that stopped short: a step was refused or lost its
//! answer, the saga ran out of time, or the replica driving it died. The
//! order's record says what was done up to the step in flight (`step`, on
//! disk before each call). That step's callee is in doubt unless it answered
//! with a refusal: a lost answer may hide a done step, so it is asked what it
//! holds for the order (every step is keyed by the order id). What is held
//! then decides: a captured payment is finished (the stock committed, the
//! order confirmed); anything short of that is undone, latest first, and the
//! order rejected.

use super::store::{Order, Step};
use crate::contract;
use crate::services::fulfillment::{Shipment, ShipmentState};
use crate::services::inventory::{Allocation, ReservationState};
use crate::services::payment::{AuthorizationState, RefundRequest};

/// A service the saga changes state at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    Inventory,
    Payment,
    Fulfillment,
}

/// The callees that may hold something the order's record does not show,
/// when the saga stopped at `step` without a refusal from it.
pub fn in_doubt(step: Step) -> &'static [Callee] {
    match step {
        Step::Reserve | Step::Commit => &[Callee::Inventory],
        Step::Authorize | Step::Capture => &[Callee::Payment],
        Step::Route => &[Callee::Fulfillment],
        // Pricing changes nothing anywhere.
        Step::Price => &[],
        // An earlier settling stopped midway: anything may have changed.
        Step::Settle => &[Callee::Inventory, Callee::Payment, Callee::Fulfillment],
    }
}

/// What the order's record says the callees hold: every answer the saga
/// heard, before any lookup.
pub fn recorded(order: &Order) -> Found {
    let captured = order.step == Step::Commit;
    Found {
        reservation: order
            .reservation_id
            .clone()
            .map(|id| (id, ReservationState::Held)),
        payment: match (&order.payment_provider, &order.authorization_id) {
            (Some(provider), Some(id)) => Some(HeldPayment {
                provider: provider.clone(),
                authorization_id: id.clone(),
                state: if captured {
                    AuthorizationState::Captured
                } else {
                    AuthorizationState::Authorized
                },
                refundable_cents: if captured {
                    order.quote.as_ref().map_or(0, |q| q.total_cents)
                } else {
                    0
                },
            }),
            _ => None,
        },
        shipment: order
            .shipment_id
            .clone()
            .map(|id| (id, ShipmentState::Planned)),
    }
}

/// An order's payment as its provider holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldPayment {
    pub provider: String,
    pub authorization_id: String,
    pub state: AuthorizationState,
    /// Captured and not refunded yet.
    pub refundable_cents: u64,
}

/// What the callees hold for one order (ids and states).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Found {
    pub reservation: Option<(String, ReservationState)>,
    pub payment: Option<HeldPayment>,
    pub shipment: Option<(String, ShipmentState)>,
}

/// What to do with an order that stopped short.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// The payment was captured: commit the stock where the order's shipment
    /// takes it from, then confirm.
    Finish { reservation_id: String },
    /// Undo these, first to last, then reject.
    Undo(Vec<Done>),
}

/// Decides from what the callees hold. `finish_allowed` is false when
/// finishing was tried and refused, so only undoing is left.
pub fn plan(found: &Found, finish_allowed: bool) -> Settlement {
    let captured = found
        .payment
        .as_ref()
        .is_some_and(|p| p.state == AuthorizationState::Captured);
    if finish_allowed && captured {
        let reservation = found.reservation.as_ref().filter(|(_, state)| {
            matches!(state, ReservationState::Held | ReservationState::Committed)
        });
        let shipment = found
            .shipment
            .as_ref()
            .filter(|(_, state)| *state == ShipmentState::Planned);
        if let (Some((reservation_id, _)), Some(_)) = (reservation, shipment) {
            return Settlement::Finish {
                reservation_id: reservation_id.clone(),
            };
        }
    }
    Settlement::Undo(held(found))
}

/// Everything the order holds that a rejection must give back, latest step
/// first (the saga's order is reserve, authorise, route, capture).
fn held(found: &Found) -> Vec<Done> {
    let mut done = Vec::new();
    if let Some((shipment_id, ShipmentState::Planned)) = &found.shipment {
        done.push(Done::Routed {
            shipment_id: shipment_id.clone(),
        });
    }
    if let Some(payment) = &found.payment {
        match payment.state {
            AuthorizationState::Authorized => done.push(Done::Authorized {
                provider: payment.provider.clone(),
                authorization_id: payment.authorization_id.clone(),
            }),
            AuthorizationState::Captured if payment.refundable_cents > 0 => {
                done.push(Done::Captured {
                    provider: payment.provider.clone(),
                    authorization_id: payment.authorization_id.clone(),
                    amount_cents: payment.refundable_cents,
                });
            }
            _ => {}
        }
    }
    if let Some((reservation_id, ReservationState::Held)) = &found.reservation {
        done.push(Done::Reserved {
            reservation_id: reservation_id.clone(),
        });
    }
    done
}

/// Where the shipment takes each unit from: what committing the stock needs.
pub fn allocations(shipment: &Shipment) -> Vec<Allocation> {
    shipment
        .legs
        .iter()
        .flat_map(|leg| {
            leg.lines.iter().map(|line| Allocation {
                warehouse: leg.warehouse.clone(),
                sku: line.sku.clone(),
                quantity: line.quantity,
            })
        })
        .collect()
}

/// A step that is held by a callee and must be undone if the order is rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Reserved {
        reservation_id: String,
    },
    Authorized {
        provider: String,
        authorization_id: String,
    },
    Routed {
        shipment_id: String,
    },
    Captured {
        provider: String,
        authorization_id: String,
        amount_cents: u64,
    },
}

/// The call that undoes a step, and how the saga log describes it.
pub struct Undo<'a> {
    pub what: String,
    pub call: &'static contract::ClientCall,
    pub peer: &'a str,
    pub id: &'a str,
    pub body: Option<RefundRequest>,
}

impl Done {
    pub fn undo(&self) -> Undo<'_> {
        match self {
            Done::Routed { shipment_id } => Undo {
                what: format!("cancelled shipment {shipment_id}"),
                call: &contract::FULFILLMENT_CANCEL,
                peer: "fulfillment",
                id: shipment_id,
                body: None,
            },
            Done::Authorized {
                provider,
                authorization_id,
            } => Undo {
                what: format!("voided {authorization_id} at {provider}"),
                call: &contract::PAYMENT_VOID,
                peer: provider,
                id: authorization_id,
                body: None,
            },
            Done::Reserved { reservation_id } => Undo {
                what: format!("released {reservation_id}"),
                call: &contract::INVENTORY_RELEASE,
                peer: "inventory",
                id: reservation_id,
                body: None,
            },
            Done::Captured {
                provider,
                authorization_id,
                amount_cents,
            } => Undo {
                what: format!("refunded {authorization_id} at {provider}"),
                call: &contract::PAYMENT_REFUND,
                peer: provider,
                id: authorization_id,
                body: Some(RefundRequest {
                    amount_cents: *amount_cents,
                    // Retries of this compensation never refund twice.
                    refund_id: Some(format!("saga-undo-capture-{authorization_id}")),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Line;
    use crate::services::fulfillment::Leg;

    fn shipment(state: ShipmentState) -> (String, ShipmentState) {
        ("shp".into(), state)
    }

    fn payment(state: AuthorizationState) -> HeldPayment {
        HeldPayment {
            provider: "payment-primary".into(),
            authorization_id: "auth".into(),
            state,
            refundable_cents: if state == AuthorizationState::Captured {
                1_000
            } else {
                0
            },
        }
    }

    fn everything(auth: AuthorizationState) -> Found {
        Found {
            reservation: Some(("res".into(), ReservationState::Held)),
            payment: Some(payment(auth)),
            shipment: Some(shipment(ShipmentState::Planned)),
        }
    }

    #[test]
    fn a_captured_payment_is_finished_not_undone() {
        let settlement = plan(&everything(AuthorizationState::Captured), true);
        assert_eq!(
            settlement,
            Settlement::Finish {
                reservation_id: "res".into(),
            }
        );
    }

    #[test]
    fn allocations_follow_the_shipment_legs() {
        let shipment = Shipment {
            id: "shp".into(),
            order_id: "o".into(),
            legs: vec![Leg {
                warehouse: "WH-NORTH".into(),
                lines: vec![Line {
                    sku: "SKU-MUG".into(),
                    quantity: 2,
                }],
                cost_cents: 500,
            }],
            total_cost_cents: 500,
            state: ShipmentState::Planned,
        };
        assert_eq!(
            allocations(&shipment),
            [Allocation {
                warehouse: "WH-NORTH".into(),
                sku: "SKU-MUG".into(),
                quantity: 2,
            }]
        );
    }

    #[test]
    fn only_the_step_in_flight_is_in_doubt() {
        assert_eq!(in_doubt(Step::Capture), [Callee::Payment]);
        assert_eq!(in_doubt(Step::Commit), [Callee::Inventory]);
        assert!(in_doubt(Step::Price).is_empty());
        assert_eq!(in_doubt(Step::Settle).len(), 3);
    }

    #[test]
    fn a_refused_finish_refunds_the_capture_and_gives_everything_back() {
        let Settlement::Undo(steps) = plan(&everything(AuthorizationState::Captured), false) else {
            panic!("expected undo");
        };
        assert_eq!(
            steps,
            [
                Done::Routed {
                    shipment_id: "shp".into()
                },
                Done::Captured {
                    provider: "payment-primary".into(),
                    authorization_id: "auth".into(),
                    amount_cents: 1_000,
                },
                Done::Reserved {
                    reservation_id: "res".into()
                },
            ]
        );
    }

    #[test]
    fn short_of_capture_everything_held_is_undone_latest_first() {
        let Settlement::Undo(steps) = plan(&everything(AuthorizationState::Authorized), true)
        else {
            panic!("expected undo");
        };
        let undone: Vec<&str> = steps.iter().map(|d| d.undo().call.name).collect();
        assert_eq!(
            undone,
            ["fulfillment.cancel", "payment.void", "inventory.release"]
        );
    }

    #[test]
    fn what_is_already_given_back_is_not_undone_again() {
        let found = Found {
            reservation: Some(("res".into(), ReservationState::Released)),
            payment: Some(payment(AuthorizationState::Voided)),
            shipment: Some(shipment(ShipmentState::Cancelled)),
        };
        assert_eq!(plan(&found, true), Settlement::Undo(vec![]));
        assert_eq!(plan(&Found::default(), true), Settlement::Undo(vec![]));
    }

    #[test]
    fn a_capture_without_its_shipment_cannot_be_finished() {
        let mut found = everything(AuthorizationState::Captured);
        found.shipment = None;
        let Settlement::Undo(steps) = plan(&found, true) else {
            panic!("expected undo");
        };
        assert!(matches!(steps[0], Done::Captured { .. }), "{steps:?}");
    }
}
