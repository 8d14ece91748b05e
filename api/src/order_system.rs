//! `OrderSystem`: one instance of the bundled reference OMS.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The image that serves every OMS service (one binary, a subcommand per service).
pub const DEFAULT_OMS_IMAGE: &str = "ghcr.io/homeostat-dev/oms-sample:0.1.0";

/// A container image reference: `[host[:port]/]path[:tag][@sha256:digest]`,
/// lowercase path as registries require.
const IMAGE_PATTERN: &str = r"^[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$";

/// Desired state of one reference OMS: the image, per-service sizing, the
/// payment routing and the load generator. The operator turns it into
/// Deployments, Services, RBAC, the payment routing ConfigMap and ServiceMonitors.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "homeostat.dev",
    version = "v1alpha1",
    kind = "OrderSystem",
    namespaced,
    doc = "One instance of the bundled reference order management system, deployed and kept in shape by the homeostat operator.",
    status = "OrderSystemStatus",
    shortname = "oms",
    category = "homeostat",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Services","type":"string","jsonPath":".status.summary"}"#,
    printcolumn = r#"{"name":"Load","type":"integer","jsonPath":".spec.loadGenerator.ordersPerSecond","description":"Orders per second from the load generator"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(format!("!has(self.services) || self.services.all(name, name in {})", crate::oms::OMS_SERVICES_CEL)).message("services keys must be OMS service names: orders, inventory, tax, payment-primary, payment-secondary, fulfillment, notifications, returns"))]
pub struct OrderSystemSpec {
    /// Container image serving every OMS service: a reference such as
    /// `registry.example.com/oms:1.2` or `oms@sha256:…`.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512), regex(pattern = IMAGE_PATTERN))]
    pub image: String,

    /// Pull policy for the image: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Per-service overrides keyed by service name (orders, inventory, tax,
    /// payment-primary, payment-secondary, fulfillment, notifications, returns).
    /// Services not listed run one replica with default resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 8))]
    pub services: BTreeMap<String, ServiceOverrides>,

    /// Initial payment routing: percentage of payment calls sent to
    /// payment-primary; the rest go to payment-secondary. Remediations may change
    /// the live routing ConfigMap; this is what the operator writes at creation.
    #[serde(default = "default_primary_weight")]
    #[schemars(range(min = 0, max = 100))]
    pub payment_primary_weight: i32,

    /// Synthetic customer traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_generator: Option<LoadGeneratorSpec>,

    /// Create Prometheus Operator ServiceMonitors when that CRD is installed.
    #[serde(default = "default_true")]
    pub service_monitors: bool,

    /// The PostgreSQL database the stateful services (all but tax) keep their
    /// state in, each in a schema of its own that it creates and migrates at
    /// start. Without it those services cannot start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// The NATS server (JetStream on) the order events go through: `orders`
    /// publishes them from its outbox, `notifications` consumes them. Without
    /// it those two services cannot start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsSpec>,
}

/// Where the OMS's order events go: an existing NATS server, or one the
/// operator runs for this OrderSystem.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.natsUrlSecret) != has(self.inCluster)").message("events takes one of natsUrlSecret (an existing server) and inCluster (one run by the operator)"))]
pub struct EventsSpec {
    /// The Secret, in the OrderSystem's namespace, whose key holds the NATS
    /// URL: `nats://HOST:4222`, or `nats://USER:PASSWORD@HOST:4222`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_url_secret: Option<SecretKey>,

    /// Run a single nats-server (JetStream on, file storage on a volume) for
    /// this OrderSystem as a StatefulSet `<name>-nats`, reachable inside the
    /// namespace without credentials. For the sample and for trying the OMS
    /// out; production points natsUrlSecret at its own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<InClusterServer>,
}

/// Where the OMS's database is: an existing PostgreSQL, or one the operator
/// runs for this OrderSystem.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.urlSecret) != has(self.inCluster)").message("database takes one of urlSecret (an existing database) and inCluster (one run by the operator)"))]
pub struct DatabaseSpec {
    /// The Secret, in the OrderSystem's namespace, whose key holds the
    /// connection URL: `postgres://USER:PASSWORD@HOST:PORT/DATABASE`
    /// (add `?sslmode=require` for TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret: Option<SecretKey>,

    /// Run a single PostgreSQL for this OrderSystem as a StatefulSet
    /// `<name>-postgres` with its data on a volume; the operator generates
    /// its password into the Secret `<name>-postgres` (keys `password` and
    /// `url`) once. For the sample and for trying the OMS out; production
    /// points urlSecret at a managed, backed-up database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<InClusterServer>,

    /// Connections each replica's pool may open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub pool_size: Option<i32>,
}

/// A backing server the operator runs as a one-replica StatefulSet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InClusterServer {
    /// Its image; without it, the upstream image (`postgres:16-bookworm`,
    /// whose POSTGRES_* variables and data path the operator uses, or
    /// `nats:2.10-alpine`). Point it at a mirror or a locally built image
    /// with the same interface on clusters without registry access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = IMAGE_PATTERN))]
    pub image: Option<String>,

    /// Size of its data volume (a Kubernetes quantity); 1Gi without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = crate::resources::BYTES_PATTERN)
    )]
    pub storage: Option<String>,

    /// StorageClass of its data volume; the cluster's default without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// One key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The key within the Secret.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Image pull policy of the OMS containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Sizing of one OMS service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOverrides {
    /// Replicas of the service's Deployment at creation. A remediation that
    /// scaled the Deployment owns its replica count until it restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,

    /// CPU and memory requests and limits of the service's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::ContainerResources>,

    /// How fast each replica works, for load drills: without it a replica
    /// takes on everything at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<ServiceCapacity>,
}

/// A replica that works on at most `workers` requests at a time, each for at
/// least `serviceTimeMs` (a pool-bound service): past `workers /
/// serviceTimeMs` requests a millisecond the rest queue and latency rises,
/// and another replica takes half the queue.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCapacity {
    /// Requests each replica works on at once.
    #[schemars(range(min = 1, max = 10000))]
    pub workers: i32,

    /// The least time a request holds its worker, in milliseconds.
    #[schemars(range(min = 1, max = 60000))]
    pub service_time_ms: i32,
}

/// The open-loop load generator (`oms loadgen`) run beside the OMS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.newOrderPercent + self.lookupPercent + self.returnPercent == 100").message("newOrderPercent + lookupPercent + returnPercent must equal 100"))]
pub struct LoadGeneratorSpec {
    /// Run the load generator; false scales a running one to zero.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Arrival rate of requests, per second, held regardless of latency.
    #[serde(default = "default_orders_per_second")]
    #[schemars(range(min = 1, max = 10000))]
    pub orders_per_second: i32,

    /// Share of requests that create an order, in percent.
    #[serde(default = "default_new_order_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub new_order_percent: i32,

    /// Share of requests that look an order up, in percent.
    #[serde(default = "default_lookup_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub lookup_percent: i32,

    /// Share of requests that open a return, in percent.
    #[serde(default = "default_return_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub return_percent: i32,
}

/// Observed state of an OrderSystem.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderSystemStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing and Degraded, in metav1.Condition form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Desired and ready replicas per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub services: Vec<ServiceStatus>,

    /// Ready services over all services, e.g. "8/8", for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Replica counts of one OMS service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// Replicas the Deployment asks for (may differ from the spec while a remediation holds it).
    pub desired_replicas: i32,
    /// Replicas that are ready.
    pub ready_replicas: i32,
}

fn default_url_key() -> String {
    "url".to_owned()
}
fn default_image() -> String {
    DEFAULT_OMS_IMAGE.to_owned()
}
fn default_primary_weight() -> i32 {
    100
}
fn default_true() -> bool {
    true
}
fn default_orders_per_second() -> i32 {
    40
}
fn default_new_order_percent() -> i32 {
    70
}
fn default_lookup_percent() -> i32 {
    25
}
fn default_return_percent() -> i32 {
    5
}
