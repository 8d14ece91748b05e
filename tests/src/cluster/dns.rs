//! Cluster DNS: CoreDNS as a process on the node's bridge address, behind
//! the conventional `kube-system/kube-dns` Service at [`CLUSTER_DNS`] (a
//! Service without a selector, its one endpoint the node). It answers for
//! `cluster.local` and the reverse zones and forwards nothing, so no name
//! outside the cluster resolves from a pod.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;

use super::apply;
use super::config::{CLUSTER_DNS, NODE, NODE_IP};
use super::pki::Client;
use crate::SupportError;

pub const PORT: u16 = 53;
/// CoreDNS's readiness endpoint (the `ready` plugin), on the bridge address.
pub const READY_PORT: u16 = 8181;
/// Its Prometheus metrics, for an in-cluster Prometheus to scrape.
pub const METRICS_PORT: u16 = 9153;
const NAME: &str = "kube-dns";

/// The Corefile: `cluster.local` from the API server (read with
/// `kubeconfig`), nothing forwarded.
pub fn corefile(kubeconfig: &Path) -> String {
    format!(
        ".:{PORT} {{
    bind {NODE_IP}
    errors
    ready {NODE_IP}:{READY_PORT}
    prometheus {NODE_IP}:{METRICS_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 30
    }}
    cache 30
    loadbalance
}}
",
        kubeconfig = kubeconfig.display()
    )
}

/// What CoreDNS may read, its Service and the Service's one endpoint,
/// applied with server-side apply (safe to repeat).
pub async fn apply_objects(client: &kube::Client) -> Result<(), SupportError> {
    let (user, _) = Client::Dns.identity(NODE);
    let role = ClusterRole {
        metadata: named("homeostat:cluster-dns", None),
        rules: Some(vec![
            read(
                "",
                &["endpoints", "services", "pods", "namespaces"],
                &["list", "watch"],
            ),
            read("discovery.k8s.io", &["endpointslices"], &["list", "watch"]),
        ]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: named("homeostat:cluster-dns", None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "homeostat:cluster-dns".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user,
            namespace: None,
        }]),
    };
    let ports = [("dns", "UDP"), ("dns-tcp", "TCP")];
    let service = Service {
        metadata: named(NAME, Some("kube-system")),
        spec: Some(ServiceSpec {
            cluster_ip: Some(CLUSTER_DNS.into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, protocol)| ServicePort {
                        name: Some((*name).into()),
                        protocol: Some((*protocol).into()),
                        port: PORT.into(),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let mut slice_meta = named("kube-dns-node", Some("kube-system"));
    slice_meta.labels = Some(
        [
            ("kubernetes.io/service-name", NAME),
            (
                "endpointslice.kubernetes.io/managed-by",
                super::FIELD_MANAGER,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let slice = EndpointSlice {
        metadata: slice_meta,
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec![NODE_IP.into()],
            ..Endpoint::default()
        }],
        ports: Some(
            ports
                .iter()
                .map(|(name, protocol)| EndpointPort {
                    name: Some((*name).into()),
                    protocol: Some((*protocol).into()),
                    port: Some(PORT.into()),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
    };
    apply(Api::all(client.clone()), &role).await?;
    apply(Api::all(client.clone()), &binding).await?;
    apply(Api::namespaced(client.clone(), "kube-system"), &service).await?;
    apply(Api::namespaced(client.clone(), "kube-system"), &slice).await?;
    Ok(())
}

fn named(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

fn read(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The addresses `name` resolves to through the cluster DNS Service, as a
/// pod would ask: one A query over UDP.
pub async fn resolve(name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| e.to_string())?;
    let server: SocketAddr = format!("{CLUSTER_DNS}:{PORT}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let id = std::process::id() as u16;
    socket
        .send_to(&query(id, name), server)
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = [0u8; 512];
    let (len, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut answer))
        .await
        .map_err(|_| format!("no answer from {server}"))?
        .map_err(|e| e.to_string())?;
    addresses(id, &answer[..len])
}

/// A DNS query for the A records of `name` (RFC 1035 4.1), recursion desired.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend(id.to_be_bytes());
    packet.extend([0x01, 0x00]); // RD
    packet.extend([0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend(label.as_bytes());
    }
    packet.push(0);
    packet.extend([0, 1, 0, 1]); // A, IN
    packet
}

/// The A records of an answer to [`query`].
fn addresses(id: u16, answer: &[u8]) -> Result<Vec<Ipv4Addr>, String> {
    let short = || "a short answer".to_owned();
    if answer.len() < 12 || answer[..2] != id.to_be_bytes() {
        return Err("an answer to another query".into());
    }
    let rcode = answer[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("response code {rcode}"));
    }
    let questions = u16::from_be_bytes([answer[4], answer[5]]);
    let records = u16::from_be_bytes([answer[6], answer[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(answer, at).ok_or_else(short)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..records {
        at = skip_name(answer, at).ok_or_else(short)?;
        let fixed = answer.get(at..at + 10).ok_or_else(short)?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = answer.get(at + 10..at + 10 + len).ok_or_else(short)?;
        if kind == 1 && len == 4 {
            found.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Ok(found)
}

/// The offset after the name at `at` (labels, or a compression pointer).
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *packet.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_a_records_of_an_answer_with_compressed_names() {
        let mut answer = query(7, "tax.shop.svc.cluster.local");
        answer[2] = 0x85; // QR, AA, RD
        answer[7] = 2; // two answers
        for last in [5u8, 6] {
            answer.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, last]);
        }
        assert_eq!(
            addresses(7, &answer),
            Ok(vec![
                Ipv4Addr::new(10, 96, 0, 5),
                Ipv4Addr::new(10, 96, 0, 6)
            ])
        );
    }

    #[test]
    fn a_failed_or_foreign_answer_is_an_error() {
        let mut answer = query(7, "nowhere.example");
        answer[3] = 0x03; // NXDOMAIN
        assert_eq!(addresses(7, &answer), Err("response code 3".into()));
        assert!(addresses(8, &answer).is_err());
        assert!(addresses(7, &answer[..5]).is_err());
    }

    #[test]
    fn the_corefile_binds_the_bridge_and_forwards_nothing() {
        let corefile = corefile(Path::new("/state/coredns.kubeconfig"));
        assert!(corefile.contains("bind 10.244.0.1"), "{corefile}");
        assert!(corefile.contains("kubeconfig /state/coredns.kubeconfig"));
        assert!(!corefile.contains("forward"), "{corefile}");
    }
}
