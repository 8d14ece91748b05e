//! Reference data: the product catalogue, the warehouses and the tax regions.

/// A product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Product {
    pub sku: &'static str,
    pub name: &'static str,
    /// Unit price in cents.
    pub price_cents: u64,
    /// Shipping weight in grams.
    pub weight_grams: u32,
}

/// Products in the catalogue. SKUs ending in `-RARE` start with no stock, so
/// that drills and tests can provoke out-of-stock rejections on purpose.
pub const PRODUCTS: &[Product] = &[
    Product {
        sku: "SKU-TSHIRT",
        name: "T-shirt",
        price_cents: 1_999,
        weight_grams: 200,
    },
    Product {
        sku: "SKU-HOODIE",
        name: "Hoodie",
        price_cents: 4_999,
        weight_grams: 600,
    },
    Product {
        sku: "SKU-MUG",
        name: "Mug",
        price_cents: 1_299,
        weight_grams: 350,
    },
    Product {
        sku: "SKU-POSTER",
        name: "Poster",
        price_cents: 899,
        weight_grams: 100,
    },
    Product {
        sku: "SKU-BACKPACK",
        name: "Backpack",
        price_cents: 7_999,
        weight_grams: 900,
    },
    Product {
        sku: "SKU-BOTTLE",
        name: "Water bottle",
        price_cents: 2_499,
        weight_grams: 400,
    },
    Product {
        sku: "SKU-LAMP-RARE",
        name: "Limited lamp",
        price_cents: 14_999,
        weight_grams: 2_000,
    },
];

pub fn product(sku: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.sku == sku)
}

/// A fulfillment node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warehouse {
    pub id: &'static str,
    /// Position on a flat map, in km.
    pub x_km: f64,
    pub y_km: f64,
    /// Cost to pick and pack one shipment, in cents.
    pub handling_cents: u64,
    /// Carrier rate in cents per km per kg.
    pub carrier_cents_per_km_kg: f64,
}

pub const WAREHOUSES: &[Warehouse] = &[
    Warehouse {
        id: "WH-NORTH",
        x_km: 0.0,
        y_km: 800.0,
        handling_cents: 350,
        carrier_cents_per_km_kg: 0.20,
    },
    Warehouse {
        id: "WH-CENTRAL",
        x_km: 0.0,
        y_km: 0.0,
        handling_cents: 300,
        carrier_cents_per_km_kg: 0.22,
    },
    Warehouse {
        id: "WH-SOUTH",
        x_km: 100.0,
        y_km: -700.0,
        handling_cents: 250,
        carrier_cents_per_km_kg: 0.25,
    },
];

/// Starting stock of `sku` at `warehouse`.
pub fn initial_stock(sku: &str, warehouse: &str) -> u64 {
    if sku.ends_with("-RARE") {
        return 0;
    }
    // Plenty for sustained load; the Backpack is only kept in two nodes so
    // that some baskets need a split shipment or a farther node.
    match (sku, warehouse) {
        ("SKU-BACKPACK", "WH-SOUTH") => 0,
        _ => 1_000_000_000,
    }
}

/// A shipping region with its destination point and tax rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub code: &'static str,
    pub x_km: f64,
    pub y_km: f64,
    /// Sales tax in basis points (1/100 of a percent).
    pub tax_bps: u64,
}

pub const REGIONS: &[Region] = &[
    Region {
        code: "NORTH",
        x_km: 50.0,
        y_km: 750.0,
        tax_bps: 2_000,
    },
    Region {
        code: "CENTRAL",
        x_km: 30.0,
        y_km: 20.0,
        tax_bps: 1_900,
    },
    Region {
        code: "SOUTH",
        x_km: 120.0,
        y_km: -650.0,
        tax_bps: 2_100,
    },
    Region {
        code: "EAST",
        x_km: 600.0,
        y_km: 100.0,
        tax_bps: 1_700,
    },
];

pub fn region(code: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|r| r.code == code)
}

/// A promotion code and its discount in basis points of the subtotal.
pub const PROMOTIONS: &[(&str, u64)] = &[("WELCOME10", 1_000), ("SPRING5", 500)];

/// Card tokens that the payment providers always decline (for drills and tests).
pub const DECLINED_CARD: &str = "tok_declined";

/// A card token that is authorised but declined at capture (a risk check).
pub const CAPTURE_DECLINED_CARD: &str = "tok_capture_declined";

/// Most a single order may cost, in cents; above it payment is declined.
pub const PAYMENT_LIMIT_CENTS: u64 = 1_000_000;
