//! The certificates of the one-node cluster: a CA, the API server's serving
//! certificate, a client certificate per component (the API server maps CN
//! to the user and O to its groups, which the Node and RBAC authorizers
//! read), and the service-account signing key.

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};

use crate::certs::Ca;

/// Who holds a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// cluster-admin, for `kubectl` and the tests.
    Admin,
    /// The API server calling kubelets (logs, exec).
    ApiserverKubelet,
    ControllerManager,
    Scheduler,
    /// The kubelet of `node`.
    Kubelet,
    Proxy,
    /// CoreDNS, reading Services and endpoints.
    Dns,
}

impl Client {
    pub const ALL: [Client; 7] = [
        Client::Admin,
        Client::ApiserverKubelet,
        Client::ControllerManager,
        Client::Scheduler,
        Client::Kubelet,
        Client::Proxy,
        Client::Dns,
    ];

    /// The file stem of its certificate and key.
    pub fn file(self) -> &'static str {
        match self {
            Client::Admin => "admin",
            Client::ApiserverKubelet => "apiserver-kubelet-client",
            Client::ControllerManager => "controller-manager",
            Client::Scheduler => "scheduler",
            Client::Kubelet => "kubelet",
            Client::Proxy => "kube-proxy",
            Client::Dns => "coredns",
        }
    }

    /// (user, group) as the API server reads them.
    pub(super) fn identity(self, node: &str) -> (String, Option<&'static str>) {
        match self {
            Client::Admin => ("homeostat-admin".into(), Some("system:masters")),
            Client::ApiserverKubelet => (
                "kube-apiserver-kubelet-client".into(),
                Some("system:masters"),
            ),
            Client::ControllerManager => ("system:kube-controller-manager".into(), None),
            Client::Scheduler => ("system:kube-scheduler".into(), None),
            Client::Kubelet => (format!("system:node:{node}"), Some("system:nodes")),
            Client::Proxy => ("system:kube-proxy".into(), None),
            Client::Dns => ("homeostat:cluster-dns".into(), None),
        }
    }
}

/// PEM files, by name.
pub struct Pki {
    pub files: Vec<(String, String)>,
}

impl Pki {
    /// Everything for node `node` whose API server answers at `addresses`.
    pub fn generate(node: &str, addresses: &[&str]) -> Result<Self, rcgen::Error> {
        let ca = Ca::new("homeostat cluster CA")?;
        let issuer = ca.issuer;
        let mut files = vec![
            ("ca.crt".to_owned(), ca.cert_pem),
            ("ca.key".to_owned(), ca.key_pem),
        ];

        let mut names: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            node,
        ]
        .map(str::to_owned)
        .to_vec();
        names.extend(addresses.iter().map(|a| (*a).to_owned()));
        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(names)?;
        // rcgen takes IP literals as DNS names unless told.
        serving.subject_alt_names = serving
            .subject_alt_names
            .into_iter()
            .map(|san| match &san {
                SanType::DnsName(name) => {
                    name.as_str().parse().map(SanType::IpAddress).unwrap_or(san)
                }
                _ => san,
            })
            .collect();
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        files.push((
            "apiserver.crt".into(),
            serving.signed_by(&serving_key, &issuer)?.pem(),
        ));
        files.push(("apiserver.key".into(), serving_key.serialize_pem()));

        for client in Client::ALL {
            let (user, group) = client.identity(node);
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, user);
            if let Some(group) = group {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, group);
            }
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, &issuer)?;
            files.push((format!("{}.crt", client.file()), cert.pem()));
            files.push((format!("{}.key", client.file()), key.serialize_pem()));
        }

        let service_account = KeyPair::generate()?;
        files.push((
            "service-account.key".into(),
            service_account.serialize_pem(),
        ));
        files.push((
            "service-account.pub".into(),
            service_account.public_key_pem(),
        ));
        Ok(Self { files })
    }
}
