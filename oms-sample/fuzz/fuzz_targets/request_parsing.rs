//! Arbitrary bytes as request bodies of every OMS service and as routing
//! tables: parsing and validation must answer Ok or a clear error, never panic.

#![no_main]

use std::collections::BTreeMap;

use homeostat_oms::faults::FaultRequest;
use homeostat_oms::routing::parse_routing_file;
use homeostat_oms::services::inventory::{Ledger, ReserveRequest, RestockRequest};
use homeostat_oms::services::orders::CreateOrderRequest;
use homeostat_oms::services::payment::{AuthorizeRequest, Book};
use homeostat_oms::services::tax::{QuoteRequest, price};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(order) = serde_json::from_slice::<CreateOrderRequest>(data) {
        let _ = order.validate();
    }
    if let Ok(quote) = serde_json::from_slice::<QuoteRequest>(data) {
        let _ = price(&quote);
    }
    if let Ok(reserve) = serde_json::from_slice::<ReserveRequest>(data) {
        let _ = Ledger::default().reserve(&reserve);
    }
    if let Ok(restock) = serde_json::from_slice::<RestockRequest>(data) {
        let _ = Ledger::default().restock(&restock);
    }
    if let Ok(authorize) = serde_json::from_slice::<AuthorizeRequest>(data) {
        let _ = Book::new("payment-primary").authorize(&authorize);
    }
    if let Ok(fault) = serde_json::from_slice::<FaultRequest>(data) {
        let _ = fault.validate();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let table: BTreeMap<String, String> = parse_routing_file(text);
        let _ = homeostat_api::routing::parse_routing_data(&table);
    }
});
