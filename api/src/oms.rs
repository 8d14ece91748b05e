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

/// Whether `name` matches [`SERVICE_NAME_PATTERN`] and fits a label (at
/// most 63 characters): what the API server would accept as a service.
pub fn is_service_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.chars().all(|c| alphanumeric(c) || c == '-')
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
}

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
    fn service_names_are_dns_labels() {
        for good in ["tax", "payment-primary", "a", "b2b", &"x".repeat(63)] {
            assert!(is_service_name(good), "{good}");
        }
        for bad in [
            "",
            "Tax",
            "-tax",
            "tax-",
            "tax_1",
            "tax.shop",
            &"x".repeat(64),
        ] {
            assert!(!is_service_name(bad), "{bad}");
        }
    }

    #[test]
    fn cel_list_names_every_service_once() {
        let quoted: Vec<String> = OMS_SERVICES.iter().map(|s| format!("'{s}'")).collect();
        assert_eq!(OMS_SERVICES_CEL, format!("[{}]", quoted.join(", ")));
    }
}
