//! The services of the bundled reference OMS. Their names are part of the
//! contract: scenarios, policies, metrics labels and Deployments use them.

/// Every OMS service, in port order: `oms up --base-port P` puts the n-th on `P + n`.
pub const OMS_SERVICES: [&str; 8] = [
    "orders",
    "inventory",
    "tax",
    "payment-primary",
    "payment-secondary",
    "fulfillment",
    "notifications",
    "returns",
];

/// A service name is a DNS label (RFC 1123): it names Deployments and
/// Services, and appears in metric labels.
pub const SERVICE_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Whether `name` is one of the OMS services.
pub fn is_oms_service(name: &str) -> bool {
    OMS_SERVICES.contains(&name)
}

/// Whether the service keeps state, and so needs a database (every service
/// but `tax`, which prices baskets from the catalogue alone).
pub fn keeps_state(name: &str) -> bool {
    is_oms_service(name) && name != "tax"
}

/// Whether the service sends or receives order events, and so needs the
/// NATS server: `orders` publishes them, `notifications` consumes them.
pub fn handles_events(name: &str) -> bool {
    matches!(name, "orders" | "notifications")
}

/// The CEL list literal of the service names, for schema rules.
pub(crate) const OMS_SERVICES_CEL: &str = "['orders', 'inventory', 'tax', 'payment-primary', 'payment-secondary', 'fulfillment', 'notifications', 'returns']";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cel_list_names_every_service_once() {
        let quoted: Vec<String> = OMS_SERVICES.iter().map(|s| format!("'{s}'")).collect();
        assert_eq!(OMS_SERVICES_CEL, format!("[{}]", quoted.join(", ")));
    }
}
