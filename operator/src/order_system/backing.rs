//! The servers an OrderSystem may ask the operator to run for it — its
//! PostgreSQL and its NATS server — as plain objects: pure, no I/O. Each is
//! a one-replica StatefulSet with its data on a volume, a Service in front,
//! and a Secret holding the URL the OMS services read.

use std::collections::BTreeMap;

use homeostat_api::{InClusterServer, OrderSystem, SecretKey};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
    Probe, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use super::pod_security;
use super::render::{Child, labels};

pub const POSTGRES_IMAGE: &str = "postgres:16-bookworm";
pub const NATS_IMAGE: &str = "nats:2.10-alpine";
const DEFAULT_STORAGE: &str = "1Gi";
const POSTGRES_PORT: i32 = 5432;
const NATS_PORT: i32 = 4222;
const NATS_MONITOR_PORT: i32 = 8222;
/// The role and database of an in-cluster PostgreSQL.
const DATABASE_USER: &str = "oms";
/// Every stateful Deployment's pool (10 by default) times its replicas, with
/// room for scaling out: PostgreSQL's default of 100 is too few.
const MAX_CONNECTIONS: &str = "300";

/// A server the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Postgres,
    Nats,
}

impl Backing {
    /// The name of its StatefulSet, Service and Secret.
    pub fn name(self, os: &OrderSystem) -> String {
        format!("{}-{}", os.name_any(), self.component())
    }

    fn component(self) -> &'static str {
        match self {
            Backing::Postgres => "postgres",
            Backing::Nats => "nats",
        }
    }

    /// What `os` asks of this server, when it asks the operator to run it.
    fn requested(self, os: &OrderSystem) -> Option<&InClusterServer> {
        match self {
            Backing::Postgres => os.spec.database.as_ref()?.in_cluster.as_ref(),
            Backing::Nats => os.spec.events.as_ref()?.in_cluster.as_ref(),
        }
    }

    fn default_image(self) -> &'static str {
        match self {
            Backing::Postgres => POSTGRES_IMAGE,
            Backing::Nats => NATS_IMAGE,
        }
    }

    fn port(self) -> i32 {
        match self {
            Backing::Postgres => POSTGRES_PORT,
            Backing::Nats => NATS_PORT,
        }
    }

    /// Where the image keeps its data.
    fn data_path(self) -> &'static str {
        match self {
            Backing::Postgres => "/var/lib/postgresql/data",
            Backing::Nats => "/data",
        }
    }

    /// Who the server runs as; its volumes belong to that user's group.
    fn user(self) -> i64 {
        match self {
            Backing::Postgres => pod_security::POSTGRES,
            Backing::Nats => pod_security::NONROOT,
        }
    }

    /// Writable directories besides the data (the root filesystem is
    /// read-only): PostgreSQL's socket directory and a scratch directory.
    fn scratch_paths(self) -> &'static [&'static str] {
        match self {
            Backing::Postgres => &["/var/run/postgresql", "/tmp"],
            Backing::Nats => &[],
        }
    }

    fn resources(self) -> k8s_openapi::api::core::v1::ResourceRequirements {
        match self {
            Backing::Postgres => pod_security::resources("100m", "256Mi", "1Gi"),
            Backing::Nats => pod_security::resources("50m", "64Mi", "512Mi"),
        }
    }

    /// The URL the OMS services use, given the database password.
    fn url(self, os: &OrderSystem, password: &str) -> String {
        let host = self.name(os);
        match self {
            Backing::Postgres => format!(
                "postgres://{DATABASE_USER}:{password}@{host}:{POSTGRES_PORT}/{DATABASE_USER}"
            ),
            Backing::Nats => format!("nats://{host}:{NATS_PORT}"),
        }
    }

    /// The Secret's keys. The database's password is made once: its Secret
    /// is only ever created, never updated.
    fn secret_data(self, os: &OrderSystem, password: &str) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::from([(
            "url".to_owned(),
            ByteString(self.url(os, password).into_bytes()),
        )]);
        if self == Backing::Postgres {
            data.insert(
                "password".to_owned(),
                ByteString(password.as_bytes().to_vec()),
            );
        }
        data
    }

    fn container(self, os: &OrderSystem, image: String) -> Container {
        let mut container = Container {
            name: self.component().to_owned(),
            image: Some(image),
            ports: Some(vec![ContainerPort {
                name: Some("server".to_owned()),
                container_port: self.port(),
                ..ContainerPort::default()
            }]),
            volume_mounts: Some(
                std::iter::once(("data".to_owned(), self.data_path()))
                    .chain(
                        self.scratch_paths()
                            .iter()
                            .enumerate()
                            .map(|(i, path)| (format!("scratch-{i}"), *path)),
                    )
                    .map(|(name, path)| VolumeMount {
                        name,
                        mount_path: path.to_owned(),
                        ..VolumeMount::default()
                    })
                    .collect(),
            ),
            security_context: Some(pod_security::container()),
            resources: Some(self.resources()),
            ..Container::default()
        };
        match self {
            Backing::Postgres => {
                container.args = Some(
                    ["-c", &format!("max_connections={MAX_CONNECTIONS}")]
                        .map(str::to_owned)
                        .to_vec(),
                );
                container.env = Some(vec![
                    plain("POSTGRES_USER", DATABASE_USER),
                    plain("POSTGRES_DB", DATABASE_USER),
                    // A subdirectory: the volume's root may hold lost+found.
                    plain("PGDATA", "/var/lib/postgresql/data/pgdata"),
                    EnvVar {
                        name: "POSTGRES_PASSWORD".to_owned(),
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: self.name(os),
                                key: "password".to_owned(),
                                optional: None,
                            }),
                            ..EnvVarSource::default()
                        }),
                        ..EnvVar::default()
                    },
                ]);
                container.readiness_probe = Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(
                            [
                                "pg_isready",
                                "-h",
                                "127.0.0.1",
                                "-U",
                                DATABASE_USER,
                                "-d",
                                DATABASE_USER,
                            ]
                            .map(str::to_owned)
                            .to_vec(),
                        ),
                    }),
                    period_seconds: Some(5),
                    ..Probe::default()
                });
            }
            Backing::Nats => {
                container.args = Some(
                    [
                        "--jetstream",
                        "--store_dir",
                        self.data_path(),
                        "--http_port",
                        &NATS_MONITOR_PORT.to_string(),
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                );
                if let Some(ports) = container.ports.as_mut() {
                    ports.push(ContainerPort {
                        name: Some("monitor".to_owned()),
                        container_port: NATS_MONITOR_PORT,
                        ..ContainerPort::default()
                    });
                }
                container.readiness_probe = Some(Probe {
                    http_get: Some(HTTPGetAction {
                        path: Some("/healthz?js-enabled-only=true".to_owned()),
                        port: IntOrString::String("monitor".to_owned()),
                        ..HTTPGetAction::default()
                    }),
                    period_seconds: Some(5),
                    ..Probe::default()
                });
            }
        }
        container
    }
}

/// The Secret key the OMS services read `backing`'s URL from, when `os`
/// names one or asks the operator to run the server.
pub fn url_secret(os: &OrderSystem, backing: Backing) -> Option<SecretKey> {
    let named = match backing {
        Backing::Postgres => os.spec.database.as_ref()?.url_secret.as_ref(),
        Backing::Nats => os.spec.events.as_ref()?.nats_url_secret.as_ref(),
    };
    match (named, backing.requested(os)) {
        (Some(secret), _) => Some(secret.clone()),
        (None, Some(_)) => Some(SecretKey {
            name: backing.name(os),
            key: "url".to_owned(),
        }),
        // The schema refuses a section with neither.
        (None, None) => None,
    }
}

/// The objects of the servers `os` asks the operator to run. `password`
/// goes into the database's Secret when it is first created.
pub fn render(os: &OrderSystem, password: &str) -> Vec<Child> {
    [Backing::Postgres, Backing::Nats]
        .into_iter()
        .filter_map(|backing| Some((backing, backing.requested(os)?)))
        .flat_map(|(backing, server)| servers(os, backing, server, password))
        .collect()
}

fn servers(
    os: &OrderSystem,
    backing: Backing,
    server: &InClusterServer,
    password: &str,
) -> Vec<Child> {
    let name = backing.name(os);
    let component = backing.component();
    let selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), component.to_owned()),
        ("app.kubernetes.io/instance".to_owned(), os.name_any()),
    ]);
    let secret = Secret {
        metadata: metadata(os, &name, component),
        data: Some(backing.secret_data(os, password)),
        ..Secret::default()
    };
    let service = Service {
        metadata: metadata(os, &name, component),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("server".to_owned()),
                port: backing.port(),
                target_port: Some(IntOrString::String("server".to_owned())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let image = server
        .image
        .clone()
        .unwrap_or_else(|| backing.default_image().to_owned());
    let storage = server
        .storage
        .clone()
        .unwrap_or_else(|| DEFAULT_STORAGE.to_owned());
    let statefulset = StatefulSet {
        metadata: metadata(os, &name, component),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&os.name_any(), component)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![backing.container(os, image)],
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security::pod(backing.user(), true)),
                    volumes: Some(
                        (0..backing.scratch_paths().len())
                            .map(|i| Volume {
                                name: format!("scratch-{i}"),
                                empty_dir: Some(EmptyDirVolumeSource::default()),
                                ..Volume::default()
                            })
                            .collect(),
                    )
                    .filter(|v: &Vec<Volume>| !v.is_empty()),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                    storage_class_name: server.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(storage))])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    };
    vec![
        Child {
            api_version: "v1",
            kind: "Secret",
            plural: "secrets",
            name: name.clone(),
            body: to_body(&secret),
            // The password is made once; the NATS URL never changes.
            create_only: true,
        },
        Child {
            api_version: "v1",
            kind: "Service",
            plural: "services",
            name: name.clone(),
            body: to_body(&service),
            create_only: false,
        },
        Child {
            api_version: "apps/v1",
            kind: "StatefulSet",
            plural: "statefulsets",
            name,
            body: to_body(&statefulset),
            create_only: false,
        },
    ]
}

fn metadata(os: &OrderSystem, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: os.namespace(),
        labels: Some(labels(&os.name_any(), component)),
        owner_references: os.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// A typed object as the body `apply` sends (it adds apiVersion and kind).
fn to_body<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn system(spec: Value) -> OrderSystem {
        let mut os: OrderSystem = serde_json::from_value(json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": spec
        }))
        .expect("order system");
        os.metadata.uid = Some("1234".into());
        os
    }

    #[test]
    fn a_named_secret_is_used_as_is_and_an_in_cluster_server_gets_its_own() {
        let named = system(json!({"database": {"urlSecret": {"name": "db", "key": "dsn"}}}));
        assert_eq!(
            url_secret(&named, Backing::Postgres),
            Some(SecretKey {
                name: "db".into(),
                key: "dsn".into()
            })
        );
        assert!(render(&named, "pw").is_empty(), "runs nothing");
        assert_eq!(url_secret(&named, Backing::Nats), None);

        let own = system(json!({"database": {"inCluster": {}}, "events": {"inCluster": {}}}));
        assert_eq!(
            url_secret(&own, Backing::Nats),
            Some(SecretKey {
                name: "shop-nats".into(),
                key: "url".into()
            })
        );
        let children = render(&own, "pw");
        let kinds: Vec<_> = children.iter().map(|c| (c.kind, c.name.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("Secret", "shop-postgres"),
                ("Service", "shop-postgres"),
                ("StatefulSet", "shop-postgres"),
                ("Secret", "shop-nats"),
                ("Service", "shop-nats"),
                ("StatefulSet", "shop-nats"),
            ]
        );
        assert!(
            children
                .iter()
                .filter(|c| c.kind == "Secret")
                .all(|c| c.create_only)
        );
        assert!(
            children
                .iter()
                .all(|c| c.body["metadata"]["ownerReferences"][0]["uid"] == "1234")
        );
    }

    #[test]
    fn the_database_gets_its_password_from_the_secret_and_its_data_on_a_volume() {
        let os = system(json!({"database": {"inCluster": {"storageClassName": "fast"}}}));
        let children = render(&os, "s3cret");
        let secret = &children[0].body;
        // base64 of the URL with the password.
        let url: ByteString = serde_json::from_value(secret["data"]["url"].clone()).expect("bytes");
        assert_eq!(url.0, b"postgres://oms:s3cret@shop-postgres:5432/oms");
        let set = &children[2].body["spec"];
        let container = &set["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], POSTGRES_IMAGE);
        assert!(container["env"].as_array().expect("env").contains(&json!(
            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "shop-postgres", "key": "password"}}}
        )));
        assert_eq!(
            set["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "fast"
        );
        assert_eq!(
            set["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "1Gi"
        );
        assert_eq!(
            container["volumeMounts"][0]["mountPath"],
            "/var/lib/postgresql/data"
        );
    }
}
